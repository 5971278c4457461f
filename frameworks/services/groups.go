package services

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/node/master/state"
)

// Groups are the tree of app paths. A group exists while an app is under it, or when it
// was created through /v2/groups: those are stored (groupKey) with their dependencies,
// which every app under them inherits.

func groupKey(id string) string { return "group/" + id }

// groupRecord is a stored group: what a group has besides its apps.
type groupRecord struct {
	ID           string   `json:"id"`
	Dependencies []string `json:"dependencies"`
	Version      string   `json:"version"`
	EnforceRole  bool     `json:"enforceRole,omitempty"`
}

// parentOf returns the group path holding id.
func parentOf(id string) string {
	i := strings.LastIndex(id, "/")
	if i <= 0 {
		return "/"
	}
	return id[:i]
}

// groups returns the stored group records, by id.
func (s *Service) groups(ctx context.Context) (map[string]*groupRecord, error) {
	entries, err := s.host.KVList(ctx, "group/")
	if err != nil {
		return nil, err
	}
	out := map[string]*groupRecord{}
	for _, e := range entries {
		var g groupRecord
		if json.Unmarshal(e.Value, &g) == nil {
			out[g.ID] = &g
		}
	}
	return out, nil
}

// groupIDs returns every group: the stored ones, and every group path above an app.
// s.mu is held.
func (s *Service) groupIDs(stored map[string]*groupRecord) map[string]bool {
	ids := map[string]bool{"/": true}
	add := func(id string) {
		for id != "/" && !ids[id] {
			ids[id] = true
			id = parentOf(id)
		}
	}
	for id := range stored {
		add(id)
	}
	for id := range s.apps {
		add(parentOf(id))
	}
	return ids
}

// groupJSON is a group as /v2/groups shows it. s.mu is held.
func (s *Service) groupJSON(id string, stored map[string]*groupRecord, ids map[string]bool, embedApps, embedGroups bool, byApp map[string][]*instance, locks map[string][]deploymentRef) map[string]any {
	out := map[string]any{"id": id, "dependencies": []string{}, "version": "", "pods": []any{}}
	if g := stored[id]; g != nil {
		out["dependencies"], out["version"] = g.Dependencies, g.Version
		if g.EnforceRole {
			out["enforceRole"] = true
		}
	}
	if embedApps {
		var appIDs []string
		for appID := range s.apps {
			if parentOf(appID) == id {
				appIDs = append(appIDs, appID)
			}
		}
		slices.Sort(appIDs)
		apps := make([]json.RawMessage, 0, len(appIDs))
		for _, appID := range appIDs {
			apps = append(apps, s.appJSONWith(s.apps[appID], nil, byApp, locks))
		}
		out["apps"] = apps
	}
	if embedGroups {
		var subIDs []string
		for sub := range ids {
			if sub != "/" && parentOf(sub) == id {
				subIDs = append(subIDs, sub)
			}
		}
		slices.Sort(subIDs)
		subs := make([]map[string]any, 0, len(subIDs))
		for _, sub := range subIDs {
			subs = append(subs, s.groupJSON(sub, stored, ids, embedApps, embedGroups, byApp, locks))
		}
		out["groups"] = subs
	}
	return out
}

// groupPath serves /v2/groups[/{id}][/versions].
func (s *Service) groupPath(w http.ResponseWriter, r *http.Request) error {
	id := "/" + strings.Trim(r.PathValue("path"), "/")
	if rest, ok := strings.CutSuffix(id, "/versions"); ok && r.Method == http.MethodGet {
		return s.groupVersions(w, r, rest)
	}
	switch r.Method {
	case http.MethodGet:
		return s.getGroup(w, r, id)
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		return s.putGroup(w, r, id)
	case http.MethodDelete:
		return s.deleteGroup(w, r, id)
	}
	return httpError(http.StatusMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path)
}

func groupNotFound(id string) error {
	return httpError(http.StatusNotFound, "Group '%s' does not exist", id)
}

func (s *Service) getGroup(w http.ResponseWriter, r *http.Request, id string) error {
	embed := embeds(r)
	embedApps, embedGroups := true, true
	if len(embed) > 0 {
		embedApps, embedGroups = embed["group.apps"], embed["group.groups"]
	}
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	stored, err := s.groups(r.Context())
	if err != nil {
		return err
	}
	ids := s.groupIDs(stored)
	if !ids[id] {
		return groupNotFound(id)
	}
	writeJSON(w, http.StatusOK, s.groupJSON(id, stored, ids, embedApps, embedGroups, s.instancesByApp(), s.deploymentsByApp()))
	return nil
}

func (s *Service) groupVersions(w http.ResponseWriter, r *http.Request, id string) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	stored, err := s.groups(r.Context())
	if err != nil {
		return err
	}
	if !s.groupIDs(stored)[id] {
		return groupNotFound(id)
	}
	versions := []string{}
	if g := stored[id]; g != nil && g.Version != "" {
		versions = append(versions, g.Version)
	}
	writeJSON(w, http.StatusOK, versions)
	return nil
}

// groupChange is a request body for POST/PUT/PATCH /v2/groups: a group definition, or a
// scaling of every app in the group.
type groupChange struct {
	ScaleBy *float64 `json:"scaleBy"`
}

// putGroup creates (POST) or changes (PUT, PATCH) a group and deploys its apps in one
// deployment ordered by dependencies. PUT replaces the group: apps under it that the
// definition leaves out are removed; PATCH and POST keep them. ?dryRun=true answers
// with the plan and changes nothing.
func (s *Service) putGroup(w http.ResponseWriter, r *http.Request, id string) error {
	data, err := readBody(r)
	if err != nil {
		return err
	}
	var change groupChange
	_ = json.Unmarshal(data, &change)
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	stored, err := s.groups(r.Context())
	if err != nil {
		return err
	}
	exists := s.groupIDs(stored)[id]
	if change.ScaleBy != nil {
		if !exists {
			return groupNotFound(id)
		}
		var defs []*marathon.App
		for appID, a := range s.apps {
			if isUnder(appID, id) {
				def := a.def.Clone()
				def.Instances = int(float64(def.Instances)**change.ScaleBy + 0.5)
				defs = append(defs, def)
			}
		}
		return s.answerDeployment(w, r, defs, nil, nil, http.StatusOK)
	}
	g, err := marathon.DecodeGroup(data)
	if err != nil {
		return err
	}
	base := id
	if r.Method == http.MethodPost && g.ID != "" {
		// POST /v2/groups/{parent} with a relative id creates a subgroup.
		base = id
	} else if g.ID == "" {
		g.ID = id
	}
	marathon.NormalizeGroup(g, base)
	if r.Method != http.MethodPost && g.ID != id {
		return &marathon.Error{Status: http.StatusUnprocessableEntity, Message: marathon.MessageInvalidObject, Details: []marathon.ErrorDetail{{Path: "/id", Errors: []string{fmt.Sprintf("the id %s in the body is not the path's %s", g.ID, id)}}}}
	}
	if verr := marathon.ValidateGroup(g); verr != nil {
		return verr
	}
	if r.Method == http.MethodPost && s.groupIDs(stored)[g.ID] && g.ID != "/" {
		return httpError(http.StatusConflict, "Group %s is already created. Use PUT to change this group.", g.ID)
	}
	version := s.newVersion()
	var records []*groupRecord
	deps := map[string][]string{}
	var walk func(grp *marathon.Group, inherited []string)
	walk = func(grp *marathon.Group, inherited []string) {
		own := append(slices.Clone(inherited), grp.Dependencies...)
		records = append(records, &groupRecord{ID: grp.ID, Dependencies: grp.Dependencies, Version: version, EnforceRole: grp.EnforceRole})
		for _, app := range grp.Apps {
			deps[app.ID] = own
		}
		for _, sub := range grp.Groups {
			walk(sub, own)
		}
	}
	walk(g, s.inheritedDependencies(g.ID, stored))
	defs := g.AllApps()
	var removed []string
	if r.Method == http.MethodPut {
		keep := map[string]bool{}
		for _, def := range defs {
			keep[def.ID] = true
		}
		for appID := range s.apps {
			if isUnder(appID, g.ID) && !keep[appID] {
				removed = append(removed, appID)
			}
		}
	}
	if r.URL.Query().Get("dryRun") == "true" {
		p := s.groupPlan(defs, removed, deps, version)
		for _, def := range defs {
			// As a deployment would: a port left 0 keeps its number, and is no change.
			if err := s.assignServicePorts(def, p.targets); err != nil {
				return err
			}
		}
		d := s.newDeployment(p)
		writeJSON(w, http.StatusOK, map[string]any{"steps": s.deploymentJSON(d)["steps"]})
		return nil
	}
	w2 := &state.WriteKVRequest{Namespace: s.namespace}
	for _, rec := range records {
		value, _ := json.Marshal(rec)
		w2.Puts = append(w2.Puts, state.KVPut{Key: groupKey(rec.ID), Value: value})
	}
	if err := s.persist(r.Context(), w2); err != nil {
		return err
	}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		status = http.StatusCreated
	}
	return s.answerDeployment(w, r, defs, removed, deps, status)
}

// inheritedDependencies are the dependencies of the stored groups above id. s.mu is held.
func (s *Service) inheritedDependencies(id string, stored map[string]*groupRecord) []string {
	var deps []string
	for id != "/" {
		id = parentOf(id)
		if g := stored[id]; g != nil {
			deps = append(deps, g.Dependencies...)
		}
	}
	return deps
}

// groupPlan is the plan for apps changed (defs) and removed, each app depending on
// what deps lists for it as well as its own dependencies.
func (s *Service) groupPlan(defs []*marathon.App, removed []string, deps map[string][]string, version string) *plan {
	p := &plan{version: version, targets: map[string]*marathon.App{}, dependencies: deps}
	for _, def := range defs {
		p.targets[def.ID] = def
	}
	for _, id := range removed {
		p.targets[id] = nil
	}
	return p
}

// answerDeployment deploys apps changed and removed (one deployment) and answers with
// it. s.mu is held.
func (s *Service) answerDeployment(w http.ResponseWriter, r *http.Request, defs []*marathon.App, removed []string, deps map[string][]string, status int) error {
	if len(defs)+len(removed) == 0 {
		writeJSON(w, status, map[string]string{"version": s.newVersion(), "deploymentId": ""})
		return nil
	}
	d, err := s.deployPlan(r.Context(), defs, removed, deps, forced(r))
	if err != nil {
		return err
	}
	writeDeployment(w, status, d)
	return nil
}

func (s *Service) deleteGroup(w http.ResponseWriter, r *http.Request, id string) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	stored, err := s.groups(r.Context())
	if err != nil {
		return err
	}
	if !s.groupIDs(stored)[id] {
		return groupNotFound(id)
	}
	var removed []string
	for appID := range s.apps {
		if isUnder(appID, id) {
			removed = append(removed, appID)
		}
	}
	w2 := &state.WriteKVRequest{Namespace: s.namespace}
	for gid := range stored {
		if gid == id || isUnder(gid, id) {
			w2.Deletes = append(w2.Deletes, groupKey(gid))
		}
	}
	if len(w2.Deletes) > 0 {
		if err := s.persist(r.Context(), w2); err != nil {
			return err
		}
	}
	return s.answerDeployment(w, r, nil, removed, nil, http.StatusOK)
}

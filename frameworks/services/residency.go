package services

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/frameworks/services/placement"
	"github.com/atoll/atoll/node/master/state"
)

// Resident apps: an app with local persistent volumes keeps, for each of its instances, a
// reservation: the agent holding that instance's volumes and their persistence ids, in
// the key-value table. An instance launches on the agent of a reservation no live
// instance holds, with its volumes; only when every reservation is held does a new one
// begin, on any agent that fits, and is stored before its task launches. Reservations
// outlive their instances (a restart, a scale down, an upgrade finds the data again)
// and go with their app.

// reservation is where one instance of a resident app keeps its volumes.
type reservation struct {
	ID       string `json:"id"`
	AgentID  string `json:"agentId"`
	Hostname string `json:"hostname"`
	// PersistenceIDs name the volumes, in the order of the app's persistent volumes.
	PersistenceIDs []string `json:"persistenceIds"`
}

func reservationPrefix(appID string) string  { return "reservation/" + appID + "@" }
func reservationKey(appID, id string) string { return reservationPrefix(appID) + id }
func parseReservationKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "reservation/")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '@')
	if i < 0 {
		return "", false
	}
	return rest[:i], true
}

// loadReservations reads the reservations of the resident apps.
func (s *Service) loadReservations(ctx context.Context, apps map[string]*app) error {
	entries, err := s.host.KVList(ctx, "reservation/")
	if err != nil {
		return err
	}
	for _, e := range entries {
		appID, ok := parseReservationKey(e.Key)
		if !ok {
			return fmt.Errorf("reservation key %q", e.Key)
		}
		var r reservation
		if err := json.Unmarshal(e.Value, &r); err != nil {
			return fmt.Errorf("reservation %s: %w", e.Key, err)
		}
		if a := apps[appID]; a != nil {
			a.reservations = append(a.reservations, &r)
		}
	}
	return nil
}

// newReservation makes the reservation of a new instance of a on agent: an id and a
// persistence id for each of its volumes, Marathon's form (the app id with its slashes
// as underscores, the volume's path, a uuid, joined by #).
func newReservation(a *app, agentID, hostname string) *reservation {
	r := &reservation{ID: uuid.NewString(), AgentID: agentID, Hostname: hostname}
	app := strings.ReplaceAll(strings.TrimPrefix(a.spec.id, "/"), "/", "_")
	for _, v := range a.spec.persistent {
		r.PersistenceIDs = append(r.PersistenceIDs, app+"#"+strings.ReplaceAll(v.containerPath, "/", "_")+"#"+uuid.NewString())
	}
	return r
}

// freeReservations are a's reservations that no live instance holds. s.mu is held.
func (s *Service) freeReservations(a *app) []*reservation {
	held := map[string]bool{}
	for _, in := range s.byApp[a.spec.id] {
		if in.live() && len(in.persistenceIDs) > 0 {
			held[in.persistenceIDs[0]] = true
		}
	}
	var free []*reservation
	for _, r := range a.reservations {
		if len(r.PersistenceIDs) > 0 && !held[r.PersistenceIDs[0]] {
			free = append(free, r)
		}
	}
	return free
}

// residentClaims places up to want instances of the resident app a on offer, on the
// free reservations of the offer's agent first, then on new ones while the app has
// fewer reservations than instances and waits for more instances than it has free
// reservations. It returns the claims with the reservation each launches on, the
// reservations made (to be stored before the launch), and
// NoCorrespondingReservationFound when the offer's agent is not one the app may use.
// s.mu is held.
func (s *Service) residentClaims(a *app, planner *placement.Planner, offer *api.Offer, remaining *api.Offer, want int) ([]placement.Claim, []*reservation, []*reservation, placement.Reason) {
	free := s.freeReservations(a)
	var here []*reservation
	for _, r := range free {
		if r.AgentID == offer.AgentID.Value {
			here = append(here, r)
		}
	}
	// New reservations only while the app has fewer than its instances: a replacement
	// (a restart, an upgrade) waits for the reservation of the instance it replaces,
	// which is held until that instance has ended.
	newOnes := max(min(a.toLaunch-len(free), a.spec.instances-len(a.reservations)), 0)
	want = min(want, len(here)+newOnes)
	if want == 0 {
		return nil, nil, nil, placement.NoCorrespondingReservationFound
	}
	claims, reason := planner.MatchMany(remaining, want)
	if reason != placement.Matched {
		return nil, nil, nil, reason
	}
	slots := make([]*reservation, len(claims))
	var made []*reservation
	for i := range claims {
		if i < len(here) {
			slots[i] = here[i]
			continue
		}
		r := newReservation(a, offer.AgentID.Value, offer.Hostname)
		a.reservations = append(a.reservations, r)
		made = append(made, r)
		slots[i] = r
	}
	return claims, slots, made, placement.Matched
}

// reservationWrites stores the reservations made for launches; nil when none was.
func (s *Service) reservationWrites(made map[string][]*reservation) (*state.WriteKVRequest, error) {
	w := &state.WriteKVRequest{Namespace: s.namespace}
	for _, appID := range slices.Sorted(maps.Keys(made)) {
		for _, r := range made[appID] {
			data, err := json.Marshal(r)
			if err != nil {
				return nil, fmt.Errorf("reservation of %s: %w", appID, err)
			}
			w.Puts = append(w.Puts, state.KVPut{Key: reservationKey(appID, r.ID), Value: data})
		}
	}
	if len(w.Puts) == 0 {
		return nil, nil
	}
	return w, nil
}

// persistenceIDsOf are the persistence ids of a task's persistent volumes, in the order of
// its resources.
func persistenceIDsOf(resources []api.Resource) []string {
	var ids []string
	for _, r := range resources {
		if r.Disk != nil && r.Disk.Persistence != nil {
			ids = append(ids, r.Disk.Persistence.ID)
		}
	}
	return ids
}

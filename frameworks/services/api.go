package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/node/master/state"
)

// maxBody bounds request bodies: a group of thousands of apps fits.
const maxBody = 32 << 20

// deploymentHeader names the deployment a change started.
const deploymentHeader = "Marathon-Deployment-Id"

// routes serves the Marathon API on the host's routes: every path but /ping forwards to
// where the framework schedules.
func (s *Service) routes() {
	handle := func(pattern string, f func(w http.ResponseWriter, r *http.Request) error) {
		s.host.HandleLeader(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r); err != nil {
				writeError(w, err)
			}
		}))
	}
	s.host.Handle("GET /ping", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "pong\n")
	}))
	handle("GET /v2/info", s.getInfo)
	handle("GET /v2/leader", s.getLeader)
	handle("DELETE /v2/leader", s.abdicate)
	handle("GET /v2/apps", s.listApps)
	handle("POST /v2/apps", s.createApp)
	handle("PUT /v2/apps", s.updateApps)
	handle("PATCH /v2/apps", s.updateApps)
	handle("/v2/apps/{path...}", s.appPath)
	handle("GET /v2/tasks", s.listTasks)
	handle("POST /v2/tasks/delete", s.deleteTasks)
	handle("GET /v2/deployments", s.listDeployments)
	handle("DELETE /v2/deployments/{id}", s.deleteDeployment)
	handle("GET /v2/queue", s.getQueue)
	handle("DELETE /v2/queue/{path...}", s.resetDelay)
	handle("GET /v2/events", s.streamEvents)
	handle("/v2/groups", s.groupPath)
	handle("/v2/groups/{path...}", s.groupPath)
	s.secretRoutes(handle)
}

// writeDeployment answers a change with the deployment it started, as Marathon does:
// {"deploymentId", "version"} and the Marathon-Deployment-Id header.
func writeDeployment(w http.ResponseWriter, status int, d *deployment) {
	w.Header().Set(deploymentHeader, d.ID)
	writeJSON(w, status, map[string]string{"deploymentId": d.ID, "version": d.Version})
}

// writeError answers with Marathon's error body.
func writeError(w http.ResponseWriter, err error) {
	var me *marathon.Error
	if !errors.As(err, &me) {
		status := http.StatusInternalServerError
		if errors.Is(err, errNotReady) {
			status = http.StatusServiceUnavailable
		}
		me = &marathon.Error{Status: status, Message: err.Error()}
	}
	writeJSON(w, me.Status, me)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// readBody reads a request body, bounded.
func readBody(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return nil, httpError(http.StatusRequestEntityTooLarge, "request body: %v", err)
	}
	return data, nil
}

// forced reads ?force=true.
func forced(r *http.Request) bool { return r.URL.Query().Get("force") == "true" }

// lockReady takes s.mu once the state is loaded; the caller unlocks.
func (s *Service) lockReady() error {
	s.mu.Lock()
	if !s.ready {
		s.mu.Unlock()
		return errNotReady
	}
	return nil
}

func (s *Service) getInfo(w http.ResponseWriter, _ *http.Request) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	fid := s.frameworkID
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"name":             "atoll",
		"version":          "1.10.0",
		"buildref":         "atoll",
		"elected":          true,
		"leader":           s.leaderHostPort(),
		"frameworkId":      fid,
		"marathon_config":  map[string]any{"framework_name": s.cfg.Name, "failover_timeout": int64(s.cfg.FailoverTimeout.Seconds()), "decline_offer_duration": s.cfg.DeclineIdle.Milliseconds(), "local_port_min": s.cfg.ServicePortsBegin, "local_port_max": s.cfg.ServicePortsEnd, "mesos_role": s.cfg.Role, "mesos_user": s.cfg.User},
		"http_config":      map[string]any{"http_port": s.httpPort()},
		"event_subscriber": map[string]any{"type": "sse"},
	})
	return nil
}

// leaderHostPort is the address the framework's API is served at, host:port.
func (s *Service) leaderHostPort() string {
	return strings.TrimPrefix(strings.TrimPrefix(s.host.APIURL(), "http://"), "https://")
}

// httpPort is the port the framework's API is served on.
func (s *Service) httpPort() int {
	_, port, _ := net.SplitHostPort(s.leaderHostPort())
	if n, err := strconv.Atoi(port); err == nil {
		return n
	}
	return 5050
}

func (s *Service) getLeader(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"leader": s.leaderHostPort()})
	return nil
}

// abdicate hands leadership to another master (Marathon's DELETE /v2/leader): the
// framework then runs there. Run by itself, the framework starts over (see host.Remote).
func (s *Service) abdicate(w http.ResponseWriter, _ *http.Request) error {
	if err := s.host.Abdicate(); err != nil {
		return httpError(http.StatusServiceUnavailable, "cannot abdicate: %v (a single master has no one to hand leadership to)", err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "Leadership abdicated"})
	return nil
}

// decodeApp decodes, normalises and validates an app from a request body.
func decodeApp(data []byte) (*marathon.App, error) {
	app, err := marathon.DecodeApp(data)
	if err != nil {
		return nil, err
	}
	marathon.Normalize(app, "/")
	if verr := marathon.Validate(app); verr != nil {
		return nil, verr
	}
	return app, nil
}

func (s *Service) createApp(w http.ResponseWriter, r *http.Request) error {
	data, err := readBody(r)
	if err != nil {
		return err
	}
	def, err := decodeApp(data)
	if err != nil {
		return err
	}
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, exists := s.apps[def.ID]; exists {
		return marathon.NewAppExistsError(def.ID)
	}
	if locks := s.lockingDeployments([]string{def.ID}); len(locks) > 0 && !forced(r) {
		return lockedError(locks)
	}
	version := s.newVersion()
	def.Version = version
	def.VersionInfo = &marathon.VersionInfo{LastScalingAt: version, LastConfigChangeAt: version}
	if err := s.assignServicePorts(def, nil); err != nil {
		return err
	}
	d, err := s.start(r.Context(), &plan{version: version, targets: map[string]*marathon.App{def.ID: def}}, s.lockingDeployments([]string{def.ID}))
	if err != nil {
		return err
	}
	s.events.publish(event{Type: "api_post_event", Payload: map[string]any{"clientIp": r.RemoteAddr, "uri": r.URL.Path, "appDefinition": def}})
	s.events.publish(s.deploymentEvent("deployment_info", d))
	w.Header().Set(deploymentHeader, d.ID)
	w.Header().Set("Location", "/v2/apps"+def.ID)
	writeJSON(w, http.StatusCreated, s.appJSON(s.apps[def.ID], nil))
	return nil
}

// newVersion is a new version timestamp, later than every app's.
func (s *Service) newVersion() string {
	now := s.now().UTC()
	v := marathon.Timestamp(now)
	for _, a := range s.apps {
		for a.def.Version >= v {
			now = now.Add(time.Millisecond)
			v = marathon.Timestamp(now)
		}
	}
	return v
}

// lockedError is the 409 naming the deployments.
func lockedError(ds []*deployment) error {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return marathon.NewAppLockedError(ids...)
}

// assignServicePorts gives the app's ports that ask for service port 0 a free one from
// the configured range, and refuses ports another app already has. A port the app had
// already keeps its number. batch are the apps changed with it, whose ports count as
// theirs rather than as their current definitions'. s.mu is held.
func (s *Service) assignServicePorts(def *marathon.App, batch map[string]*marathon.App) error {
	if current := s.apps[def.ID]; current != nil {
		had := servicePortsOf(current.def)
		for i, p := range servicePortsOf(def) {
			if *p == 0 && i < len(had) {
				*p = *had[i]
			}
		}
	}
	used := map[int]string{}
	for id, a := range s.apps {
		if _, changed := batch[id]; changed || id == def.ID {
			continue
		}
		for _, p := range servicePortsOf(a.def) {
			used[*p] = id
		}
	}
	for id, other := range batch {
		if id == def.ID || other == nil {
			continue
		}
		for _, p := range servicePortsOf(other) {
			if *p != 0 {
				used[*p] = id
			}
		}
	}
	next := int(s.cfg.ServicePortsBegin)
	for i, p := range servicePortsOf(def) {
		if *p != 0 {
			if other, taken := used[*p]; taken {
				return &marathon.Error{Status: http.StatusUnprocessableEntity, Message: marathon.MessageInvalidObject, Details: []marathon.ErrorDetail{{Path: fmt.Sprintf("/ports/%d", i), Errors: []string{fmt.Sprintf("service port %d is already used by %s", *p, other)}}}}
			}
			used[*p] = def.ID
			continue
		}
		for next <= int(s.cfg.ServicePortsEnd) && used[next] != "" {
			next++
		}
		if next > int(s.cfg.ServicePortsEnd) {
			return &marathon.Error{Status: http.StatusUnprocessableEntity, Message: marathon.MessageInvalidObject, Details: []marathon.ErrorDetail{{Path: fmt.Sprintf("/ports/%d", i), Errors: []string{fmt.Sprintf("no service port is left in %d-%d", s.cfg.ServicePortsBegin, s.cfg.ServicePortsEnd)}}}}
		}
		*p = next
		used[next] = def.ID
	}
	return nil
}

// servicePortsOf returns pointers to the app's service ports: its port definitions', or
// with bridge networking its port mappings'.
func servicePortsOf(def *marathon.App) []*int {
	var out []*int
	if usesBridge(def) && def.Container != nil {
		for i := range def.Container.PortMappings {
			out = append(out, &def.Container.PortMappings[i].ServicePort)
		}
		return out
	}
	if def.RequirePorts {
		return nil
	}
	for i := range def.PortDefinitions {
		out = append(out, &def.PortDefinitions[i].Port)
	}
	return out
}

// appPath serves /v2/apps/{id}[/restart|/tasks[/{task}]|/versions[/{version}]].
func (s *Service) appPath(w http.ResponseWriter, r *http.Request) error {
	path := "/" + strings.Trim(r.PathValue("path"), "/")
	switch {
	case strings.HasSuffix(path, "/restart") && r.Method == http.MethodPost:
		return s.restartApp(w, r, strings.TrimSuffix(path, "/restart"))
	case strings.HasSuffix(path, "/tasks"):
		return s.appTasks(w, r, strings.TrimSuffix(path, "/tasks"), "")
	case strings.Contains(path, "/tasks/"):
		i := strings.LastIndex(path, "/tasks/")
		return s.appTasks(w, r, path[:i], path[i+len("/tasks/"):])
	case strings.HasSuffix(path, "/versions"):
		return s.appVersions(w, r, strings.TrimSuffix(path, "/versions"), "")
	case strings.Contains(path, "/versions/"):
		i := strings.LastIndex(path, "/versions/")
		return s.appVersions(w, r, path[:i], path[i+len("/versions/"):])
	}
	switch r.Method {
	case http.MethodGet:
		return s.getApp(w, r, path)
	case http.MethodPut, http.MethodPatch:
		return s.putApp(w, r, path)
	case http.MethodDelete:
		return s.deleteApp(w, r, path)
	}
	return httpError(http.StatusMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path)
}

// appNotFound is Marathon's 404 for an unknown app.
func appNotFound(id string) error {
	return httpError(http.StatusNotFound, "App '%s' does not exist", id)
}

func (s *Service) getApp(w http.ResponseWriter, r *http.Request, id string) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok {
		// A group path lists its apps, as Marathon's /v2/apps/<group>/*.
		return appNotFound(id)
	}
	embed := embeds(r)
	embed["apps.tasks"] = true
	embed["apps.deployments"] = true
	embed["apps.lastTaskFailure"] = true
	writeJSON(w, http.StatusOK, map[string]any{"app": s.appJSON(a, embed)})
	return nil
}

// embeds reads ?embed= (repeatable, or comma separated).
func embeds(r *http.Request) map[string]bool {
	out := map[string]bool{}
	for _, v := range r.URL.Query()["embed"] {
		for _, e := range strings.Split(v, ",") {
			out[strings.TrimSpace(e)] = true
		}
	}
	return out
}

func (s *Service) listApps(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	idFilter, cmdFilter := q.Get("id"), q.Get("cmd")
	selector, err := parseLabelSelector(q.Get("label"))
	if err != nil {
		return err
	}
	embed := embeds(r)
	if err := s.lockReady(); err != nil {
		return err
	}
	ids := make([]string, 0, len(s.apps))
	for id, a := range s.apps {
		if idFilter != "" && !strings.Contains(strings.ToLower(id), strings.ToLower(idFilter)) {
			continue
		}
		if cmdFilter != "" && !strings.Contains(a.def.Cmd, cmdFilter) {
			continue
		}
		if !selector.matches(a.def.Labels) {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var tasks map[string][]*instance
	if embed["apps.tasks"] {
		tasks = s.instancesByApp()
	}
	apps := make([]json.RawMessage, 0, len(ids))
	locks := s.deploymentsByApp()
	for _, id := range ids {
		apps = append(apps, s.appJSONWith(s.apps[id], embed, tasks, locks))
	}
	// Written once the scheduler may go on, as they are: encoding/json would check and
	// copy every app's bytes again.
	s.mu.Unlock()
	size := 16
	for _, a := range apps {
		size += len(a) + 1
	}
	out := make([]byte, 0, size)
	out = append(out, `{"apps":[`...)
	for i, a := range apps {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, a...)
	}
	out = append(out, "]}\n"...)
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(out)
	return err
}

// instancesByApp groups the live instances by app. s.mu is held.
func (s *Service) instancesByApp() map[string][]*instance {
	out := make(map[string][]*instance, len(s.byApp))
	for id, m := range s.byApp {
		ins := make([]*instance, 0, len(m))
		for _, in := range m {
			ins = append(ins, in)
		}
		out[id] = ins
	}
	return out
}

// appJSON is an app as /v2/apps shows it, with the counts and what embed asks for.
// s.mu is held.
func (s *Service) appJSON(a *app, embed map[string]bool) json.RawMessage {
	return s.appJSONWith(a, embed, nil, nil)
}

// appJSONWith is appJSON with the instances grouped by app (instancesByApp) and the
// deployments locking each app (deploymentsByApp), or nil to look them up. It splices the counts and embedded parts into the definition's cached
// JSON: listing a thousand apps encodes only what changes.
func (s *Service) appJSONWith(a *app, embed map[string]bool, byApp map[string][]*instance, locks map[string][]deploymentRef) json.RawMessage {
	if a.defJSON == nil {
		a.defJSON, _ = json.Marshal(a.def)
	}
	var ins []*instance
	if byApp != nil {
		ins = byApp[a.spec.id]
	} else {
		for _, in := range s.byApp[a.spec.id] {
			ins = append(ins, in)
		}
	}
	var counts struct {
		Staged    int `json:"tasksStaged"`
		Running   int `json:"tasksRunning"`
		Healthy   int `json:"tasksHealthy"`
		Unhealthy int `json:"tasksUnhealthy"`
		// Deployments lock the app.
		Deployments []deploymentRef `json:"deployments"`
		Tasks       []taskOut       `json:"tasks,omitempty"`
		LastFailure *taskFailure    `json:"lastTaskFailure,omitempty"`
	}
	for _, in := range ins {
		switch {
		case in.state == api.TaskStaging || in.state == api.TaskStarting:
			counts.Staged++
		case in.running():
			counts.Running++
			if in.healthy != nil {
				if *in.healthy {
					counts.Healthy++
				} else {
					counts.Unhealthy++
				}
			}
		}
	}
	if locks == nil {
		locks = s.deploymentsByApp()
	}
	counts.Deployments = locks[a.spec.id]
	if counts.Deployments == nil {
		counts.Deployments = []deploymentRef{}
	}
	if embed["apps.tasks"] {
		sortInstances(ins)
		counts.Tasks = make([]taskOut, 0, len(ins))
		for _, in := range ins {
			counts.Tasks = append(counts.Tasks, taskJSON(in, a))
		}
	}
	if embed["apps.lastTaskFailure"] {
		counts.LastFailure = a.lastFailure
	}
	extra, _ := json.Marshal(&counts)
	out := make([]byte, 0, len(a.defJSON)+len(extra))
	out = append(out, a.defJSON[:len(a.defJSON)-1]...)
	if len(a.defJSON) > 2 {
		out = append(out, ',')
	}
	out = append(out, extra[1:]...)
	if embed["apps.tasks"] && len(ins) == 0 {
		// omitempty dropped an empty list that was asked for.
		out = append(out[:len(out)-1], []byte(`,"tasks":[]}`)...)
	}
	return out
}

// deploymentsByApp maps each app to the deployments changing it. s.mu is held.
func (s *Service) deploymentsByApp() map[string][]deploymentRef {
	out := map[string][]deploymentRef{}
	for _, d := range s.deployments {
		for _, id := range d.apps() {
			if refs := out[id]; len(refs) == 0 || refs[len(refs)-1].ID != d.ID {
				out[id] = append(refs, deploymentRef{d.ID})
			}
		}
	}
	return out
}

// deploymentRef names a deployment.
type deploymentRef struct {
	ID string `json:"id"`
}

// sortInstances orders instances by staging time, then id.
func sortInstances(ins []*instance) {
	slices.SortFunc(ins, func(a, b *instance) int {
		if c := a.stagedAt.Compare(b.stagedAt); c != 0 {
			return c
		}
		return strings.Compare(a.taskID, b.taskID)
	})
}

// taskOut is a task as Marathon shows it.
type taskOut struct {
	ID                 string                `json:"id"`
	AppID              string                `json:"appId"`
	Host               string                `json:"host"`
	SlaveID            string                `json:"slaveId"`
	State              string                `json:"state"`
	IPAddresses        []ipAddressOut        `json:"ipAddresses"`
	Ports              []uint32              `json:"ports"`
	ServicePorts       []uint32              `json:"servicePorts"`
	StagedAt           string                `json:"stagedAt"`
	StartedAt          string                `json:"startedAt,omitempty"`
	Version            string                `json:"version"`
	LocalVolumes       []struct{}            `json:"localVolumes"`
	HealthCheckResults []healthCheckResult   `json:"healthCheckResults,omitempty"`
	CheckResult        *marathon.CheckStatus `json:"checkResult,omitempty"`
}

type ipAddressOut struct {
	IPAddress string `json:"ipAddress"`
	Protocol  string `json:"protocol"`
}

// healthCheckResult is a task's health as Marathon shows it.
type healthCheckResult struct {
	Alive               bool    `json:"alive"`
	ConsecutiveFailures int     `json:"consecutiveFailures"`
	TaskID              string  `json:"taskId"`
	InstanceID          string  `json:"instanceId"`
	FirstSuccess        *string `json:"firstSuccess"`
	LastSuccess         *string `json:"lastSuccess"`
	LastFailure         *string `json:"lastFailure"`
	LastFailureCause    *string `json:"lastFailureCause"`
}

// taskJSON is a task as Marathon shows it.
func taskJSON(in *instance, a *app) taskOut {
	out := taskOut{
		ID:           in.taskID,
		AppID:        in.appID,
		Host:         in.hostname,
		SlaveID:      in.agentID,
		State:        string(in.state),
		IPAddresses:  make([]ipAddressOut, 0, len(in.ips)),
		Ports:        in.hostPorts,
		ServicePorts: in.servicePorts,
		StagedAt:     marathon.Timestamp(in.stagedAt),
		Version:      in.version,
		LocalVolumes: []struct{}{},
	}
	for _, ip := range in.ips {
		out.IPAddresses = append(out.IPAddresses, ipAddressOut{ip, "IPv4"})
	}
	if out.Ports == nil {
		out.Ports = []uint32{}
	}
	if out.ServicePorts == nil && a != nil {
		out.ServicePorts = a.spec.servicePorts
	}
	if out.ServicePorts == nil {
		out.ServicePorts = []uint32{}
	}
	if !in.startedAt.IsZero() {
		out.StartedAt = marathon.Timestamp(in.startedAt)
	}
	if a != nil && a.spec.checked {
		result := healthCheckResult{
			Alive:               in.healthy != nil && *in.healthy,
			ConsecutiveFailures: in.consecutiveFailures,
			TaskID:              in.taskID,
			InstanceID:          in.taskID,
		}
		if !in.lastSuccess.IsZero() {
			ts := marathon.Timestamp(in.lastSuccess)
			result.LastSuccess = &ts
		}
		if !in.lastFailure.IsZero() {
			ts, cause := marathon.Timestamp(in.lastFailure), in.lastFailureCause
			result.LastFailure, result.LastFailureCause = &ts, &cause
		}
		out.HealthCheckResults = []healthCheckResult{result}
	}
	out.CheckResult = checkResult(in.checkStatus)
	return out
}

// checkResult is a task's check status as Marathon shows it (checkResult): the result of
// the check's kind, {} while it has none; nil without a status.
func checkResult(st *api.CheckStatusInfo) *marathon.CheckStatus {
	if st == nil {
		return nil
	}
	out := &marathon.CheckStatus{}
	switch {
	case st.HTTP != nil && st.HTTP.StatusCode != nil:
		out.HTTP = &marathon.HTTPCheckStatus{StatusCode: int(*st.HTTP.StatusCode)}
	case st.TCP != nil && st.TCP.Succeeded != nil:
		out.TCP = &marathon.TCPCheckStatus{Succeeded: *st.TCP.Succeeded}
	case st.Command != nil && st.Command.ExitCode != nil:
		out.Exec = &marathon.CommandCheckStatus{ExitCode: int(*st.Command.ExitCode)}
	}
	return out
}

// putApp replaces (PUT) or partially updates (PATCH) an app, creating it if missing.
func (s *Service) putApp(w http.ResponseWriter, r *http.Request, id string) error {
	data, err := readBody(r)
	if err != nil {
		return err
	}
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	current := s.apps[id]
	partial := r.Method == http.MethodPatch || (r.Method == http.MethodPut && r.URL.Query().Get("partialUpdate") != "false")
	var def *marathon.App
	if current != nil && partial {
		if def, err = s.patchedApp(r.Context(), current, data); err != nil {
			return err
		}
	} else if def, err = decodeAppWithID(data, id); err != nil {
		return err
	}
	d, err := s.deployApps(r.Context(), []*marathon.App{def}, forced(r), nil)
	if err != nil {
		return err
	}
	w.Header().Set(deploymentHeader, d.ID)
	status := http.StatusOK
	if current == nil {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]string{"deploymentId": d.ID, "version": d.Version})
	return nil
}

// decodeAppWithID decodes an app for the path id: the body's id, when it has one, must
// be the same.
func decodeAppWithID(data []byte, id string) (*marathon.App, error) {
	var probe struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(data, &probe)
	if probe.ID == "" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err == nil {
			obj["id"], _ = json.Marshal(id)
			data, _ = json.Marshal(obj)
		}
	}
	def, err := decodeApp(data)
	if err != nil {
		return nil, err
	}
	if def.ID != id {
		return nil, &marathon.Error{Status: http.StatusUnprocessableEntity, Message: marathon.MessageInvalidObject, Details: []marathon.ErrorDetail{{Path: "/id", Errors: []string{fmt.Sprintf("the id %s in the body is not the path's %s", def.ID, id)}}}}
	}
	return def, nil
}

// patchedApp applies a partial update to an app: the fields it has replace the app's. A
// patch of only a version goes back to that stored version. s.mu is held.
func (s *Service) patchedApp(ctx context.Context, current *app, data []byte) (*marathon.App, error) {
	patch, err := marathon.DecodeAppPatch(data)
	if err != nil {
		return nil, err
	}
	if patch.Fields["version"] {
		entry, ok, err := s.host.KV(ctx, versionKey(current.def.ID, patch.App.Version))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, httpError(http.StatusNotFound, "App '%s' does not exist in version %s", current.def.ID, patch.App.Version)
		}
		return marathon.DecodeApp(entry.Value)
	}
	def := current.def.Merge(patch)
	marathon.Normalize(def, "/")
	if verr := marathon.Validate(def); verr != nil {
		return nil, verr
	}
	return def, nil
}

// deployApps starts a deployment changing apps to defs (and restarting restart's). A
// locked app is refused unless force. s.mu is held.
func (s *Service) deployApps(ctx context.Context, defs []*marathon.App, force bool, restart map[string]bool) (*deployment, error) {
	return s.deploy(ctx, defs, nil, nil, force, restart)
}

// deployPlan starts a deployment changing defs and removing removed, with extra
// dependencies per app. s.mu is held.
func (s *Service) deployPlan(ctx context.Context, defs []*marathon.App, removed []string, deps map[string][]string, force bool) (*deployment, error) {
	return s.deploy(ctx, defs, removed, deps, force, nil)
}

func (s *Service) deploy(ctx context.Context, defs []*marathon.App, removed []string, deps map[string][]string, force bool, restart map[string]bool) (*deployment, error) {
	ids := slices.Clone(removed)
	for _, def := range defs {
		ids = append(ids, def.ID)
	}
	locks := s.lockingDeployments(ids)
	if len(locks) > 0 && !force {
		return nil, lockedError(locks)
	}
	version := s.newVersion()
	p := &plan{version: version, targets: map[string]*marathon.App{}, restart: restart, dependencies: deps}
	for _, def := range defs {
		// Ports first: a port left 0 keeps the number the app had, so that it is no change.
		if err := s.assignServicePorts(def, p.targets); err != nil {
			return nil, err
		}
		def.Version = version
		info := &marathon.VersionInfo{LastScalingAt: version, LastConfigChangeAt: version}
		if current := s.apps[def.ID]; current != nil && current.def.VersionInfo != nil && !restart[def.ID] && !configChanged(current.def, def) {
			info.LastConfigChangeAt = current.def.VersionInfo.LastConfigChangeAt
		}
		def.VersionInfo = info
		p.targets[def.ID] = def
	}
	for _, id := range removed {
		if _, ok := s.apps[id]; ok {
			p.targets[id] = nil
		}
	}
	d, err := s.start(ctx, p, locks)
	if err != nil {
		return nil, err
	}
	s.events.publish(s.deploymentEvent("deployment_info", d))
	return d, nil
}

// updateApps serves PUT and PATCH /v2/apps: several apps changed in one deployment.
func (s *Service) updateApps(w http.ResponseWriter, r *http.Request) error {
	data, err := readBody(r)
	if err != nil {
		return err
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return &marathon.Error{Status: http.StatusBadRequest, Message: marathon.MessageInvalidJSON, Details: []marathon.ErrorDetail{{Path: "/", Errors: []string{"error.expected.jsarray"}}}}
	}
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	partial := r.Method == http.MethodPatch || r.URL.Query().Get("partialUpdate") != "false"
	defs := make([]*marathon.App, 0, len(raw))
	for i, item := range raw {
		var probe struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(item, &probe)
		id := "/" + strings.Trim(probe.ID, "/")
		var def *marathon.App
		if current := s.apps[id]; current != nil && partial {
			def, err = s.patchedApp(r.Context(), current, item)
		} else {
			def, err = decodeApp(item)
		}
		if err != nil {
			return prefixError(err, i)
		}
		defs = append(defs, def)
	}
	d, err := s.deployApps(r.Context(), defs, forced(r), nil)
	if err != nil {
		return err
	}
	writeDeployment(w, http.StatusOK, d)
	return nil
}

// prefixError puts an item's index in front of its error paths.
func prefixError(err error, i int) error {
	var me *marathon.Error
	if !errors.As(err, &me) {
		return err
	}
	out := *me
	out.Details = slices.Clone(me.Details)
	for j := range out.Details {
		out.Details[j].Path = "/" + strconv.Itoa(i) + out.Details[j].Path
	}
	return &out
}

func (s *Service) deleteApp(w http.ResponseWriter, r *http.Request, id string) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.apps[id]; !ok {
		return appNotFound(id)
	}
	locks := s.lockingDeployments([]string{id})
	if len(locks) > 0 && !forced(r) {
		return lockedError(locks)
	}
	d, err := s.start(r.Context(), &plan{version: s.newVersion(), targets: map[string]*marathon.App{id: nil}}, locks)
	if err != nil {
		return err
	}
	s.events.publish(s.deploymentEvent("deployment_info", d))
	writeDeployment(w, http.StatusOK, d)
	return nil
}

func (s *Service) restartApp(w http.ResponseWriter, r *http.Request, id string) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok {
		return appNotFound(id)
	}
	d, err := s.deployApps(r.Context(), []*marathon.App{a.def.Clone()}, forced(r), map[string]bool{id: true})
	if err != nil {
		return err
	}
	writeDeployment(w, http.StatusOK, d)
	return nil
}

func (s *Service) appVersions(w http.ResponseWriter, r *http.Request, id, version string) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	_, ok := s.apps[id]
	s.mu.Unlock()
	if !ok {
		return appNotFound(id)
	}
	if version == "" {
		entries, err := s.host.KVList(r.Context(), versionPrefix(id))
		if err != nil {
			return err
		}
		versions := []string{}
		for _, e := range entries {
			versions = append(versions, strings.TrimPrefix(e.Key, versionPrefix(id)))
		}
		slices.Reverse(versions)
		writeJSON(w, http.StatusOK, map[string]any{"versions": versions})
		return nil
	}
	entry, ok, err := s.host.KV(r.Context(), versionKey(id, version))
	if err != nil {
		return err
	}
	if !ok {
		return httpError(http.StatusNotFound, "App '%s' does not exist in version %s", id, version)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(entry.Value)
	return nil
}

func (s *Service) appTasks(w http.ResponseWriter, r *http.Request, id, taskID string) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok {
		return appNotFound(id)
	}
	switch r.Method {
	case http.MethodGet:
		if taskID != "" {
			return httpError(http.StatusMethodNotAllowed, "GET of one task: use /v2/apps%s/tasks", id)
		}
		var ins []*instance
		for _, in := range s.byApp[id] {
			ins = append(ins, in)
		}
		sortInstances(ins)
		if strings.Contains(r.Header.Get("Accept"), "text/plain") {
			w.Header().Set("Content-Type", "text/plain")
			for _, in := range ins {
				fmt.Fprintf(w, "%s\t%s\n", in.taskID, in.hostname)
			}
			return nil
		}
		tasks := make([]taskOut, 0, len(ins))
		for _, in := range ins {
			tasks = append(tasks, taskJSON(in, a))
		}
		writeJSON(w, http.StatusOK, map[string]any{"tasks": tasks})
		return nil
	case http.MethodDelete:
		var ids []string
		host := r.URL.Query().Get("host")
		for _, in := range s.byApp[id] {
			if !in.live() {
				continue
			}
			if (taskID == "" && (host == "" || in.hostname == host)) || in.taskID == taskID {
				ids = append(ids, in.taskID)
			}
		}
		if taskID != "" && len(ids) == 0 {
			return httpError(http.StatusNotFound, "Task '%s' does not exist", taskID)
		}
		return s.killTasks(w, r, ids)
	}
	return httpError(http.StatusMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path)
}

// killTasks kills tasks; with ?scale=true their apps shrink by as many (a deployment),
// else they are replaced. s.mu is held.
func (s *Service) killTasks(w http.ResponseWriter, r *http.Request, ids []string) error {
	scale := r.URL.Query().Get("scale") == "true"
	killed := []taskOut{}
	shrink := map[string]int{}
	for _, id := range ids {
		in := s.instances[id]
		if in == nil {
			continue
		}
		killed = append(killed, taskJSON(in, s.apps[in.appID]))
		s.killLocked(in)
		shrink[in.appID]++
	}
	s.trigger()
	if !scale {
		if len(ids) == 1 && strings.Contains(r.URL.Path, "/tasks/") {
			writeJSON(w, http.StatusOK, map[string]any{"task": killed[0]})
			return nil
		}
		writeJSON(w, http.StatusOK, map[string]any{"tasks": killed})
		return nil
	}
	var defs []*marathon.App
	for appID, n := range shrink {
		def := s.apps[appID].def.Clone()
		def.Instances = max(def.Instances-n, 0)
		defs = append(defs, def)
	}
	d, err := s.deployApps(r.Context(), defs, true, nil)
	if err != nil {
		return err
	}
	writeDeployment(w, http.StatusOK, d)
	return nil
}

func (s *Service) listTasks(w http.ResponseWriter, r *http.Request) error {
	statuses := map[string]bool{}
	for _, v := range append(r.URL.Query()["status"], r.URL.Query()["status[]"]...) {
		statuses["TASK_"+strings.ToUpper(v)] = true
	}
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	ins := make([]*instance, 0, len(s.instances))
	for _, in := range s.instances {
		if len(statuses) == 0 || statuses[string(in.state)] {
			ins = append(ins, in)
		}
	}
	sortInstances(ins)
	tasks := make([]taskOut, 0, len(ins))
	for _, in := range ins {
		tasks = append(tasks, taskJSON(in, s.apps[in.appID]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": tasks})
	return nil
}

func (s *Service) deleteTasks(w http.ResponseWriter, r *http.Request) error {
	data, err := readBody(r)
	if err != nil {
		return err
	}
	var body struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return &marathon.Error{Status: http.StatusBadRequest, Message: marathon.MessageInvalidJSON, Details: []marathon.ErrorDetail{{Path: "/ids", Errors: []string{"error.expected.jsarray"}}}}
	}
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	return s.killTasks(w, r, body.IDs)
}

// deploymentJSON is a deployment as /v2/deployments shows it. s.mu is held, or d is
// not shared.
func (s *Service) deploymentJSON(d *deployment) map[string]any {
	steps := make([]map[string]any, 0, len(d.Steps))
	for _, step := range d.Steps {
		actions := make([]map[string]string, 0, len(step))
		for _, a := range step {
			actions = append(actions, map[string]string{"action": a.Action, "app": a.App})
		}
		steps = append(steps, map[string]any{"actions": actions})
	}
	current := []map[string]any{}
	if d.Current < len(d.Steps) {
		for _, a := range d.Steps[d.Current] {
			results := []readinessResult{}
			for _, in := range s.byApp[a.App] {
				if in.readiness != nil {
					results = append(results, *in.readiness)
				}
			}
			slices.SortFunc(results, func(x, y readinessResult) int { return strings.Compare(x.TaskID, y.TaskID) })
			current = append(current, map[string]any{"action": a.Action, "app": a.App, "readinessCheckResults": results})
		}
	}
	affected := d.apps()
	slices.Sort(affected)
	return map[string]any{
		"id":             d.ID,
		"version":        d.Version,
		"affectedApps":   affected,
		"affectedPods":   []string{},
		"steps":          steps,
		"currentActions": current,
		"currentStep":    min(d.Current+1, len(d.Steps)),
		"totalSteps":     len(d.Steps),
	}
}

func (s *Service) listDeployments(w http.ResponseWriter, _ *http.Request) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	out := make([]map[string]any, 0, len(s.deployments))
	for _, d := range s.deployments {
		out = append(out, s.deploymentJSON(d))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteDeployment rolls a deployment back (a new deployment to the apps' previous
// definitions), or with ?force=true just stops it where it is.
func (s *Service) deleteDeployment(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	var d *deployment
	for _, x := range s.deployments {
		if x.ID == id {
			d = x
		}
	}
	if d == nil {
		return httpError(http.StatusNotFound, "DeploymentPlan %s does not exist", id)
	}
	if forced(r) {
		if err := s.persist(r.Context(), &state.WriteKVRequest{Namespace: s.namespace, Deletes: []string{deploymentKey(id)}}); err != nil {
			return err
		}
		s.deployments = slices.DeleteFunc(s.deployments, func(x *deployment) bool { return x == d })
		s.events.publish(s.deploymentEvent("deployment_failed", d))
		s.trigger()
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	version := s.newVersion()
	targets := map[string]*marathon.App{}
	for app := range d.Targets {
		prev := d.Previous[app]
		if prev == nil {
			targets[app] = nil
			continue
		}
		def := prev.Clone()
		def.Version = version
		def.VersionInfo = &marathon.VersionInfo{LastScalingAt: version, LastConfigChangeAt: prev.VersionInfo.LastConfigChangeAt}
		targets[app] = def
	}
	for app := range d.Previous {
		if _, ok := targets[app]; !ok {
			targets[app] = d.Previous[app].Clone()
		}
	}
	rollback, err := s.start(r.Context(), &plan{version: version, targets: targets}, []*deployment{d})
	if err != nil {
		return err
	}
	s.events.publish(s.deploymentEvent("deployment_info", rollback))
	writeDeployment(w, http.StatusOK, rollback)
	return nil
}

func (s *Service) getQueue(w http.ResponseWriter, _ *http.Request) error {
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := s.now()
	queue := []map[string]any{}
	ids := make([]string, 0)
	for id, a := range s.apps {
		if a.toLaunch > 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		a := s.apps[id]
		overdue := !now.Before(a.delayUntil)
		delay := 0
		if !overdue {
			delay = int(a.delayUntil.Sub(now).Seconds() + 0.999)
		}
		item := map[string]any{
			"count":                  a.toLaunch,
			"delay":                  map[string]any{"timeLeftSeconds": delay, "overdue": overdue},
			"since":                  marathon.Timestamp(a.waitingSince),
			"app":                    s.appJSON(a, nil),
			"processedOffersSummary": a.summary.Snapshot(),
		}
		if a.lastFailure != nil {
			item["lastTaskFailure"] = a.lastFailure
		}
		queue = append(queue, item)
	}
	writeJSON(w, http.StatusOK, map[string]any{"queue": queue})
	return nil
}

func (s *Service) resetDelay(w http.ResponseWriter, r *http.Request) error {
	path := "/" + strings.Trim(r.PathValue("path"), "/")
	id, ok := strings.CutSuffix(path, "/delay")
	if !ok {
		return httpError(http.StatusNotFound, "no such queue resource %s", r.URL.Path)
	}
	if err := s.lockReady(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok {
		return appNotFound(id)
	}
	a.failures, a.delayUntil = 0, time.Time{}
	s.trigger()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// streamEvents serves /v2/events as Server-Sent Events.
func (s *Service) streamEvents(w http.ResponseWriter, r *http.Request) error {
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		return httpError(http.StatusNotAcceptable, "/v2/events streams Server-Sent Events: send Accept: text/event-stream")
	}
	s.mu.Lock()
	ready := s.ready
	s.mu.Unlock()
	if !ready {
		return errNotReady
	}
	sub := s.events.subscribe(r.URL.Query()["event_type"])
	defer s.events.unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	attached, _ := json.Marshal(map[string]any{"eventType": "event_stream_attached", "remoteAddress": r.RemoteAddr, "timestamp": marathon.Timestamp(nowUTC())})
	fmt.Fprintf(w, "event: event_stream_attached\ndata: %s\n\n", attached)
	if flusher != nil {
		flusher.Flush()
	}
	// A comment now and then: a reader sees a silent stream is dead (marathon-lb's bane
	// was a stream that died without a word), and proxies do not time it out.
	keepAlive := time.NewTicker(s.cfg.EventKeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-keepAlive.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			if flusher != nil {
				flusher.Flush()
			}
		case why := <-sub.done:
			fmt.Fprintf(w, ": stream closed: %s\n\n", why)
			return nil
		case frame := <-sub.events:
			if _, err := w.Write(frame); err != nil {
				return nil
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

package lb

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/atoll/atoll/api/marathon"
)

// Table is the routing table of one load balancer group: what every service port, virtual
// host and app id leads to. A Table is immutable once built; the Server swaps whole tables.
type Table struct {
	// Group is the load balancer group the table serves ("*" serves every group).
	Group string `json:"group"`
	// Services are sorted by port, then bind address.
	Services []Service `json:"services"`
	// Problems are the labels and apps that could not be honoured.
	Problems []Problem `json:"problems"`
}

// Service is one app port the load balancer serves: the apps of a blue/green deployment
// group share one.
type Service struct {
	// Name is the HAProxy backend name marathon-lb gave it: the app id without its leading
	// slash, slashes as '_', then '_' and the service port ("shop_web_10000").
	Name string `json:"name"`
	// AppID is the app whose labels configure the service (the newest of a deployment group).
	AppID string `json:"appId"`
	// PortIndex is the app port's index.
	PortIndex int `json:"portIndex"`
	// Port is the service port bound (HAPROXY_{n}_PORT, else the app port's servicePort).
	Port int `json:"port"`
	// BindAddr is the address the port is bound on ("" for the server's default).
	BindAddr string `json:"bindAddr,omitempty"`
	// Mode is ModeTCP or ModeHTTP.
	Mode string `json:"mode"`
	// VHosts are the virtual hosts routed to the service on the HTTP port.
	VHosts []string `json:"vhosts,omitempty"`
	// Path is the path prefix those virtual hosts route ("" for all paths).
	Path string `json:"path,omitempty"`
	// Balance is one of the Balance constants.
	Balance string `json:"balance"`
	// Sticky pins a client to a backend with a cookie (HTTP only).
	Sticky bool `json:"sticky,omitempty"`
	// Weight orders routes on a shared virtual host: higher first (HAPROXY_{n}_BACKEND_WEIGHT).
	Weight int `json:"weight,omitempty"`
	// Auth asks clients for basic authentication (HTTP only).
	Auth *Auth `json:"auth,omitempty"`
	// RedirectToHTTPS answers plain-HTTP requests to the virtual hosts with a 301 to https.
	RedirectToHTTPS bool `json:"redirectToHttps,omitempty"`
	// SSLCerts are PEM files (certificate chain and key) served on the HTTPS port for the
	// virtual hosts; the first that suits the client's handshake is chosen.
	SSLCerts []string `json:"sslCerts,omitempty"`
	// UseHSTS adds Strict-Transport-Security to the virtual hosts' HTTPS responses.
	UseHSTS bool `json:"useHsts,omitempty"`
	// AllowedNets, when set, are the only client networks let in.
	AllowedNets []string `json:"allowedNets,omitempty"`
	// Deployment is set for apps in a blue/green deployment group.
	Deployment *Deployment `json:"deployment,omitempty"`
	// Backends are the healthy running tasks, sorted by address.
	Backends []Backend `json:"backends"`
}

// Deployment is a blue/green deployment group (marathon-lb's HAPROXY_DEPLOYMENT_* labels).
type Deployment struct {
	Group           string   `json:"group"`
	Apps            []string `json:"apps"`
	Colour          string   `json:"colour,omitempty"`
	AltPort         int      `json:"altPort,omitempty"`
	TargetInstances int      `json:"targetInstances,omitempty"`
	StartedAt       string   `json:"startedAt,omitempty"`
}

// Backend is a task serving a service.
type Backend struct {
	// Addr is host:port (the container's address on container networks).
	Addr string `json:"addr"`
	// App and TaskID name the task.
	App    string `json:"app"`
	TaskID string `json:"taskId"`
}

// TableOptions choose what BuildTable includes.
type TableOptions struct {
	// Group is the load balancer group served: apps whose HAPROXY_GROUP (or
	// HAPROXY_{n}_GROUP) names it; "*" serves every app that names any group.
	Group string
}

// DecodeApps reads the body of GET /v2/apps?embed=apps.tasks and normalises each app. An
// app that does not decode is left out with a Problem; only a body that is not an app list
// at all is an error.
func DecodeApps(data []byte) ([]marathon.AppInfo, []Problem, error) {
	var list struct {
		Apps []json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, nil, fmt.Errorf("decode app list: %w", err)
	}
	apps := make([]marathon.AppInfo, 0, len(list.Apps))
	var problems []Problem
	for i, raw := range list.Apps {
		var app marathon.AppInfo
		if err := json.Unmarshal(raw, &app); err != nil {
			var id struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(raw, &id)
			if id.ID == "" {
				id.ID = "apps[" + strconv.Itoa(i) + "]"
			}
			problems = append(problems, Problem{App: id.ID, Why: "the app does not decode: " + err.Error()})
			continue
		}
		marathon.Normalize(&app.App, "/")
		apps = append(apps, app)
	}
	return apps, problems, nil
}

// appPort is what the table needs of one port of an app.
type appPort struct {
	servicePort   int
	containerPort int
}

// BuildTable computes the routing table for one group from apps (as DecodeApps returns
// them) and their tasks. Problems name the labels that could not be honoured; they never
// keep the other apps or ports from being served.
func BuildTable(apps []marathon.AppInfo, opts TableOptions) (*Table, []Problem) {
	table := &Table{Group: opts.Group, Services: []Service{}}
	var problems []Problem
	sorted := make([]*marathon.AppInfo, len(apps))
	for i := range apps {
		sorted[i] = &apps[i]
	}
	slices.SortFunc(sorted, func(a, b *marathon.AppInfo) int { return strings.Compare(a.ID, b.ID) })

	type parsed struct {
		app    *marathon.AppInfo
		labels appLabels
		ports  []appPort
	}
	var all []parsed
	for _, app := range sorted {
		ports := appPorts(app)
		labels, ps := parseLabels(app.ID, app.Labels, len(ports))
		problems = append(problems, ps...)
		all = append(all, parsed{app, labels, ports})
	}

	// Blue/green: the apps of a deployment group share their services; the newest
	// deployment's labels configure them, and every app's healthy tasks serve.
	leaders := map[string]int{}
	members := map[string][]int{}
	for i, p := range all {
		dg := p.labels.deploymentGroup
		if dg == "" {
			continue
		}
		members[dg] = append(members[dg], i)
		if j, ok := leaders[dg]; !ok || p.labels.startedAt > all[j].labels.startedAt {
			leaders[dg] = i
		}
	}

	taken := map[string]string{} // bind address and port → service name
	for i, p := range all {
		app := p.app
		group := []int{i}
		var deployment *Deployment
		if dg := p.labels.deploymentGroup; dg != "" {
			if leaders[dg] != i {
				continue
			}
			group = members[dg]
			deployment = &Deployment{Group: dg, Colour: p.labels.colour, AltPort: p.labels.altPort, TargetInstances: p.labels.targetInstances, StartedAt: p.labels.startedAt}
			for _, j := range group {
				deployment.Apps = append(deployment.Apps, all[j].app.ID)
			}
		}
		for index, port := range p.ports {
			pl := p.labels.ports[index]
			if pl == nil {
				pl = &portLabels{}
			}
			groups := p.labels.groups
			if pl.groups != nil {
				groups = pl.groups
			}
			if !inGroup(groups, opts.Group) || pl.enabled != nil && !*pl.enabled || pl.broken {
				continue
			}
			report := func(label, why string) {
				problems = append(problems, Problem{App: app.ID, Label: label, Why: why})
			}
			svc := Service{AppID: app.ID, PortIndex: index, Port: port.servicePort, BindAddr: pl.bindAddr, Mode: ModeTCP,
				Balance: BalanceRoundRobin, Weight: pl.weight, Auth: pl.auth, Deployment: deployment, Backends: []Backend{}}
			if pl.port != 0 {
				svc.Port = pl.port
			}
			if svc.Port == 0 {
				report("", fmt.Sprintf("port %d has no service port (servicePort 0 and no HAPROXY_%d_PORT); not served", index, index))
				continue
			}
			if pl.mode != "" {
				svc.Mode = pl.mode
			} else if len(pl.vhosts) > 0 {
				svc.Mode = ModeHTTP
			}
			if pl.balance != "" {
				svc.Balance = pl.balance
			}
			label := func(field string) string { return labelPrefix + strconv.Itoa(index) + "_" + field }
			if svc.Mode == ModeTCP {
				if pl.auth != nil {
					report(label("AUTH"), "basic authentication needs HAPROXY_"+strconv.Itoa(index)+"_MODE=http; port not served")
					continue
				}
				for _, f := range []struct {
					field string
					set   bool
				}{{"REDIRECT_TO_HTTPS", pl.redirectToHTTPS != nil && *pl.redirectToHTTPS}, {"SSL_CERT", len(pl.sslCerts) > 0},
					{"STICKY", pl.sticky != nil && *pl.sticky}, {"USE_HSTS", pl.useHSTS != nil && *pl.useHSTS}, {"VHOST", len(pl.vhosts) > 0}} {
					if f.set {
						report(label(f.field), "needs http mode, and HAPROXY_"+strconv.Itoa(index)+"_MODE is tcp; ignored")
					}
				}
			} else {
				svc.VHosts = pl.vhosts
				svc.Sticky = pl.sticky != nil && *pl.sticky
				// TLS is served on the virtual host ports only: without a virtual host
				// these labels would have nothing to act on.
				for _, f := range []struct {
					field string
					set   bool
				}{{"REDIRECT_TO_HTTPS", pl.redirectToHTTPS != nil && *pl.redirectToHTTPS}, {"SSL_CERT", len(pl.sslCerts) > 0}, {"USE_HSTS", pl.useHSTS != nil && *pl.useHSTS}} {
					if f.set && len(svc.VHosts) == 0 {
						report(label(f.field), "applies to virtual hosts only, and HAPROXY_"+strconv.Itoa(index)+"_VHOST is not set; ignored")
					}
				}
				if len(svc.VHosts) > 0 {
					svc.RedirectToHTTPS = pl.redirectToHTTPS != nil && *pl.redirectToHTTPS
					svc.SSLCerts = pl.sslCerts
					svc.UseHSTS = pl.useHSTS != nil && *pl.useHSTS
				}
			}
			if pl.path != "" {
				if len(svc.VHosts) == 0 {
					report(label("PATH"), "a path routes only with a virtual host (HAPROXY_"+strconv.Itoa(index)+"_VHOST); ignored")
				} else {
					svc.Path = pl.path
				}
			}
			for _, n := range pl.allowedNets {
				svc.AllowedNets = append(svc.AllowedNets, n.String())
			}
			svc.Name = backendName(app.ID, svc.Port)
			key := net.JoinHostPort(svc.BindAddr, strconv.Itoa(svc.Port))
			if other, ok := taken[key]; ok {
				report("", fmt.Sprintf("service port %s is already %s's; port %d not served", key, other, index))
				continue
			}
			taken[key] = svc.Name
			for _, j := range group {
				svc.Backends = append(svc.Backends, backends(all[j].app, index, all[j].ports)...)
			}
			slices.SortFunc(svc.Backends, func(a, b Backend) int {
				if c := strings.Compare(a.Addr, b.Addr); c != 0 {
					return c
				}
				return strings.Compare(a.TaskID, b.TaskID)
			})
			table.Services = append(table.Services, svc)
		}
	}
	slices.SortStableFunc(table.Services, func(a, b Service) int {
		if a.Port != b.Port {
			return a.Port - b.Port
		}
		return strings.Compare(a.BindAddr, b.BindAddr)
	})
	if problems == nil {
		problems = []Problem{}
	}
	table.Problems = problems
	return table, problems
}

// inGroup tells whether an app in groups is served by a load balancer of group want.
func inGroup(groups []string, want string) bool {
	if len(groups) == 0 {
		return false
	}
	return want == "*" || slices.Contains(groups, want)
}

func backendName(appID string, port int) string {
	return strings.ReplaceAll(strings.TrimPrefix(appID, "/"), "/", "_") + "_" + strconv.Itoa(port)
}

// appPorts lists an app's ports: its port definitions on the host network, its port
// mappings on container networks.
func appPorts(app *marathon.AppInfo) []appPort {
	if hostNetwork(app) {
		out := make([]appPort, len(app.PortDefinitions))
		for i, pd := range app.PortDefinitions {
			out[i] = appPort{servicePort: pd.Port}
		}
		return out
	}
	if app.Container == nil {
		return nil
	}
	out := make([]appPort, len(app.Container.PortMappings))
	for i, pm := range app.Container.PortMappings {
		out[i] = appPort{servicePort: pm.ServicePort, containerPort: pm.ContainerPort}
	}
	return out
}

func hostNetwork(app *marathon.AppInfo) bool {
	return len(app.Networks) == 0 || app.Networks[0].Mode == marathon.NetworkHost
}

// backends lists the app's running, healthy tasks as backends of its port index: every
// health check result alive, or no health checks at all.
func backends(app *marathon.AppInfo, index int, ports []appPort) []Backend {
	if index >= len(ports) {
		return nil
	}
	var out []Backend
	containerNet := len(app.Networks) > 0 && app.Networks[0].Mode == marathon.NetworkContainer
	for _, t := range app.Tasks {
		// Marathon before 1.x listed tasks without a state: started ones were running.
		running := t.State == "TASK_RUNNING" || t.State == "" && t.StartedAt != ""
		if !running || !healthy(app, &t) {
			continue
		}
		var addr string
		switch {
		case containerNet && len(t.IPAddresses) > 0 && ports[index].containerPort != 0:
			addr = net.JoinHostPort(t.IPAddresses[0].IPAddress, strconv.Itoa(ports[index].containerPort))
		case index < len(t.Ports) && t.Host != "":
			addr = net.JoinHostPort(t.Host, strconv.Itoa(t.Ports[index]))
		default:
			continue
		}
		out = append(out, Backend{Addr: addr, App: app.ID, TaskID: t.ID})
	}
	return out
}

func healthy(app *marathon.AppInfo, t *marathon.Task) bool {
	if len(app.HealthChecks) == 0 {
		return true
	}
	if len(t.HealthCheckResults) == 0 {
		return false
	}
	for _, r := range t.HealthCheckResults {
		if !r.Alive {
			return false
		}
	}
	return true
}

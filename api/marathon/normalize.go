package marathon

import (
	"reflect"
	"slices"
	"strings"
)

// Legacy container.docker.network values and the Mesos bridge's network name, which the
// legacy ipAddress form used to ask for the bridge.
const (
	dockerNetworkBridge    = "BRIDGE"
	dockerNetworkHost      = "HOST"
	dockerNetworkUser      = "USER"
	dockerNetworkNoNetwork = "NONE"
	mesosBridgeName        = "mesos-bridge"
)

// Normalize brings a decoded app into Marathon's canonical form, in place:
//   - the id becomes absolute, relative to base (the enclosing group, "/" for
//     /v2/apps): "nginx" under "/" is "/nginx", "../x" and "./x" resolve, slashes at either
//     end go; dependencies resolve the same way against the app's parent group;
//   - the legacy forms become canonical: uris → fetch (archives extracted), ports →
//     portDefinitions, container.docker.portMappings → container.portMappings,
//     container.docker.network and ipAddress (with its discovery ports) → networks;
//   - networks default to [{mode: host}]; host networking has portDefinitions (default
//     [{port: 0, protocol: tcp, name: default}]) and no port mappings, container
//     networking has port mappings (default one, host ports 0 on the bridge), no port
//     definitions and requirePorts false; networks other than host without a container get
//     an empty MESOS one;
//   - health checks other than COMMAND get portIndex 0 when they name no port and the app
//     has ports, HTTP ones path "/"; so does the check's http or tcp (not its path);
//     readiness checks get httpStatusCodesForReady [200];
//   - labels become {} when absent, and empty lists and maps that are not written become
//     nil, so that the app marshals and decodes back to the same value.
//
// Legacy forms that contradict canonical ones (uris and fetch, ports and different
// portDefinitions, ipAddress and networks, …) are left as they are for Validate to report.
// Normalize is idempotent.
func Normalize(app *App, base string) {
	base = canonicalPath(base, "/")
	if app.ID != "" {
		app.ID = canonicalPath(app.ID, base)
		base = parentPath(app.ID)
	}
	for i, dep := range app.Dependencies {
		app.Dependencies[i] = canonicalPath(dep, base)
	}
	normalizeFetch(app)
	normalizeDockerPortMappings(app)
	// Ports depend on the networks: with contradicting network fields both stay as they are.
	if t := translateNetworks(app); t.conflict == nil {
		app.Networks, app.Container, app.IPAddress = t.networks, t.container, nil
		if len(app.Networks) == 0 {
			app.Networks = []Network{{Mode: NetworkHost}}
		}
		normalizePorts(app)
	}
	normalizeChecks(app)
	if app.Resident() && app.Residency == nil {
		app.Residency = &Residency{}
		app.Residency.setDefaults()
	}
	if app.Labels == nil {
		app.Labels = map[string]string{}
	}
	dropEmpty(reflectValue(app))
}

// NormalizeGroup normalises g and everything in it: the group's id relative to base (an
// empty id is base itself), its dependencies and its apps' and subgroups' ids relative to
// the group, as in Marathon ("../db" in group /prod/web is /prod/db).
func NormalizeGroup(g *Group, base string) {
	base = canonicalPath(base, "/")
	if g.ID == "" {
		g.ID = base
	}
	g.ID = canonicalPath(g.ID, base)
	for i, dep := range g.Dependencies {
		g.Dependencies[i] = canonicalPath(dep, g.ID)
	}
	for _, app := range g.Apps {
		if app != nil {
			Normalize(app, g.ID)
		}
	}
	for _, sub := range g.Groups {
		if sub != nil {
			NormalizeGroup(sub, g.ID)
		}
	}
	if g.Apps == nil {
		g.Apps = []*App{}
	}
	if g.Groups == nil {
		g.Groups = []*Group{}
	}
	if g.Dependencies == nil {
		g.Dependencies = []string{}
	}
}

// pathSegments splits a path id as Marathon does: slashes at either end and empty segments
// do not count; it is absolute when it starts with a slash.
func pathSegments(id string) (segments []string, absolute bool) {
	for s := range strings.SplitSeq(id, "/") {
		if s != "" {
			segments = append(segments, s)
		}
	}
	return segments, strings.HasPrefix(id, "/")
}

// canonicalPath makes id absolute against base (itself absolute), resolving "." and "..";
// ".." above the root stays at the root.
func canonicalPath(id, base string) string {
	segments, absolute := pathSegments(id)
	if !absolute {
		baseSegments, _ := pathSegments(base)
		segments = append(baseSegments, segments...)
	}
	var resolved []string
	for _, s := range segments {
		switch s {
		case ".":
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
		default:
			resolved = append(resolved, s)
		}
	}
	return "/" + strings.Join(resolved, "/")
}

// parentPath is the group an absolute id is in ("/" for top-level ids and the root).
func parentPath(id string) string {
	segments, _ := pathSegments(id)
	if len(segments) <= 1 {
		return "/"
	}
	return "/" + strings.Join(segments[:len(segments)-1], "/")
}

// archiveSuffixes are the URIs that Marathon extracted when translating legacy uris.
var archiveSuffixes = []string{".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip"}

func normalizeFetch(app *App) {
	if len(app.URIs) == 0 {
		app.URIs = nil
		return
	}
	if len(app.Fetch) > 0 {
		return // both: Validate reports it
	}
	app.Fetch = make([]Fetch, len(app.URIs))
	for i, uri := range app.URIs {
		extract := slices.ContainsFunc(archiveSuffixes, func(s string) bool { return strings.HasSuffix(uri, s) })
		app.Fetch[i] = Fetch{URI: uri, Extract: extract}
	}
	app.URIs = nil
}

func normalizeDockerPortMappings(app *App) {
	c := app.Container
	if c == nil || c.Docker == nil || c.Docker.PortMappings == nil {
		return
	}
	if c.PortMappings != nil && len(c.Docker.PortMappings) > 0 {
		return // both: Validate reports it
	}
	if c.PortMappings == nil {
		c.PortMappings = c.Docker.PortMappings
	}
	c.Docker.PortMappings = nil
}

// networkTranslation is the canonical form of an app's legacy network fields, or why there
// is none.
type networkTranslation struct {
	networks  []Network
	container *Container
	conflict  *ErrorDetail
}

// translateNetworks turns ipAddress and container.docker.network into networks (and
// ipAddress's discovery ports into port mappings) without changing app.
func translateNetworks(app *App) networkTranslation {
	ip := app.IPAddress
	dockerNetwork := ""
	if app.Container != nil && app.Container.Docker != nil {
		dockerNetwork = app.Container.Docker.Network
	}
	if ip == nil && dockerNetwork == "" {
		return networkTranslation{networks: app.Networks, container: app.Container}
	}
	conflict := func(path, msg string) networkTranslation {
		return networkTranslation{conflict: &ErrorDetail{Path: path, Errors: []string{msg}}}
	}
	if len(app.Networks) > 0 {
		if dockerNetwork != "" {
			return conflict("/container/docker/network", "must not specify both container.docker.network and networks")
		}
		return conflict("/ipAddress", "must not specify both networks and ipAddress")
	}
	var ipName string
	var ipLabels map[string]string
	if ip != nil {
		ipName, ipLabels = ip.NetworkName, ip.Labels
	}
	var network Network
	switch {
	case dockerNetwork == dockerNetworkHost:
		network = Network{Mode: NetworkHost}
	case dockerNetwork == dockerNetworkUser:
		network = Network{Mode: NetworkContainer, Name: ipName, Labels: ipLabels}
	case dockerNetwork == dockerNetworkBridge:
		network = Network{Mode: NetworkBridge, Labels: ipLabels}
	case dockerNetwork != "":
		return conflict("/container/docker/network", "unsupported docker network type "+dockerNetwork)
	case ipName == mesosBridgeName:
		network = Network{Mode: NetworkBridge, Labels: ipLabels}
	default:
		network = Network{Mode: NetworkContainer, Name: ipName, Labels: ipLabels}
	}

	var container Container
	switch {
	case app.Container != nil:
		container = *app.Container
	default:
		// ipAddress without a container meant an empty Mesos container.
		container = Container{Type: ContainerMesos}
	}
	if container.Docker != nil {
		docker := *container.Docker
		docker.Network = ""
		container.Docker = &docker
	}
	if ip != nil && ip.Discovery != nil && len(ip.Discovery.Ports) > 0 {
		if container.Type != ContainerMesos {
			return conflict("/ipAddress/discovery/ports", "ipAddress.discovery.ports do not apply for container type "+container.Type)
		}
		if len(container.PortMappings) > 0 {
			return conflict("/ipAddress/discovery/ports", "container.portMappings and ipAddress.discovery.ports must not both be set")
		}
		container.PortMappings = make([]PortMapping, len(ip.Discovery.Ports))
		for i, p := range ip.Discovery.Ports {
			container.PortMappings[i] = PortMapping{ContainerPort: p.Number, Name: p.Name, Protocol: p.Protocol}
		}
	}
	return networkTranslation{networks: []Network{network}, container: &container}
}

// defaultPortMapping is what a container on a non-host network gets without port mappings.
func defaultPortMapping() PortMapping {
	return PortMapping{HostPort: new(0), Protocol: ProtocolTCP, Name: "default"}
}

func normalizePorts(app *App) {
	migrated := app.PortDefinitions
	if app.Ports != nil {
		fromPorts := make([]PortDefinition, len(app.Ports))
		for i, p := range app.Ports {
			fromPorts[i] = PortDefinition{Port: p, Protocol: ProtocolTCP}
		}
		switch {
		case migrated == nil:
			migrated = fromPorts
			app.Ports = nil
		case slices.EqualFunc(migrated, app.Ports, func(d PortDefinition, p int) bool { return d.Port == p }):
			app.Ports = nil
			// otherwise both, different: Validate reports it
		}
	}
	nonHost := slices.ContainsFunc(app.Networks, func(n Network) bool { return n.Mode != NetworkHost })
	bridge := slices.ContainsFunc(app.Networks, func(n Network) bool { return n.Mode == NetworkBridge })
	if nonHost && app.Container == nil {
		app.Container = &Container{Type: ContainerMesos}
	}
	if c := app.Container; c != nil {
		switch {
		case !nonHost:
			c.PortMappings = nil
		default:
			if c.PortMappings == nil {
				c.PortMappings = []PortMapping{defaultPortMapping()}
			}
			// Legacy apps gave container ports as ports; each needs a mapping.
			for len(c.PortMappings) < len(migrated) {
				c.PortMappings = append(c.PortMappings, PortMapping{Protocol: ProtocolTCP})
			}
			if bridge {
				for i := range c.PortMappings {
					if c.PortMappings[i].HostPort == nil {
						c.PortMappings[i].HostPort = new(0)
					}
				}
			}
		}
	}
	switch {
	case nonHost:
		app.PortDefinitions = nil
		app.RequirePorts = false
	case migrated == nil:
		app.PortDefinitions = []PortDefinition{{Port: 0, Protocol: ProtocolTCP, Name: "default"}}
	default:
		app.PortDefinitions = migrated
	}
}

// hasPorts tells whether an app (normalised as far as ports) has any port.
func hasPorts(app *App) bool {
	return len(app.PortDefinitions) > 0 || app.Container != nil && len(app.Container.PortMappings) > 0
}

func isHTTPCheck(protocol string) bool {
	switch protocol {
	case HealthHTTP, HealthHTTPS, HealthMesosHTTP, HealthMesosHTTPS:
		return true
	}
	return false
}

func normalizeChecks(app *App) {
	ports := hasPorts(app)
	for i := range app.HealthChecks {
		hc := &app.HealthChecks[i]
		if hc.Protocol != HealthCommand && hc.Port == nil && hc.PortIndex == nil && ports {
			hc.PortIndex = new(0)
		}
		if hc.Path == "" && isHTTPCheck(hc.Protocol) {
			hc.Path = "/"
		}
	}
	if c := app.Check; c != nil && ports {
		if h := c.HTTP; h != nil && h.Port == nil && h.PortIndex == nil {
			h.PortIndex = new(0)
		}
		if t := c.TCP; t != nil && t.Port == nil && t.PortIndex == nil {
			t.PortIndex = new(0)
		}
	}
	for i := range app.ReadinessChecks {
		rc := &app.ReadinessChecks[i]
		if len(rc.HTTPStatusCodesForReady) == 0 {
			rc.HTTPStatusCodesForReady = []int{200}
		}
	}
}

// dropEmpty sets the empty lists and maps that marshalling leaves out (omitempty) to nil,
// through the whole value.
func dropEmpty(rv reflect.Value) {
	switch rv.Kind() {
	case reflect.Pointer:
		if !rv.IsNil() {
			dropEmpty(rv.Elem())
		}
	case reflect.Slice:
		for i := range rv.Len() {
			dropEmpty(rv.Index(i))
		}
	case reflect.Struct:
		for _, f := range fieldsOf(rv.Type()) {
			fv := rv.Field(f.index)
			if f.omitEmpty && (fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map) && fv.Len() == 0 {
				fv.SetZero()
				continue
			}
			dropEmpty(fv)
		}
	}
}

package marathon

import (
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
)

// AppPatch is a partial update of an app (PATCH /v2/apps/{id}, and PUT /v2/apps with
// partialUpdate): the top-level fields the JSON had, with their values. As in Marathon a
// field present replaces the app's whole field (container, healthChecks, … are not merged
// further) and a null field counts as absent.
type AppPatch struct {
	// App holds the values of the fields in Fields; its other fields mean nothing.
	App App
	// Fields are the JSON names of the top-level fields present. Legacy forms are already
	// translated: "ports" became "portDefinitions", "uris" "fetch", "ipAddress" and
	// container.docker.network "networks".
	Fields map[string]bool
}

const msgVersionOnly = "The 'version' field may only be combined with the 'id' field."

// appType is the reflect type of App, whose fields patches name.
var appType = reflect.TypeFor[App]()

// DecodeAppPatch reads a partial update. Errors as DecodeApp's; a patch with "version" (a
// request to go back to that version) may have no field but "id" besides.
func DecodeAppPatch(data []byte) (*AppPatch, error) {
	tree, err := parseJSON(data)
	if err != nil {
		return nil, err
	}
	d := &decoder{}
	var u details
	patch := decodePatch(d, &u, tree.(map[string]any), "")
	if e := d.err(); e != nil {
		return nil, e
	}
	if e := u.errorWith(http.StatusUnprocessableEntity, MessageInvalidObject); e != nil {
		return nil, e
	}
	return patch, nil
}

// DecodeAppPatchList reads the partial updates of PUT /v2/apps: {"apps": [...]} or a bare
// array; each must have an id.
func DecodeAppPatchList(data []byte) ([]*AppPatch, error) {
	items, prefix, err := parseList(data)
	if err != nil {
		return nil, err
	}
	d := &decoder{}
	var u details
	patches := make([]*AppPatch, len(items))
	for i, item := range items {
		path := prefix + "/" + strconv.Itoa(i)
		m, ok := item.(map[string]any)
		if !ok {
			d.add(path, codeObject)
			continue
		}
		patches[i] = decodePatch(d, &u, m, path)
		if !patches[i].Fields["id"] {
			u.add(path+"/id", codeMissing)
		}
	}
	if e := d.err(); e != nil {
		return nil, e
	}
	if e := u.errorWith(http.StatusUnprocessableEntity, MessageInvalidObject); e != nil {
		return nil, e
	}
	return patches, nil
}

func decodePatch(d *decoder, u *details, m map[string]any, path string) *AppPatch {
	p := &AppPatch{Fields: map[string]bool{}}
	p.App.setDefaults()
	d.value(reflectValue(&p.App), m, path)
	for _, f := range fieldsOf(appType) {
		if m[f.name] != nil {
			p.Fields[f.name] = true
		}
	}
	unsupportedApp(u, m, path)
	if p.Fields["version"] {
		for name := range p.Fields {
			if name != "version" && name != "id" && name != "versionInfo" {
				wholePath := path
				if wholePath == "" {
					wholePath = "/"
				}
				u.add(wholePath, msgVersionOnly)
				break
			}
		}
	}
	p.translateLegacy()
	return p
}

// translateLegacy turns the legacy fields of a patch into the canonical ones they stand
// for, unless they contradict canonical fields of the patch: then both stay, and
// validating the merged app reports it.
func (p *AppPatch) translateLegacy() {
	app := &p.App
	if p.Fields["uris"] {
		hadURIs := len(app.URIs) > 0
		normalizeFetch(app)
		if app.URIs == nil {
			delete(p.Fields, "uris")
			if hadURIs {
				p.Fields["fetch"] = true
			}
		}
	}
	if p.Fields["ports"] && !p.Fields["portDefinitions"] {
		app.PortDefinitions = make([]PortDefinition, len(app.Ports))
		for i, port := range app.Ports {
			app.PortDefinitions[i] = PortDefinition{Port: port, Protocol: ProtocolTCP}
		}
		app.Ports = nil
		delete(p.Fields, "ports")
		p.Fields["portDefinitions"] = true
	}
	if p.Fields["container"] {
		normalizeDockerPortMappings(app)
	}
	legacyNetwork := app.IPAddress != nil || app.Container != nil && app.Container.Docker != nil && app.Container.Docker.Network != ""
	if !legacyNetwork {
		return
	}
	if t := translateNetworks(app); t.conflict == nil {
		app.Networks, app.Container, app.IPAddress = t.networks, t.container, nil
		delete(p.Fields, "ipAddress")
		p.Fields["networks"] = true
		p.Fields["container"] = true
	}
}

// Merge returns a copy of a with the patch's fields in place of a's, sharing nothing with a
// or the patch. The id, version and versionInfo stay a's. When the patch moves the app
// between host and container networking without giving portDefinitions, they are dropped
// for Normalize to derive again. Normalize and Validate the result.
func (a *App) Merge(p *AppPatch) *App {
	merged := a.Clone()
	patch := p.App.Clone()
	mv, pv := reflectValue(merged), reflectValue(patch)
	for _, f := range fieldsOf(appType) {
		switch f.name {
		case "id", "version", "versionInfo":
			continue
		}
		if p.Fields[f.name] {
			mv.Field(f.index).Set(pv.Field(f.index))
		}
	}
	nonHost := func(networks []Network) bool {
		return slices.ContainsFunc(networks, func(n Network) bool { return n.Mode != NetworkHost })
	}
	if p.Fields["networks"] && !p.Fields["portDefinitions"] && nonHost(a.Networks) != nonHost(merged.Networks) {
		merged.PortDefinitions = nil
	}
	return merged
}

// FieldNames lists the patch's fields in order, for messages and logs.
func (p *AppPatch) FieldNames() []string {
	return slices.Sorted(maps.Keys(p.Fields))
}

package pkgs

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
)

// ErrNoTemplate is why a package that only installs a CLI cannot be rendered.
var ErrNoTemplate = errors.New("the package has no Marathon template: it installs no app")

// RenderError is why a package did not render into a valid Marathon app or group.
type RenderError struct {
	Package string
	Version string
	// Reason says which step failed.
	Reason string
	// Err is the cause; a *marathon.Error (its details name each field) when Marathon's
	// rules refused the rendered app or group.
	Err error
}

func (e *RenderError) Error() string {
	return fmt.Sprintf("render package %s %s: %s: %v", e.Package, e.Version, e.Reason, e.Err)
}

func (e *RenderError) Unwrap() error { return e.Err }

// Rendered is a package rendered with options: what /package/render answers and what
// /package/install creates.
type Rendered struct {
	Package *Package
	// Options are the merged options the template was rendered with.
	Options map[string]any
	// JSON is the rendered app or group as the template wrote it, plus the package labels
	// and the app id override: the marathonJson of Cosmos's render answer.
	JSON json.RawMessage
	// App is the app, normalised and valid; nil when the package renders a group.
	App *marathon.App
	// Group is the group, normalised and valid; nil when the package renders an app.
	Group *marathon.Group
}

// Render renders the package's Marathon template the way Cosmos did: with the merged and
// checked options (see Options) and the package's resource.json as "resource" in the
// context, and without HTML escaping. The result must be a JSON object: an app, or — Atoll's
// extension for packages of several services — a group (an object with "apps" or
// "groups"), whose apps may depend on each other. Every app gets the package labels
// (universe.LabelName and the others) over its own, so that an installed app can be
// recognised; a non-empty appID replaces the app's (or the group's) id.
//
// Errors are an *OptionsError for refused options and a *RenderError for anything else
// (ErrNoTemplate for a package that installs no app).
func (p *Package) Render(options json.RawMessage, appID string) (*Rendered, error) {
	if p.template == nil {
		return nil, p.renderError("nothing to render", ErrNoTemplate)
	}
	userOptions, merged, err := p.mergeOptions(options)
	if err != nil {
		return nil, err
	}
	ctx := deepCopy(merged).(map[string]any)
	if p.Resource != nil {
		resource, err := jsonTree(p.Resource)
		if err != nil {
			return nil, p.renderError("resource.json", err)
		}
		ctx = mergeObjects(ctx, map[string]any{"resource": resource})
	}
	text, err := p.template.render(mustacheContext(ctx, false))
	if err != nil {
		return nil, p.renderError("the template did not render", err)
	}
	tree, err := parseRendered(text)
	if err != nil {
		return nil, p.renderError("the rendered template is not valid JSON", err)
	}
	obj, ok := tree.(map[string]any)
	if !ok {
		return nil, p.renderError("the rendered template is not valid", fmt.Errorf("the rendered JSON must be an object (a Marathon app or group), got %s", kindOf(tree)))
	}
	labels, err := p.labels(userOptions)
	if err != nil {
		return nil, p.renderError("package labels", err)
	}
	_, hasApps := obj["apps"]
	_, hasGroups := obj["groups"]
	isGroup := hasApps || hasGroups
	if isGroup {
		err = labelGroup(obj, labels, "")
	} else {
		err = labelApp(obj, labels, "")
	}
	if err != nil {
		return nil, p.renderError("the rendered template is not valid", err)
	}
	if appID != "" {
		if old, ok := obj["id"].(string); ok && isGroup {
			moveGroup(obj, absoluteID(old), absoluteID(appID))
		}
		obj["id"] = appID
	}
	data, err := marshalJSON(obj)
	if err != nil {
		return nil, p.renderError("the rendered template is not valid", err)
	}
	r := &Rendered{Package: p, Options: merged, JSON: data}
	if isGroup {
		r.Group, err = decodeGroup(data)
	} else {
		r.App, err = decodeApp(data)
	}
	if err != nil {
		kindName := "app"
		if isGroup {
			kindName = "group"
		}
		return nil, p.renderError("the rendered "+kindName+" is not valid", err)
	}
	return r, nil
}

func (p *Package) renderError(reason string, err error) *RenderError {
	return &RenderError{Package: p.Name, Version: p.Version, Reason: reason, Err: err}
}

// decodeApp decodes, normalises and validates a rendered app.
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

// decodeGroup decodes, normalises and validates a rendered group.
func decodeGroup(data []byte) (*marathon.Group, error) {
	g, err := marathon.DecodeGroup(data)
	if err != nil {
		return nil, err
	}
	marathon.NormalizeGroup(g, "/")
	if verr := marathon.ValidateGroup(g); verr != nil {
		return nil, verr
	}
	return g, nil
}

// parseRendered parses the rendered template: exactly one JSON document.
func parseRendered(text string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		var syntax *json.SyntaxError
		switch {
		case errors.Is(err, io.EOF):
			return nil, errors.New("the template rendered nothing")
		case errors.As(err, &syntax):
			// Offset counts the offending character.
			return nil, jsonSyntaxError(text, int(syntax.Offset)-1, err.Error())
		default:
			return nil, err
		}
	}
	if rest := strings.TrimLeft(text[dec.InputOffset():], " \t\r\n"); rest != "" {
		return nil, jsonSyntaxError(text, len(text)-len(rest), "unexpected data after the JSON object")
	}
	return tree, nil
}

// labelApp puts the package labels over the labels of a rendered app (path locates it in a
// group). As in Cosmos, the app's own labels must be an object of strings.
func labelApp(app map[string]any, labels map[string]string, path string) error {
	merged := map[string]any{}
	switch own := app["labels"].(type) {
	case nil:
	case map[string]any:
		for k, v := range own {
			if _, ok := v.(string); !ok {
				return fmt.Errorf("%s/labels/%s: a label's value must be a string, got %s", path, k, kindOf(v))
			}
			merged[k] = v
		}
	default:
		return fmt.Errorf("%s/labels: labels must be an object of strings, got %s", path, kindOf(own))
	}
	for k, v := range labels {
		merged[k] = v
	}
	app["labels"] = merged
	return nil
}

// absoluteID makes an id absolute: "a/b" and "/a/b/" are "/a/b".
func absoluteID(id string) string { return "/" + strings.Trim(id, "/") }

// moveGroup rewrites the absolute ids under group that are old or below it (its apps' and
// subgroups' ids and their dependencies) to be under to instead, so that installing a
// group under another id moves the whole tree, dependencies included.
func moveGroup(group map[string]any, old, to string) {
	move := func(id string) string {
		if !strings.HasPrefix(id, "/") {
			return id
		}
		if id == old {
			return to
		}
		if rest, ok := strings.CutPrefix(id, old+"/"); ok {
			return strings.TrimSuffix(to, "/") + "/" + rest
		}
		return id
	}
	var walk func(node map[string]any)
	walk = func(node map[string]any) {
		if id, ok := node["id"].(string); ok {
			node["id"] = move(id)
		}
		if deps, ok := node["dependencies"].([]any); ok {
			for i, d := range deps {
				if s, ok := d.(string); ok {
					deps[i] = move(s)
				}
			}
		}
		for _, field := range []string{"apps", "groups"} {
			list, _ := node[field].([]any)
			for _, item := range list {
				if child, ok := item.(map[string]any); ok {
					walk(child)
				}
			}
		}
	}
	walk(group)
}

// labelGroup labels every app of a rendered group.
func labelGroup(group map[string]any, labels map[string]string, path string) error {
	for _, field := range []string{"apps", "groups"} {
		list, ok := group[field].([]any)
		if !ok {
			if group[field] != nil {
				return fmt.Errorf("%s/%s: expected an array, got %s", path, field, kindOf(group[field]))
			}
			continue
		}
		for i, item := range list {
			itemPath := path + "/" + field + "/" + strconv.Itoa(i)
			obj, ok := item.(map[string]any)
			if !ok {
				return fmt.Errorf("%s: expected an object, got %s", itemPath, kindOf(item))
			}
			var err error
			if field == "apps" {
				err = labelApp(obj, labels, itemPath)
			} else {
				err = labelGroup(obj, labels, itemPath)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	default:
		return "an object"
	}
}

// labels are Cosmos's package labels for apps rendered with the user's options.
func (p *Package) labels(userOptions map[string]any) (map[string]string, error) {
	options, err := json.Marshal(userOptions)
	if err != nil {
		return nil, err
	}
	// The metadata and definition labels are the same for every render: encode them once.
	p.labelsOnce.Do(func() {
		var metadata []byte
		if metadata, p.labelsErr = json.Marshal(p.PackageMetadata()); p.labelsErr != nil {
			return
		}
		p.metadataLabel = base64.StdEncoding.EncodeToString(metadata)
		p.definitionLabel, p.labelsErr = p.definition()
	})
	if p.labelsErr != nil {
		return nil, p.labelsErr
	}
	return map[string]string{
		universe.LabelName:       p.Name,
		universe.LabelVersion:    p.Version,
		universe.LabelSource:     p.Source,
		universe.LabelMetadata:   p.metadataLabel,
		universe.LabelOptions:    base64.StdEncoding.EncodeToString(options),
		universe.LabelDefinition: p.definitionLabel,
	}, nil
}

// PackageMetadata is what the DCOS_PACKAGE_METADATA label of an installed app says: the
// package's descriptive fields and images.
func (p *Package) PackageMetadata() universe.PackageMetadata {
	m := universe.PackageMetadata{
		PackagingVersion:   p.PackagingVersion,
		Name:               p.Name,
		Version:            p.Version,
		Maintainer:         p.Maintainer,
		Description:        p.Description,
		Tags:               p.Tags,
		Selected:           p.Selected,
		Scm:                p.Scm,
		Website:            p.Website,
		Framework:          p.Framework,
		PreInstallNotes:    p.PreInstallNotes,
		PostInstallNotes:   p.PostInstallNotes,
		PostUninstallNotes: p.PostUninstallNotes,
		Licenses:           p.Licenses,
	}
	if m.Tags == nil {
		m.Tags = []string{}
	}
	if p.Resource != nil {
		m.Images = p.Resource.Images
	}
	return m
}

// definition is the DCOS_PACKAGE_DEFINITION label: base64 of a storage envelope holding the
// package's JSON, gzipped.
func (p *Package) definition() (string, error) {
	data, err := json.Marshal(p.Package)
	if err != nil {
		return "", err
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	if _, err := w.Write(data); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	envelope, err := json.Marshal(universe.StorageEnvelope{
		Metadata: map[string]string{
			"Content-Type":     universe.MediaTypePackageV4,
			"Content-Encoding": "gzip",
		},
		Data: gz.Bytes(),
	})
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(envelope), nil
}

// marshalJSON marshals v leaving <, > and & as they are: the rendered JSON is shown to
// people and sent to Marathon, never embedded in HTML.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// jsonTree is v marshalled and parsed back, numbers kept exact.
func jsonTree(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return universe.ParseJSON(data)
}

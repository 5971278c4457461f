package pkgs

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/atoll/atoll/api/universe"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// OptionsError is why a package's install options were refused: every problem, each at its
// option path ("service.cpus", "service.constraints[0]").
type OptionsError struct {
	Package string
	Version string
	// Problems are sorted by path.
	Problems universe.FieldErrors
}

func (e *OptionsError) Error() string {
	return fmt.Sprintf("invalid options for package %s %s: %s", e.Package, e.Version, e.Problems.Error())
}

// configURL names config.json for the schema compiler; references resolve within it.
const configURL = "urn:atoll:package:config.json"

// compileSchema compiles a config schema as draft-04, the JSON Schema version Universe and
// Cosmos used, whatever $schema says ("http://json-schema.org/schema#" would otherwise mean
// the latest draft). References outside the document are refused: a package must not make
// the catalog read files or fetch URLs.
//
// Universe packages often put documentation links in draft-04's "id" keyword, several
// properties the same link; read as ids they would make the schema invalid (duplicate ids)
// or move its base URI, and Cosmos's validator did neither. compileSchema drops them.
func compileSchema(doc map[string]any) (*jsonschema.Schema, error) {
	delete(doc, "$schema")
	dropIDs(doc)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	c.UseLoader(noLoader{})
	if err := c.AddResource(configURL, doc); err != nil {
		return nil, err
	}
	return c.Compile(configURL)
}

// dropIDs removes the "id" keyword from a draft-04 schema and its subschemas (not from
// "properties", where "id" may name an option).
func dropIDs(schema map[string]any) {
	if _, ok := schema["id"].(string); ok {
		delete(schema, "id")
	}
	each := func(v any) {
		if sub, ok := v.(map[string]any); ok {
			dropIDs(sub)
		}
	}
	for _, kw := range []string{"additionalItems", "additionalProperties", "not", "items"} {
		each(schema[kw])
	}
	for _, kw := range []string{"items", "allOf", "anyOf", "oneOf"} {
		if list, ok := schema[kw].([]any); ok {
			for _, v := range list {
				each(v)
			}
		}
	}
	for _, kw := range []string{"properties", "patternProperties", "definitions", "dependencies"} {
		if m, ok := schema[kw].(map[string]any); ok {
			for _, v := range m {
				each(v)
			}
		}
	}
}

// noLoader refuses every external reference.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("references outside config.json are not supported (%s)", url)
}

// schemaDefaults is Cosmos's reading of a schema's defaults: for each property, its
// "default"; without one, for a property with "properties", the object of that property's
// defaults (possibly empty); nothing otherwise.
func schemaDefaults(schema map[string]any) map[string]any {
	out := map[string]any{}
	props, _ := schema["properties"].(map[string]any)
	for name, p := range props {
		prop, ok := p.(map[string]any)
		if !ok {
			continue
		}
		if def, ok := prop["default"]; ok {
			out[name] = def
		} else if _, ok := prop["properties"]; ok {
			out[name] = schemaDefaults(prop)
		}
	}
	return out
}

// Defaults are the package's option defaults, as Cosmos read them from config.json. The map
// is the caller's.
func (p *Package) Defaults() map[string]any {
	return deepCopy(p.defaults).(map[string]any)
}

// Options merges the user's options (a JSON object; empty means none) over the package's
// defaults the way Cosmos did — objects merge key by key, recursively, any other value
// replaces — and checks the result against the package's config schema. It returns the
// merged options, or an *OptionsError listing every problem. As in Cosmos, a package without
// config.json takes no options, and empty merged options are not checked.
func (p *Package) Options(user json.RawMessage) (map[string]any, error) {
	_, merged, err := p.mergeOptions(user)
	return merged, err
}

// mergeOptions is Options, also returning the user's options as parsed.
func (p *Package) mergeOptions(user json.RawMessage) (userOpts, merged map[string]any, err error) {
	userOpts, err = parseOptions(user)
	if err != nil {
		return nil, nil, p.optionsError(universe.FieldErrors{{Message: err.Error()}})
	}
	if p.schema == nil && len(userOpts) > 0 {
		return nil, nil, p.optionsError(universe.FieldErrors{{Message: "this package takes no options (it has no config.json)"}})
	}
	merged = mergeObjects(p.Defaults(), deepCopy(userOpts).(map[string]any))
	if p.schema == nil || len(merged) == 0 {
		return userOpts, merged, nil
	}
	if err := p.schema.Validate(merged); err != nil {
		var verr *jsonschema.ValidationError
		if !errors.As(err, &verr) {
			return nil, nil, p.optionsError(universe.FieldErrors{{Message: err.Error()}})
		}
		return nil, nil, p.optionsError(schemaProblems(verr, merged))
	}
	return userOpts, merged, nil
}

func (p *Package) optionsError(problems universe.FieldErrors) *OptionsError {
	return &OptionsError{Package: p.Name, Version: p.Version, Problems: problems}
}

// parseOptions reads a user's options: nothing, null or a JSON object.
func parseOptions(data json.RawMessage) (map[string]any, error) {
	if len(strings.TrimSpace(string(data))) == 0 {
		return map[string]any{}, nil
	}
	tree, err := universe.ParseJSON(data)
	if err != nil {
		return nil, fmt.Errorf("options: %v", err)
	}
	switch t := tree.(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return t, nil
	default:
		return nil, errors.New("options must be a JSON object")
	}
}

// mergeObjects is circe's deepMerge: fragment's fields override target's, except that two
// objects merge recursively. It takes ownership of both.
func mergeObjects(target, fragment map[string]any) map[string]any {
	for k, v := range fragment {
		to, okT := target[k].(map[string]any)
		fo, okF := v.(map[string]any)
		if okT && okF {
			target[k] = mergeObjects(to, fo)
		} else {
			target[k] = v
		}
	}
	return target
}

// deepCopy copies a parsed JSON value.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = deepCopy(e)
		}
		return a
	default:
		return v
	}
}

var printer = message.NewPrinter(language.English)

// schemaProblems flattens a validation error into one problem per failed keyword, each at
// the path of the option it is about.
func schemaProblems(verr *jsonschema.ValidationError, doc any) universe.FieldErrors {
	seen := map[universe.FieldError]bool{}
	var out universe.FieldErrors
	add := func(fe universe.FieldError) {
		if !seen[fe] {
			seen[fe] = true
			out = append(out, fe)
		}
	}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		path := optionPath(e.InstanceLocation, doc)
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, name := range k.Missing {
				add(universe.FieldError{Path: joinPath(path, name), Message: "required option is missing"})
			}
		case *kind.AdditionalProperties:
			for _, name := range k.Properties {
				add(universe.FieldError{Path: joinPath(path, name), Message: "unknown option: the schema allows no other properties here"})
			}
		default:
			add(universe.FieldError{Path: path, Message: problemMessage(e.ErrorKind)})
		}
	}
	walk(verr)
	slices.SortStableFunc(out, func(a, b universe.FieldError) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// problemMessage says what a failed keyword expected, in plain numbers.
func problemMessage(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Type:
		return fmt.Sprintf("expected %s, got %s", article(strings.Join(k.Want, " or ")), article(k.Got))
	case *kind.Minimum:
		return fmt.Sprintf("must be %s or more, got %s", ratString(k.Want), ratString(k.Got))
	case *kind.Maximum:
		return fmt.Sprintf("must be %s or less, got %s", ratString(k.Want), ratString(k.Got))
	case *kind.ExclusiveMinimum:
		return fmt.Sprintf("must be more than %s, got %s", ratString(k.Want), ratString(k.Got))
	case *kind.ExclusiveMaximum:
		return fmt.Sprintf("must be less than %s, got %s", ratString(k.Want), ratString(k.Got))
	case *kind.MultipleOf:
		return fmt.Sprintf("must be a multiple of %s, got %s", ratString(k.Want), ratString(k.Got))
	case *kind.MinLength:
		return fmt.Sprintf("must be at least %d characters long, got %d", k.Want, k.Got)
	case *kind.MaxLength:
		return fmt.Sprintf("must be at most %d characters long, got %d", k.Want, k.Got)
	case *kind.MinItems:
		return fmt.Sprintf("must have at least %d items, got %d", k.Want, k.Got)
	case *kind.MaxItems:
		return fmt.Sprintf("must have at most %d items, got %d", k.Want, k.Got)
	case *kind.MinProperties:
		return fmt.Sprintf("must have at least %d properties, got %d", k.Want, k.Got)
	case *kind.MaxProperties:
		return fmt.Sprintf("must have at most %d properties, got %d", k.Want, k.Got)
	default:
		return k.LocalizedString(printer)
	}
}

func ratString(r *big.Rat) string {
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// article puts "a" or "an" before a JSON type name.
func article(typ string) string {
	if typ != "" && strings.ContainsAny(typ[:1], "aeiou") {
		return "an " + typ
	}
	return "a " + typ
}

// optionPath turns an instance location into "service.constraints[0]", looking at the
// document to tell array indexes from property names.
func optionPath(tokens []string, doc any) string {
	path := ""
	cur := doc
	for _, tok := range tokens {
		switch c := cur.(type) {
		case []any:
			i, _ := strconv.Atoi(tok)
			path += "[" + tok + "]"
			if i >= 0 && i < len(c) {
				cur = c[i]
			} else {
				cur = nil
			}
		case map[string]any:
			path = joinPath(path, tok)
			cur = c[tok]
		default:
			path = joinPath(path, tok)
			cur = nil
		}
	}
	return path
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// MergeOptions merges the options over onto base (objects recursively, anything else
// replaced), as an update of an installed package does with the options it was installed
// with. Either may be empty.
func MergeOptions(base, over json.RawMessage) (json.RawMessage, error) {
	b, err := parseOptions(base)
	if err != nil {
		return nil, fmt.Errorf("installed options: %w", err)
	}
	o, err := parseOptions(over)
	if err != nil {
		return nil, err
	}
	return json.Marshal(mergeObjects(b, o))
}

// UpgradesFrom says whether this package may replace an installed version (its
// upgradesFrom lists it, or "*").
func (p *Package) UpgradesFrom(version string) bool {
	return slices.Contains(p.Metadata.UpgradesFrom, version) || slices.Contains(p.Metadata.UpgradesFrom, universe.AnyVersion)
}

// DowngradesTo says whether this package, installed, may be replaced by an older version
// (its downgradesTo lists it, or "*").
func (p *Package) DowngradesTo(version string) bool {
	return slices.Contains(p.Metadata.DowngradesTo, version) || slices.Contains(p.Metadata.DowngradesTo, universe.AnyVersion)
}

package marathon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// DecodeApp reads one app definition (POST /v2/apps, PUT /v2/apps/{id}). It answers 400
// "Invalid JSON" for malformed JSON or a value of the wrong type, naming each path with
// Play's code (error.expected.jsstring, …), and 422 for a feature Atoll does not support.
// The app is not normalised yet.
func DecodeApp(data []byte) (*App, error) {
	tree, err := parseJSON(data)
	if err != nil {
		return nil, err
	}
	app := &App{}
	app.setDefaults()
	d := &decoder{}
	d.value(reflectValue(app), tree, "")
	if e := d.err(); e != nil {
		return nil, e
	}
	var u details
	unsupportedApp(&u, tree.(map[string]any), "")
	if e := u.errorWith(http.StatusUnprocessableEntity, MessageInvalidObject); e != nil {
		return nil, e
	}
	residentDefaults(app, tree.(map[string]any))
	return app, nil
}

// residentDefaults gives a resident app (one with local persistent volumes) Marathon's
// upgrade strategy for those, {0.5, 0}, when its JSON has none: a task keeps its volumes,
// so no new task can start beside it.
func residentDefaults(app *App, raw map[string]any) {
	if raw["upgradeStrategy"] == nil && app.Resident() {
		app.UpgradeStrategy = UpgradeStrategy{MinimumHealthCapacity: 0.5, MaximumOverCapacity: 0}
	}
}

// residentGroupDefaults applies residentDefaults to every app of g, whose JSON is raw.
func residentGroupDefaults(g *Group, raw map[string]any) {
	rawApps, _ := raw["apps"].([]any)
	for i, app := range g.Apps {
		if i >= len(rawApps) {
			break
		}
		if m, ok := rawApps[i].(map[string]any); ok && app != nil {
			residentDefaults(app, m)
		}
	}
	rawGroups, _ := raw["groups"].([]any)
	for i, sub := range g.Groups {
		if i >= len(rawGroups) {
			break
		}
		if m, ok := rawGroups[i].(map[string]any); ok && sub != nil {
			residentGroupDefaults(sub, m)
		}
	}
}

// DecodeGroup reads a group definition (POST/PUT /v2/groups) with its apps and subgroups.
// Errors as DecodeApp's, with paths from the group ("/groups/0/apps/1/cpus").
func DecodeGroup(data []byte) (*Group, error) {
	tree, err := parseJSON(data)
	if err != nil {
		return nil, err
	}
	g := &Group{}
	d := &decoder{}
	d.value(reflectValue(g), tree, "")
	if e := d.err(); e != nil {
		return nil, e
	}
	var u details
	unsupportedGroup(&u, tree.(map[string]any), "")
	if e := u.errorWith(http.StatusUnprocessableEntity, MessageInvalidObject); e != nil {
		return nil, e
	}
	residentGroupDefaults(g, tree.(map[string]any))
	return g, nil
}

// DecodeAppList reads several apps: {"apps": [...]} (as GET /v2/apps answers) or a bare
// array (as PUT /v2/apps takes). Paths in errors follow the shape ("/apps/0/id", "/0/id").
func DecodeAppList(data []byte) ([]*App, error) {
	items, prefix, err := parseList(data)
	if err != nil {
		return nil, err
	}
	apps := make([]*App, len(items))
	d := &decoder{}
	var u details
	for i, item := range items {
		path := prefix + "/" + strconv.Itoa(i)
		apps[i] = &App{}
		apps[i].setDefaults()
		d.value(reflectValue(apps[i]), item, path)
		if m, ok := item.(map[string]any); ok {
			unsupportedApp(&u, m, path)
			residentDefaults(apps[i], m)
		}
	}
	if e := d.err(); e != nil {
		return nil, e
	}
	if e := u.errorWith(http.StatusUnprocessableEntity, MessageInvalidObject); e != nil {
		return nil, e
	}
	return apps, nil
}

// parseList parses {"apps": [...]} or [...] and returns the items and their paths' prefix.
func parseList(data []byte) ([]any, string, error) {
	tree, err := parseJSONAny(data)
	if err != nil {
		return nil, "", err
	}
	switch x := tree.(type) {
	case []any:
		return x, "", nil
	case map[string]any:
		items, ok := x["apps"].([]any)
		if !ok {
			d := &decoder{}
			d.add("/apps", codeArray)
			return nil, "", d.err()
		}
		return items, "/apps", nil
	default:
		d := &decoder{}
		d.add("/", codeArray)
		return nil, "", d.err()
	}
}

// parseJSON parses a document that must be an object.
func parseJSON(data []byte) (any, error) {
	tree, err := parseJSONAny(data)
	if err != nil {
		return nil, err
	}
	if _, ok := tree.(map[string]any); !ok {
		d := &decoder{}
		d.add("/", codeObject)
		return nil, d.err()
	}
	return tree, nil
}

// parseJSONAny parses one JSON document keeping numbers exact; syntax errors are 400s at "/".
func parseJSONAny(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree any
	err := dec.Decode(&tree)
	if err == nil {
		end := dec.InputOffset()
		if rest := bytes.TrimLeft(data[end:], " \t\r\n"); len(rest) > 0 {
			err = fmt.Errorf("unexpected data after the document at offset %d", int(end)+len(data[end:])-len(rest))
		}
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			err = fmt.Errorf("%w (at offset %d)", err, syntax.Offset)
		}
		return nil, &Error{
			Status:  http.StatusBadRequest,
			Message: MessageInvalidJSON,
			Details: []ErrorDetail{{Path: "/", Errors: []string{err.Error()}}},
		}
	}
	return tree, nil
}

// unmarshalWire implements UnmarshalJSON for the types with a custom wire form.
func unmarshalWire(data []byte, w wireDecoder) error {
	tree, err := parseJSONAny(data)
	if err != nil {
		return err
	}
	d := &decoder{}
	w.decodeWire(d, tree, "")
	if e := d.err(); e != nil {
		return e
	}
	return nil
}

// wireDecoder is a type whose JSON is not a plain object (a string or an object, …).
type wireDecoder interface {
	decodeWire(d *decoder, raw any, path string)
}

// defaulter is a type with Marathon defaults for fields absent from the JSON.
type defaulter interface {
	setDefaults()
}

// decoder turns a parsed JSON tree into Go values, collecting Play's type-error codes by
// JSON path. null counts as absent (Marathon read every optional field as an Option), and
// unknown keys are ignored.
type decoder struct {
	details
}

func (d *decoder) err() *Error {
	return d.errorWith(http.StatusBadRequest, MessageInvalidJSON)
}

// reflectValue is the settable value that ptr points to.
func reflectValue(ptr any) reflect.Value {
	return reflect.ValueOf(ptr).Elem()
}

func (d *decoder) value(rv reflect.Value, raw any, path string) {
	if rv.CanAddr() {
		if w, ok := rv.Addr().Interface().(wireDecoder); ok {
			w.decodeWire(d, raw, path)
			return
		}
	}
	switch rv.Kind() {
	case reflect.Pointer:
		if raw == nil {
			rv.SetZero()
			return
		}
		n := reflect.New(rv.Type().Elem())
		if def, ok := n.Interface().(defaulter); ok {
			def.setDefaults()
		}
		d.value(n.Elem(), raw, path)
		rv.Set(n)
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			d.add(path, codeObject)
			return
		}
		for _, f := range fieldsOf(rv.Type()) {
			v, present := m[f.name]
			if !present || v == nil {
				continue
			}
			d.value(rv.Field(f.index), v, path+"/"+f.name)
		}
	case reflect.Slice:
		a, ok := raw.([]any)
		if !ok {
			d.add(path, codeArray)
			return
		}
		s := reflect.MakeSlice(rv.Type(), len(a), len(a))
		for i, item := range a {
			elem := s.Index(i)
			itemPath := path + "/" + strconv.Itoa(i)
			if item == nil && elem.Kind() == reflect.Pointer {
				d.add(itemPath, codeFor(elem.Type().Elem()))
				continue
			}
			if def, ok := elem.Addr().Interface().(defaulter); ok {
				def.setDefaults()
			}
			d.value(elem, item, itemPath)
		}
		rv.Set(s)
	case reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok {
			d.add(path, codeObject)
			return
		}
		mm := reflect.MakeMapWithSize(rv.Type(), len(m))
		for _, k := range sortedKeys(m) {
			elem := reflect.New(rv.Type().Elem()).Elem()
			d.value(elem, m[k], path+"/"+k)
			mm.SetMapIndex(reflect.ValueOf(k).Convert(rv.Type().Key()), elem)
		}
		rv.Set(mm)
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			d.add(path, codeString)
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			d.add(path, codeBoolean)
			return
		}
		rv.SetBool(b)
	case reflect.Float64:
		n, ok := raw.(json.Number)
		if !ok {
			d.add(path, codeNumber)
			return
		}
		f, ok := parseFloat(n)
		if !ok {
			d.add(path, codeNumber)
			return
		}
		rv.SetFloat(f)
	case reflect.Int, reflect.Int64:
		n, ok := raw.(json.Number)
		if !ok {
			d.add(path, codeNumber)
			return
		}
		code, limit := codeInt, int64(math.MaxInt32)
		if rv.Kind() == reflect.Int64 {
			code, limit = codeLong, math.MaxInt64
		}
		i, ok := parseInt(n, limit)
		if !ok {
			d.add(path, code)
			return
		}
		rv.SetInt(i)
	default:
		// Every wire type is built from the kinds above; anything else is a programming
		// error in this package's types, caught by its tests.
		panic(fmt.Sprintf("marathon: cannot decode into %s", rv.Type()))
	}
}

// codeFor is the code for null where a value of type t is required.
func codeFor(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return codeString
	case reflect.Bool:
		return codeBoolean
	case reflect.Float64, reflect.Int, reflect.Int64:
		return codeNumber
	case reflect.Slice:
		return codeArray
	default:
		return codeObject
	}
}

// parseFloat reads a JSON number as a finite float64.
func parseFloat(n json.Number) (float64, bool) {
	f, err := strconv.ParseFloat(string(n), 64)
	return f, err == nil && !math.IsInf(f, 0)
}

// parseInt reads a JSON number that is an integer in [-limit-1, limit]; like Play it takes
// 2.0 for 2.
func parseInt(n json.Number, limit int64) (int64, bool) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, i <= limit && i >= -limit-1
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != math.Trunc(f) || f > float64(limit) || f < float64(-limit-1) {
		return 0, false
	}
	return int64(f), true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// field is a struct field as the JSON names it.
type field struct {
	name      string
	index     int
	omitEmpty bool
}

var fieldCache sync.Map // reflect.Type → []field

// fieldsOf lists t's JSON fields: the json tag's name, or for input-only fields (json:"-")
// the wire tag's.
func fieldsOf(t reflect.Type) []field {
	if cached, ok := fieldCache.Load(t); ok {
		return cached.([]field)
	}
	var fields []field
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			name = f.Tag.Get("wire")
		}
		if name == "" {
			continue
		}
		fields = append(fields, field{name: name, index: i, omitEmpty: strings.Contains(opts, "omitempty")})
	}
	fieldCache.Store(t, fields)
	return fields
}

// deepCopy copies src into dst (both of one type), sharing no slices, maps or pointers.
func deepCopy(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		n := reflect.New(src.Type().Elem())
		deepCopy(n.Elem(), src.Elem())
		dst.Set(n)
	case reflect.Struct:
		for i := range src.NumField() {
			deepCopy(dst.Field(i), src.Field(i))
		}
	case reflect.Slice:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			deepCopy(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case reflect.Map:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		m := reflect.MakeMapWithSize(src.Type(), src.Len())
		iter := src.MapRange()
		for iter.Next() {
			v := reflect.New(src.Type().Elem()).Elem()
			deepCopy(v, iter.Value())
			m.SetMapIndex(iter.Key(), v)
		}
		dst.Set(m)
	default:
		dst.Set(src)
	}
}

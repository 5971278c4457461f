package universe

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// FieldError is what is wrong at one field of a JSON document.
type FieldError struct {
	// Path is the field's path: "name", "tags[0]", "resource.images.icon-small"; "" is the
	// whole document.
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (e FieldError) String() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// FieldErrors is every problem found in one document.
type FieldErrors []FieldError

func (e FieldErrors) Error() string {
	parts := make([]string, len(e))
	for i, fe := range e {
		parts[i] = fe.String()
	}
	return strings.Join(parts, "; ")
}

// joinPath appends a field name to a path ("service" + "cpus" is "service.cpus").
func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// indexPath appends an array index to a path ("tags" + 0 is "tags[0]").
func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// Decode reads one JSON document into v, which must be a non-nil pointer to one of this
// package's types. It is stricter than Cosmos: besides malformed JSON and values of the wrong
// type it rejects fields the type does not have (a misspelt option name is a mistake, not
// something to ignore) and missing required fields. null counts as absent. Every problem is
// reported, each with its path, as FieldErrors. json.RawMessage fields keep their JSON as
// written (compacted), key order included.
func Decode(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("universe.Decode: need a non-nil pointer, got %T", v)
	}
	if _, err := ParseJSON(data); err != nil {
		return FieldErrors{{Message: err.Error()}}
	}
	d := &decoder{}
	d.value(rv.Elem(), bytes.TrimSpace(data), "", tagOptions{})
	if len(d.errs) > 0 {
		return d.errs
	}
	return nil
}

// ParseJSON parses exactly one JSON document (nothing but space may follow it), keeping
// numbers as json.Number.
func ParseJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("invalid JSON: empty document")
		}
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return nil, fmt.Errorf("invalid JSON at offset %d: %v", syntax.Offset, err)
		}
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, fmt.Errorf("invalid JSON: unexpected data after the document at offset %d", len(data)-len(rest))
	}
	return tree, nil
}

// jsonKind names the JSON type of a valid JSON value ("an object", "a string", …).
func jsonKind(raw []byte) string {
	switch raw[0] {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	case '[':
		return "an array"
	case '{':
		return "an object"
	default:
		return "a number"
	}
}

// tagOptions are a field's `universe:"…"` options.
type tagOptions struct {
	// required: absent or null is an error.
	required bool
	// object: a json.RawMessage that must hold an object.
	object bool
}

type decoder struct {
	errs FieldErrors
}

func (d *decoder) add(path, msg string) {
	d.errs = append(d.errs, FieldError{Path: path, Message: msg})
}

func (d *decoder) expected(path, want string, raw []byte) {
	d.add(path, "expected "+want+", got "+jsonKind(raw))
}

var (
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	byteSliceType  = reflect.TypeFor[[]byte]()
)

// value decodes raw, a valid JSON value without surrounding space, into rv.
func (d *decoder) value(rv reflect.Value, raw []byte, path string, opts tagOptions) {
	switch {
	case rv.Type() == rawMessageType:
		if opts.object && raw[0] != '{' {
			d.expected(path, "an object", raw)
			return
		}
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			d.add(path, err.Error())
			return
		}
		rv.SetBytes(b.Bytes())
		return
	case rv.Type() == byteSliceType:
		var s string
		if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			d.expected(path, "a base64 string", raw)
			return
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			d.add(path, "invalid base64: "+err.Error())
			return
		}
		rv.SetBytes(b)
		return
	}
	switch rv.Kind() {
	case reflect.Pointer:
		n := reflect.New(rv.Type().Elem())
		d.value(n.Elem(), raw, path, opts)
		rv.Set(n)
	case reflect.Struct:
		var m map[string]json.RawMessage
		if raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
			d.expected(path, "an object", raw)
			return
		}
		d.object(rv, m, path)
	case reflect.Slice:
		var a []json.RawMessage
		if raw[0] != '[' || json.Unmarshal(raw, &a) != nil {
			d.expected(path, "an array", raw)
			return
		}
		s := reflect.MakeSlice(rv.Type(), len(a), len(a))
		for i, item := range a {
			if isNull(item) {
				d.add(indexPath(path, i), "must not be null")
				continue
			}
			d.value(s.Index(i), item, indexPath(path, i), tagOptions{})
		}
		rv.Set(s)
	case reflect.Map:
		var m map[string]json.RawMessage
		if raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
			d.expected(path, "an object", raw)
			return
		}
		mm := reflect.MakeMapWithSize(rv.Type(), len(m))
		for _, k := range sortedKeys(m) {
			if isNull(m[k]) {
				d.add(joinPath(path, k), "must not be null")
				continue
			}
			elem := reflect.New(rv.Type().Elem()).Elem()
			d.value(elem, m[k], joinPath(path, k), tagOptions{})
			mm.SetMapIndex(reflect.ValueOf(k), elem)
		}
		rv.Set(mm)
	case reflect.String:
		var s string
		if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			d.expected(path, "a string", raw)
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		if raw[0] != 't' && raw[0] != 'f' {
			d.expected(path, "a boolean", raw)
			return
		}
		rv.SetBool(raw[0] == 't')
	case reflect.Int64:
		if jsonKind(raw) != "a number" {
			d.expected(path, "an integer", raw)
			return
		}
		i, ok := parseInt(json.Number(raw))
		if !ok {
			d.add(path, "expected an integer, got "+string(raw))
			return
		}
		rv.SetInt(i)
	case reflect.Float64:
		if jsonKind(raw) != "a number" {
			d.expected(path, "a number", raw)
			return
		}
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || math.IsInf(f, 0) {
			d.add(path, "number out of range: "+string(raw))
			return
		}
		rv.SetFloat(f)
	default:
		// The types of this package use only the kinds above.
		d.add(path, "cannot decode into "+rv.Type().String())
	}
}

// object fills a struct from an object: every key must be a field, required fields present.
func (d *decoder) object(rv reflect.Value, m map[string]json.RawMessage, path string) {
	fields := fieldsOf(rv.Type())
	for _, k := range sortedKeys(m) {
		i := slices.IndexFunc(fields, func(f field) bool { return f.name == k })
		if i < 0 {
			d.add(joinPath(path, k), "unknown field")
			continue
		}
		if isNull(m[k]) {
			continue
		}
		f := fields[i]
		d.value(rv.FieldByIndex(f.index), m[k], joinPath(path, k), f.opts)
	}
	for _, f := range fields {
		if raw, ok := m[f.name]; f.opts.required && (!ok || isNull(raw)) {
			d.add(joinPath(path, f.name), "missing required field")
		}
	}
}

func isNull(raw json.RawMessage) bool {
	return raw[0] == 'n'
}

// parseInt reads an integral JSON number (2.0 counts) that fits an int64.
func parseInt(n json.Number) (int64, bool) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != math.Trunc(f) || f >= math.MaxInt64 || f < math.MinInt64 {
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

// field is a struct field (or a field of an embedded struct) as JSON names it.
type field struct {
	name  string
	index []int
	opts  tagOptions
}

var fieldCache sync.Map // reflect.Type → []field

func fieldsOf(t reflect.Type) []field {
	if cached, ok := fieldCache.Load(t); ok {
		return cached.([]field)
	}
	var fields []field
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for _, inner := range fieldsOf(f.Type) {
				inner.index = append([]int{i}, inner.index...)
				fields = append(fields, inner)
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		var opts tagOptions
		for _, o := range strings.Split(f.Tag.Get("universe"), ",") {
			switch o {
			case "required":
				opts.required = true
			case "object":
				opts.object = true
			}
		}
		fields = append(fields, field{name: name, index: []int{i}, opts: opts})
	}
	fieldCache.Store(t, fields)
	return fields
}

package pkgs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// parseTemplate parses a Marathon template the way Cosmos read it: values are written as
// they are (Cosmos turned off Mustache's HTML escaping: the output is JSON, not HTML) and
// partials are refused (they would read files).
func parseTemplate(text string) (*mustacheTemplate, error) {
	tmpl, err := parseMustache(text)
	if err != nil {
		return nil, err
	}
	if len(tmpl.partials) > 0 {
		return nil, fmt.Errorf("partials are not supported: {{> %s}}", tmpl.partials[0])
	}
	return tmpl, nil
}

// The values of a template's context, built by mustacheContext the way Cosmos built its
// context for mustache.java, so that templates written for Cosmos render the same:
//   - a string is JSON-escaped without its quotes ("a\"b" renders as a\"b, so that
//     "{{x}}" in a template is a valid JSON string), but an array's strings keep their
//     quotes;
//   - an array renders as "[a, b]", which with the quoted strings is JSON
//     ("constraints": {{service.constraints}});
//   - a number renders as an integer when it is one that fits 32 bits, else as Java printed
//     a double ("0.5", "3.0E9");
//   - booleans render as true and false; false, null, "" and [] are false in sections, and
//     numbers (0 too) are true.
//
// Two things differ, both in output no working template used: an object rendered as a value
// prints as Go prints a map (Java printed {k=v}; neither is JSON), and Java methods called
// through a name ({{^list.isEmpty}}) do not exist, so such a name is missing (false).
type (
	// mustacheArray is a JSON array.
	mustacheArray []any
	// mustacheNumber is a JSON number as it renders.
	mustacheNumber string
	// mustacheNull is JSON null: it renders as nothing and is false in a section.
	mustacheNull struct{}
)

// String renders an array as Java rendered a list: "[" + elements joined by ", " + "]".
func (a mustacheArray) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, e := range a {
		if i > 0 {
			b.WriteString(", ")
		}
		writeElement(&b, e)
	}
	b.WriteByte(']')
	return b.String()
}

func (mustacheNull) String() string { return "" }

// writeElement writes an array element. Objects in arrays are written as JSON, which
// Cosmos did not do (Java printed {k=v}); no template could rely on that output.
func writeElement(b *strings.Builder, e any) {
	switch x := e.(type) {
	case mustacheNull:
		b.WriteString("null")
	case map[string]any:
		b.WriteByte('{')
		for i, k := range sortedKeys(x) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quoteJSON(k))
			b.WriteString(": ")
			if s, ok := x[k].(string); ok {
				// Strings of objects are stored without their quotes.
				b.WriteString(`"` + s + `"`)
			} else {
				writeElement(b, x[k])
			}
		}
		b.WriteByte('}')
	default:
		fmt.Fprint(b, x)
	}
}

// mustacheContext converts a parsed JSON value into a template context value.
func mustacheContext(v any, inArray bool) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = mustacheContext(e, false)
		}
		return m
	case []any:
		a := make(mustacheArray, len(x))
		for i, e := range x {
			a[i] = mustacheContext(e, true)
		}
		return a
	case string:
		q := quoteJSON(x)
		if inArray {
			return q
		}
		return q[1 : len(q)-1]
	case json.Number:
		return mustacheNumber(javaNumber(x))
	case bool:
		return x
	default:
		return mustacheNull{}
	}
}

// quoteJSON is s as a JSON string, with <, > and & as they are.
func quoteJSON(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	// Encoding a string cannot fail.
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// javaNumber formats a JSON number as Cosmos did: an int when it is a whole number that fits
// 32 bits, else Java's Double.toString.
func javaNumber(n json.Number) string {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return string(n)
	}
	if f == math.Trunc(f) && f >= math.MinInt32 && f <= math.MaxInt32 {
		return strconv.FormatInt(int64(f), 10)
	}
	if math.IsInf(f, 0) {
		return string(n)
	}
	if abs := math.Abs(f); abs >= 1e-3 && abs < 1e7 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	// Java's computerized scientific notation: 3.0E9, 1.5E-4.
	mantissa, exp, _ := strings.Cut(strconv.FormatFloat(f, 'e', -1, 64), "e")
	if !strings.Contains(mantissa, ".") {
		mantissa += ".0"
	}
	e, _ := strconv.Atoi(exp)
	return mantissa + "E" + strconv.Itoa(e)
}

// jsonSyntaxError says where in the rendered text a JSON error is (pos is the byte offset of
// the offending character), quoting the line.
func jsonSyntaxError(text string, pos int, msg string) error {
	pos = min(max(pos, 0), len(text))
	line := strings.Count(text[:pos], "\n") + 1
	start := strings.LastIndexByte(text[:pos], '\n') + 1
	end := strings.IndexByte(text[pos:], '\n')
	if end < 0 {
		end = len(text)
	} else {
		end += pos
	}
	return fmt.Errorf("line %d, column %d: %s: %s", line, pos-start+1, msg, strings.TrimSpace(text[start:end]))
}

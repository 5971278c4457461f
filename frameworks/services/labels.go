package services

import (
	"net/http"
	"strings"
	"time"
)

// labelSelector is Marathon's ?label= filter: terms joined by commas, each `key`,
// `!key`, `key==value` (or `key=value`), `key!=value`, `key in (a, b)` or
// `key notin (a, b)`. Every term must hold.
type labelSelector []labelTerm

type labelTerm struct {
	key    string
	op     string // exists, missing, in, notin
	values []string
}

// parseLabelSelector parses a selector; "" selects everything.
func parseLabelSelector(text string) (labelSelector, error) {
	var sel labelSelector
	for _, raw := range splitTerms(text) {
		term := strings.TrimSpace(raw)
		if term == "" {
			continue
		}
		bad := func(why string) error {
			return httpError(http.StatusBadRequest, "label selector %q: term %q: %s", text, term, why)
		}
		switch {
		case strings.Contains(term, "!="):
			k, v, _ := strings.Cut(term, "!=")
			sel = append(sel, labelTerm{strings.TrimSpace(k), "notin", []string{strings.TrimSpace(v)}})
		case strings.Contains(term, "=="):
			k, v, _ := strings.Cut(term, "==")
			sel = append(sel, labelTerm{strings.TrimSpace(k), "in", []string{strings.TrimSpace(v)}})
		case strings.Contains(term, "="):
			k, v, _ := strings.Cut(term, "=")
			sel = append(sel, labelTerm{strings.TrimSpace(k), "in", []string{strings.TrimSpace(v)}})
		case strings.Contains(term, "("):
			open, close := strings.Index(term, "("), strings.LastIndex(term, ")")
			if close < open {
				return nil, bad("no closing parenthesis")
			}
			fields := strings.Fields(term[:open])
			if len(fields) != 2 || (fields[1] != "in" && fields[1] != "notin") {
				return nil, bad("want `key in (values)` or `key notin (values)`")
			}
			var values []string
			for _, v := range strings.Split(term[open+1:close], ",") {
				values = append(values, strings.TrimSpace(v))
			}
			sel = append(sel, labelTerm{fields[0], fields[1], values})
		case strings.HasPrefix(term, "!"):
			sel = append(sel, labelTerm{strings.TrimSpace(term[1:]), "missing", nil})
		default:
			sel = append(sel, labelTerm{term, "exists", nil})
		}
		if sel[len(sel)-1].key == "" {
			return nil, bad("no label name")
		}
	}
	return sel, nil
}

// splitTerms splits on commas outside parentheses.
func splitTerms(text string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range text {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, text[start:i])
				start = i + 1
			}
		}
	}
	return append(out, text[start:])
}

// matches says labels satisfy every term.
func (sel labelSelector) matches(labels map[string]string) bool {
	for _, t := range sel {
		v, ok := labels[t.key]
		switch t.op {
		case "exists":
			if !ok {
				return false
			}
		case "missing":
			if ok {
				return false
			}
		case "in":
			if !ok || !contains(t.values, v) {
				return false
			}
		case "notin":
			if ok && contains(t.values, v) {
				return false
			}
		}
	}
	return true
}

func contains(values []string, v string) bool {
	for _, x := range values {
		if x == v {
			return true
		}
	}
	return false
}

// nowUTC stamps events.
func nowUTC() time.Time { return time.Now().UTC() }

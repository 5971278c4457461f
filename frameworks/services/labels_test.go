package services

import (
	"strings"
	"testing"
)

func TestLabelSelector(t *testing.T) {
	labels := map[string]string{"env": "prod", "tier": "web", "HAPROXY_GROUP": "external"}
	for _, tt := range []struct {
		selector string
		want     bool
	}{
		{"", true},
		{"env", true},
		{"!env", false},
		{"!missing", true},
		{"env==prod", true},
		{"env=prod", true},
		{"env==dev", false},
		{"env!=dev", true},
		{"env!=prod", false},
		{"missing!=x", true},
		{"tier in (web, db)", true},
		{"tier in (db)", false},
		{"tier notin (db, cache)", true},
		{"env==prod, tier in (web,db), HAPROXY_GROUP", true},
		{"env==prod,tier==db", false},
	} {
		sel, err := parseLabelSelector(tt.selector)
		if err != nil {
			t.Errorf("parse %q: %v", tt.selector, err)
			continue
		}
		if got := sel.matches(labels); got != tt.want {
			t.Errorf("%q matches = %v, want %v", tt.selector, got, tt.want)
		}
	}
	for selector, want := range map[string]string{
		"tier in (web":   "no closing parenthesis",
		"tier maybe (x)": "want `key in (values)`",
		"==x":            "no label name",
	} {
		if _, err := parseLabelSelector(selector); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parse %q = %v, want an error containing %q", selector, err, want)
		}
	}
}

func FuzzParseLabelSelector(f *testing.F) {
	for _, seed := range []string{"", "a", "!a", "a==b", "a!=b", "a in (b, c)", "a notin (b)", "a in (b", "a,b==c,(", ")),,"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, selector string) {
		sel, err := parseLabelSelector(selector)
		if err != nil {
			return
		}
		for _, term := range sel {
			if term.key == "" {
				t.Fatalf("%q parsed to a term without a key: %+v", selector, sel)
			}
		}
		sel.matches(map[string]string{"a": "b"})
	})
}

package services

import (
	"strings"
	"testing"
)

func TestSecretName(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{in: "db/pw", want: "db/pw"},
		{in: "/db/pw", want: "db/pw"},
		{in: "a.b_c-d", want: "a.b_c-d"},
		{in: "", err: `"" is not a secret name: path segments of letters, digits and ._- only`},
		{in: "db//pw", err: `"db//pw" is not a secret name: path segments of letters, digits and ._- only`},
		{in: "db/../pw", err: `"db/../pw" is not a secret name: path segments of letters, digits and ._- only`},
		{in: "db/pw!", err: `"db/pw!" is not a secret name: path segments of letters, digits and ._- only`},
	} {
		got, err := secretName(tt.in)
		if gotErr := errString(err); got != tt.want || gotErr != tt.err {
			t.Errorf("secretName(%q) = %q, %q; want %q, %q", tt.in, got, gotErr, tt.want, tt.err)
		}
	}
}

// FuzzSecretName: a name the store accepts is its input without a leading slash, made of
// non-empty segments of letters, digits and "._-", none of them "." or "..".
func FuzzSecretName(f *testing.F) {
	for _, s := range []string{"db/pw", "/a/b", "", "..", "a//b", "x/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := secretName(in)
		if err != nil {
			if got != "" {
				t.Fatalf("secretName(%q) = %q with error %v", in, got, err)
			}
			return
		}
		if got != strings.TrimPrefix(in, "/") {
			t.Fatalf("secretName(%q) = %q", in, got)
		}
		for _, seg := range strings.Split(got, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.Trim(seg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
				t.Fatalf("secretName(%q) accepted segment %q", in, seg)
			}
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

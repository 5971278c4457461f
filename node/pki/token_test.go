package pki

import (
	"errors"
	"strings"
	"testing"
)

const testHash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseJoinToken(t *testing.T) {
	const secret = "atl_abcdefgh2345_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
	tests := []struct {
		name, token string
		want        JoinToken
		err         string
	}{
		{"valid", "ATL1-" + testHash + "-" + secret, JoinToken{CAHash: testHash, Secret: secret}, ""},
		{"short secret", "ATL1-" + testHash + "-s", JoinToken{CAHash: testHash, Secret: "s"}, ""},
		{"empty", "", JoinToken{}, "token is not an Atoll join token: want ATL1-<CA hash>-<secret>, as the first master and `atoll token create --role agent|lb|master` print it"},
		{"API token", secret, JoinToken{}, "token is not an Atoll join token: want ATL1-<CA hash>-<secret>, as the first master and `atoll token create --role agent|lb|master` print it"},
		{"other version", "ATL2-" + testHash + "-" + secret, JoinToken{}, "token is not an Atoll join token: want ATL1-<CA hash>-<secret>, as the first master and `atoll token create --role agent|lb|master` print it"},
		{"lower case prefix", "atl1-" + testHash + "-" + secret, JoinToken{}, "token is not an Atoll join token: want ATL1-<CA hash>-<secret>, as the first master and `atoll token create --role agent|lb|master` print it"},
		{"no secret separator", "ATL1-" + testHash, JoinToken{}, "token is not an Atoll join token: no '-' between the CA hash and the secret"},
		{"short hash", "ATL1-" + testHash[1:] + "-" + secret, JoinToken{}, "token is not an Atoll join token: the CA hash is not 64 lowercase hex digits"},
		{"upper case hash", "ATL1-" + strings.ToUpper(testHash) + "-" + secret, JoinToken{}, "token is not an Atoll join token: the CA hash is not 64 lowercase hex digits"},
		{"swarm token", "SWMTKN-1-" + testHash + "-" + secret, JoinToken{}, "token is not an Atoll join token: want ATL1-<CA hash>-<secret>, as the first master and `atoll token create --role agent|lb|master` print it"},
		{"empty secret", "ATL1-" + testHash + "-", JoinToken{}, "token is not an Atoll join token: the secret must be 1 to 256 characters"},
		{"long secret", "ATL1-" + testHash + "-" + strings.Repeat("a", 257), JoinToken{}, "token is not an Atoll join token: the secret must be 1 to 256 characters"},
		{"dash in secret", "ATL1-" + testHash + "-a-b", JoinToken{}, "token is not an Atoll join token: the secret may hold only letters, digits and '_'"},
		{"newline", "ATL1-" + testHash + "-" + secret + "\n", JoinToken{}, "token is not an Atoll join token: the secret may hold only letters, digits and '_'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseJoinToken(tt.token)
			if got != tt.want || errString(err) != tt.err {
				t.Fatalf("ParseJoinToken(%q) = %+v, %q; want %+v, %q", tt.token, got, errString(err), tt.want, tt.err)
			}
			if err != nil && !errors.Is(err, ErrNotJoinToken) {
				t.Fatalf("error %v does not wrap ErrNotJoinToken", err)
			}
			if err == nil && got.String() != tt.token {
				t.Fatalf("String() = %q, want %q", got.String(), tt.token)
			}
		})
	}
}

// FuzzParseJoinToken: whatever is accepted prints back as itself, with a hash and a
// secret of the format's alphabet and sizes.
func FuzzParseJoinToken(f *testing.F) {
	f.Add("ATL1-" + testHash + "-atl_abcdefgh2345_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst")
	f.Add("ATL1-" + testHash + "-")
	f.Add("ATL1--")
	f.Add("")
	f.Add("SWMTKN-1-x-y")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseJoinToken(s)
		if err != nil {
			if !errors.Is(err, ErrNotJoinToken) {
				t.Fatalf("ParseJoinToken(%q): %v does not wrap ErrNotJoinToken", s, err)
			}
			return
		}
		if tok.String() != s || len(tok.CAHash) != caHashLen || !isLowerHex(tok.CAHash) || tok.Secret == "" || len(tok.Secret) > maxJoinTokenSecret || strings.ContainsAny(tok.Secret, "-\n ") {
			t.Fatalf("ParseJoinToken(%q) accepted it as %+v", s, tok)
		}
	})
}

func TestMasterBaseURL(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"https://10.0.0.1:5050", "https://10.0.0.1:5050", ""},
		{"http://10.0.0.1:5050", "https://10.0.0.1:5050", ""},
		{"http://10.0.0.1:5050/", "https://10.0.0.1:5050", ""},
		{"m1.example:5050", "https://m1.example:5050", ""},
		{"[fd00::1]:5050", "https://[fd00::1]:5050", ""},
		{"10.0.0.1", "", `master URL "10.0.0.1": want https://host:port`},
		{"https://10.0.0.1:5050/v2/apps", "", `master URL "https://10.0.0.1:5050/v2/apps": want https://host:port`},
		{"https://u:p@10.0.0.1:5050", "", `master URL "https://u:p@10.0.0.1:5050": want https://host:port`},
		{"ftp://10.0.0.1:21", "", `master URL "ftp://10.0.0.1:21": scheme "ftp", want https`},
		{"", "", `master URL "": want https://host:port`},
	}
	for _, tt := range tests {
		got, err := MasterBaseURL(tt.in)
		if got != tt.want || errString(err) != tt.err {
			t.Errorf("MasterBaseURL(%q) = %q, %q; want %q, %q", tt.in, got, errString(err), tt.want, tt.err)
		}
	}
}

// FuzzMasterBaseURL: an accepted address becomes an https URL with a host and port and
// nothing else, which is accepted again as itself.
func FuzzMasterBaseURL(f *testing.F) {
	f.Add("https://10.0.0.1:5050")
	f.Add("http://[fd00::1]:5050/")
	f.Add("m1:5050")
	f.Add("https://a:b@c:1/d?e#f")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := MasterBaseURL(s)
		if err != nil {
			return
		}
		again, err := MasterBaseURL(got)
		if err != nil || again != got || !strings.HasPrefix(got, "https://") || strings.ContainsAny(got[len("https://"):], "/?#@") {
			t.Fatalf("MasterBaseURL(%q) = %q, which gives %q, %v", s, got, again, err)
		}
	})
}

package pki

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
)

// caServer is a TLS server presenting cert that serves caPEM at CAPath and counts the
// requests to JoinPath (which it refuses): a master, or a man in the middle.
type caServer struct {
	URL   string
	joins atomic.Int32
}

func startCAServer(t testing.TB, cert tls.Certificate, caPEM []byte) *caServer {
	t.Helper()
	s := &caServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+CAPath, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(caPEM) })
	mux.HandleFunc("POST "+JoinPath, func(w http.ResponseWriter, _ *http.Request) {
		s.joins.Add(1)
		http.Error(w, "not here", http.StatusForbidden)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// TestFetchCA: the CA is taken only when its hash is the pinned one and the server holds
// a master certificate of it; a man in the middle is refused either way, before any
// secret is sent.
func TestFetchCA(t *testing.T) {
	ca := newTestCA(t, "cluster")
	mitm := newTestCA(t, "mitm")
	master := validCert(t, ca, "m1", RoleMaster)
	mitmMaster := validCert(t, mitm, "m1", RoleMaster)

	honest := startCAServer(t, master, ca.CertPEM())
	got, err := FetchCA(context.Background(), honest.URL, ca.Hash(), 10*time.Second)
	if err != nil || got.Hash() != ca.Hash() || got.CanSign() {
		t.Fatalf("FetchCA from the master: %v", err)
	}

	ownCA := startCAServer(t, mitmMaster, mitm.CertPEM())
	relaysCA := startCAServer(t, mitmMaster, ca.CertPEM())
	agentServer := startCAServer(t, validCert(t, ca, "a1", RoleAgent), ca.CertPEM())
	tests := []struct {
		name   string
		server *caServer
		err    string
	}{
		{"man in the middle with its own CA", ownCA, "CA hash mismatch: expected " + ca.Hash() + ", the server presented " + mitm.Hash()},
		{"man in the middle relaying the CA", relaysCA, "the server at " + relaysCA.URL + " sent the cluster CA but its own certificate is not a master's of that CA (a man in the middle?): x509: certificate signed by unknown authority"},
		{"a node that is no master", agentServer, "the server at " + agentServer.URL + " sent the cluster CA but its own certificate is not a master's of that CA (a man in the middle?): x509: certificate is valid for agent.node.atoll, localhost, not master.node.atoll"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FetchCA(context.Background(), tt.server.URL, ca.Hash(), 10*time.Second)
			if errString(err) != tt.err {
				t.Fatalf("FetchCA: %q\nwant %q", errString(err), tt.err)
			}
			token := JoinToken{CAHash: ca.Hash(), Secret: "secret"}
			_, err = Join(context.Background(), JoinConfig{MasterURL: tt.server.URL, Token: token, Identity: Identity{Name: "a2", Roles: []Role{RoleAgent}}})
			if errString(err) != tt.err {
				t.Fatalf("Join: %q\nwant %q", errString(err), tt.err)
			}
			if n := tt.server.joins.Load(); n != 0 {
				t.Fatalf("the secret went to the server %d times", n)
			}
		})
	}

	var mismatch *CAMismatchError
	_, err = FetchCA(context.Background(), ownCA.URL, ca.Hash(), 10*time.Second)
	if !errors.As(err, &mismatch) || mismatch.Expected != ca.Hash() || mismatch.Presented != mitm.Hash() {
		t.Fatalf("FetchCA from a man in the middle: %v, want a CAMismatchError", err)
	}
}

// TestJoinRefusals: what Join says when it cannot start, and when the master refuses.
func TestJoinRefusals(t *testing.T) {
	ca := newTestCA(t, "cluster")
	master := startCAServer(t, validCert(t, ca, "m1", RoleMaster), ca.CertPEM())
	token := JoinToken{CAHash: ca.Hash(), Secret: "secret"}
	agent := Identity{Name: "a1", Roles: []Role{RoleAgent}}
	tests := []struct {
		name string
		cfg  JoinConfig
		err  string
	}{
		{"refused", JoinConfig{MasterURL: master.URL, Token: token, Identity: agent}, "join refused by " + master.URL + ": 403 not here"},
		{"bad URL", JoinConfig{MasterURL: "ftp://x:1", Token: token, Identity: agent}, `master URL "ftp://x:1": scheme "ftp", want https`},
		{"bad identity", JoinConfig{MasterURL: master.URL, Token: token, Identity: Identity{Name: "a1"}}, `join: node "a1": no role`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Join(context.Background(), tt.cfg)
			if errString(err) != tt.err {
				t.Fatalf("Join: %q\nwant %q", errString(err), tt.err)
			}
		})
	}
	var refused *RefusedError
	if _, err := Join(context.Background(), tests[0].cfg); !errors.As(err, &refused) || refused.Status != http.StatusForbidden {
		t.Fatalf("Join: %v, want a RefusedError with 403", err)
	}
}

func TestGrantableRoles(t *testing.T) {
	for _, tt := range []struct {
		role Role
		want []Role
	}{
		{RoleMaster, []Role{RoleMaster, RoleAgent, RoleLB}},
		{RoleAgent, []Role{RoleAgent, RoleLB}},
		{RoleLB, []Role{RoleLB}},
		{"admin", nil},
	} {
		if got := GrantableRoles(tt.role); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("GrantableRoles(%s) = %v, want %v", tt.role, got, tt.want)
		}
	}
}

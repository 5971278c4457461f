package pki

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestCredentialsSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	id := Identity{Name: "m1", Roles: []Role{RoleMaster, RoleAgent}, IPs: []net.IP{net.IPv4(10, 0, 0, 1).To4()}}
	creds, err := NewCluster("prod", id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(creds.GossipKey) != GossipKeySize || !reflect.DeepEqual(creds.Roles(), []Role{RoleMaster, RoleAgent}) || !creds.CA.CanSign() {
		t.Fatalf("NewCluster: gossip key of %d bytes, roles %v, can sign %v", len(creds.GossipKey), creds.Roles(), creds.CA.CanSign())
	}
	if err := creds.Save(dir); err != nil {
		t.Fatal(err)
	}
	modes := map[string]os.FileMode{"ca.crt": 0o644, "ca.key": 0o600, "node.crt": 0o644, "node.key": 0o600, "gossip.key": 0o600}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(modes) {
		t.Fatalf("%d files in %s, want %d", len(entries), dir, len(modes))
	}
	for name, want := range modes {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != want {
			t.Fatalf("%s: %v, mode %v; want %v", name, err, st.Mode().Perm(), want)
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, want 0700", st.Mode().Perm())
	}
	loaded, err := LoadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.CA.Hash() != creds.CA.Hash() || !loaded.CA.CanSign() || !bytes.Equal(loaded.GossipKey, creds.GossipKey) ||
		!bytes.Equal(loaded.Cert.Leaf.Raw, creds.Cert.Leaf.Raw) || !reflect.DeepEqual(loaded.Roles(), creds.Roles()) {
		t.Fatal("loaded credentials differ from the saved ones")
	}
	// What loads works: the loaded master talks mutual TLS with the original.
	if serverErr, clientErr := handshake(t, loaded.ServerTLS(RoleMaster), creds.ClientTLS(RoleMaster)); serverErr != nil || clientErr != nil {
		t.Fatalf("handshake with loaded credentials: server %v, client %v", serverErr, clientErr)
	}

	// A node that is no master keeps no CA key.
	agentDir := filepath.Join(t.TempDir(), "pki")
	verifyOnly, _ := ParseCA(creds.CA.CertPEM(), nil)
	agent := &Credentials{CA: verifyOnly, Cert: validCert(t, creds.CA, "a1", RoleAgent), GossipKey: creds.GossipKey, APIToken: "atl_node_secret"}
	if err := agent.Save(agentDir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(agentDir, "ca.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("agent's ca.key: %v, want none", err)
	}
	if st, err := os.Stat(filepath.Join(agentDir, "api.token")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("agent's api.token: %v, want mode 0600", err)
	}
	if loaded, err := LoadCredentials(agentDir); err != nil || loaded.CA.CanSign() || loaded.APIToken != "atl_node_secret" {
		t.Fatalf("load agent credentials: %v", err)
	}
	// Saved again without a token, the node keeps none.
	agent.APIToken = ""
	if err := agent.Save(agentDir); err != nil {
		t.Fatal(err)
	}
	if loaded, err := LoadCredentials(agentDir); err != nil || loaded.APIToken != "" {
		t.Fatalf("load agent credentials saved without a token: %v", err)
	}
}

func TestLoadCredentialsRefuses(t *testing.T) {
	empty := t.TempDir()
	if _, err := LoadCredentials(empty); !errors.Is(err, ErrNoCredentials) || err.Error() != "no node credentials in "+empty {
		t.Fatalf("empty dir: %v, want ErrNoCredentials", err)
	}

	creds, err := NewCluster("a", Identity{Name: "m1", Roles: []Role{RoleMaster}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other := newTestCA(t, "b")
	tests := []struct {
		name   string
		change func(dir string)
		err    string
	}{
		{"certificate of another CA", func(dir string) {
			foreign := validCert(t, other, "m1", RoleMaster)
			key, _ := KeyPEM(foreignKey(foreign))
			write(t, dir, "node.crt", CertPEM(foreign.Leaf))
			write(t, dir, "node.key", key)
		}, `: node certificate of "m1" was not issued by the cluster CA: x509: ECDSA verification failure`},
		{"key of another certificate", func(dir string) {
			key, _ := KeyPEM(foreignKey(validCert(t, creds.CA, "m2", RoleMaster)))
			write(t, dir, "node.key", key)
		}, ": node certificate: tls: private key does not match public key"},
		{"short gossip key", func(dir string) { write(t, dir, "gossip.key", []byte("AAAA\n")) }, ": gossip.key: want 32 bytes in base64"},
		{"no CA", func(dir string) { os.Remove(filepath.Join(dir, "ca.crt")) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := creds.Save(dir); err != nil {
				t.Fatal(err)
			}
			tt.change(dir)
			_, err := LoadCredentials(dir)
			want := dir + tt.err
			if tt.err == "" {
				want = "read node credentials: open " + filepath.Join(dir, "ca.crt") + ": no such file or directory"
			}
			if errString(err) != want {
				t.Fatalf("LoadCredentials: %q, want %q", errString(err), want)
			}
		})
	}
}

func write(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

package master_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/pki"
)

// renew renews creds's certificate through the master at base, presenting it.
func renew(creds *pki.Credentials, base string) (tls.Certificate, error) {
	transport := &http.Transport{TLSClientConfig: creds.ClientTLS(pki.RoleMaster)}
	defer transport.CloseIdleConnections()
	return pki.Renew(context.Background(), &http.Client{Transport: transport}, base, creds)
}

// refusal is the message of a refused renewal, "" for none.
func refusal(err error) string {
	var refused *pki.RefusedError
	if errors.As(err, &refused) {
		return fmt.Sprintf("%d %s", refused.Status, refused.Message)
	}
	return errString(err)
}

// revoke revokes node name through the admin API and returns the answer's status and
// body.
func (sm *secureMaster) revoke(t testing.TB, name string) (int, string) {
	t.Helper()
	status, _, body := rawCall(t, "POST", sm.URL+pki.RevokePath(name), sm.adminToken, "")
	return status, body
}

// newClusterCreds makes the credentials of a new cluster's master m1.
func newClusterCreds(t testing.TB) *pki.Credentials {
	t.Helper()
	creds, err := pki.NewCluster("test", pki.Identity{Name: "m1", Roles: []pki.Role{pki.RoleMaster}, IPs: []net.IP{net.IPv4(127, 0, 0, 1).To4()}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// nodeTokens lists the tokens whose principal is name, as "role created-by status".
func (sm *secureMaster) nodeTokens(t testing.TB, name string) []string {
	t.Helper()
	list, err := sm.admin.ListTokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tok := range list.Tokens {
		if tok.Principal == name {
			out = append(out, fmt.Sprintf("%s %s %s", tok.Role, tok.CreatedBy, tok.Status(time.Now())))
		}
	}
	return out
}

// adminFrom waits for the admin token a master hands out on admins.
func adminFrom(t testing.TB, admins <-chan string) string {
	t.Helper()
	select {
	case token := <-admins:
		return token
	case <-time.After(waitTimeout):
		t.Fatal("no admin token")
	}
	return ""
}

// TestRenew: a node renews its certificate presenting it: the new one is for a new key,
// with the same name, roles and generation, and the addresses the request asks for. A
// request without a node certificate, or asking for another name, is refused.
func TestRenew(t *testing.T) {
	sm := newSecureMaster(t, true)
	joinToken := sm.joinToken(sm.token(t, api.RoleAgent, 0).Token)
	creds, err := sm.join(joinToken, "a1", pki.RoleAgent, pki.RoleLB)
	if err != nil {
		t.Fatal(err)
	}
	old := creds.CurrentCert().Leaf
	cert, err := renew(creds, sm.HTTPS)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pki.IdentityOf(cert.Leaf), pki.IdentityOf(old); !reflect.DeepEqual(got, want) || got.Name != "a1" ||
		!slices.Equal(got.Roles, []pki.Role{pki.RoleAgent, pki.RoleLB}) {
		t.Fatalf("renewed certificate of %+v, want a1's identity %+v", got, want)
	}
	if cert.Leaf.SerialNumber.Cmp(old.SerialNumber) == 0 || cert.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(old.PublicKey) {
		t.Fatal("the renewed certificate has the old one's serial number or key")
	}
	// The renewed certificate renews in turn.
	creds.SetCert(cert)
	if _, err := renew(creds, sm.HTTPS); err != nil {
		t.Fatalf("renew the renewed certificate: %v", err)
	}

	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientConfig(nil, sm.creds.CA.Pool(), pki.RoleMaster)}}
	t.Cleanup(noCert.CloseIdleConnections)
	if _, err := pki.Renew(context.Background(), noCert, sm.HTTPS, creds); refusal(err) != "403 "+pki.RenewPath+" renews node certificates: call it over TLS presenting the certificate to renew" {
		t.Errorf("renew without a certificate: %q", refusal(err))
	}
	other, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(other, pki.Identity{Name: "a2", Roles: []pki.Role{pki.RoleAgent}})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: creds.ClientTLS(pki.RoleMaster)}}
	t.Cleanup(client.CloseIdleConnections)
	body, _ := json.Marshal(pki.RenewRequest{CSR: string(csr)})
	resp, err := client.Post(sm.HTTPS+pki.RenewPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `certificate request for "a2", but the certificate to renew is of "a1"` + "\n"; resp.StatusCode != http.StatusBadRequest || string(answer) != want {
		t.Errorf("renewal asking for another name: %d %q, want 400 %q", resp.StatusCode, answer, want)
	}
}

// TestRejoinReplacesNode: a node that joins again under its name replaces its API token
// and its certificates: the token list holds one token for it, and its previous
// certificate no longer renews.
func TestRejoinReplacesNode(t *testing.T) {
	sm := newSecureMaster(t, true)
	joinToken := sm.joinToken(sm.token(t, api.RoleAgent, 0).Token)
	first, err := sm.join(joinToken, "a1", pki.RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	second, err := sm.join(joinToken, "a1", pki.RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	joinID := strings.Split(joinToken.Secret, "_")[1]
	if got, want := sm.nodeTokens(t, "a1"), []string{"agent join with token " + joinID + " active"}; !slices.Equal(got, want) {
		t.Fatalf("tokens of a1 after two joins: %q, want %q", got, want)
	}
	if gens := []uint64{pki.CertGeneration(first.Cert.Leaf), pki.CertGeneration(second.Cert.Leaf)}; !slices.Equal(gens, []uint64{0, 1}) {
		t.Fatalf("generations of the two joins' certificates: %v, want [0 1]", gens)
	}
	if _, err := api.NewClient(sm.URL, api.WithToken(first.APIToken)).GetVersion(context.Background()); err == nil ||
		!strings.Contains(err.Error(), "no token has id") {
		t.Errorf("the first join's API token: %v, want it gone", err)
	}
	if _, err := api.NewClient(sm.URL, api.WithToken(second.APIToken)).GetVersion(context.Background()); err != nil {
		t.Errorf("the second join's API token: %v", err)
	}
	_, err = renew(first, sm.HTTPS)
	if want := "403 the certificate of node a1 was replaced when a node of that name joined again at "; !strings.HasPrefix(refusal(err), want) {
		t.Errorf("renew the first join's certificate: %q, want %q…", refusal(err), want)
	}
	if _, err := renew(second, sm.HTTPS); err != nil {
		t.Errorf("renew the second join's certificate: %v", err)
	}
}

// TestRevokeNode: a revoked node's certificate no longer renews and its API token no
// longer works, until it joins again with a join token; revoking it again changes
// nothing. Unknown nodes and masters are not revoked.
func TestRevokeNode(t *testing.T) {
	sm := newSecureMaster(t, true)
	joinToken := sm.joinToken(sm.token(t, api.RoleAgent, 0).Token)
	a1, err := sm.join(joinToken, "a1", pki.RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	tokenID := strings.Split(a1.APIToken, "_")[1]
	status, body := sm.revoke(t, "a1")
	var revocation pki.NodeRevocation
	if err := json.Unmarshal([]byte(body), &revocation); status != http.StatusOK || err != nil || revocation.Name != "a1" ||
		revocation.Generation != 1 || !slices.Equal(revocation.Tokens, []string{tokenID}) || time.Since(revocation.Revoked) > time.Minute {
		t.Fatalf("revoke a1: %d %s, want a1 at generation 1 with token %s", status, body, tokenID)
	}
	revokedAt := revocation.Revoked.UTC().Format(time.RFC3339)
	if _, err := renew(a1, sm.HTTPS); refusal(err) != "403 the certificate of node a1 was revoked at "+revokedAt+" (atoll node revoke): the node must join again with a join token" {
		t.Errorf("renew a revoked certificate: %q", refusal(err))
	}
	if _, err := api.NewClient(sm.URL, api.WithToken(a1.APIToken)).GetVersion(context.Background()); err == nil ||
		err.Error() != "GET_VERSION: 401 Unauthorized: token "+tokenID+" revoked at "+revokedAt {
		t.Errorf("the revoked node's API token: %v", err)
	}
	if status, again := sm.revoke(t, "a1"); status != http.StatusOK || !strings.Contains(again, `"generation":1`) || !strings.Contains(again, `"tokens":[]`) {
		t.Errorf("revoke a1 again: %d %s, want generation 1 and no token", status, again)
	}

	masterToken := sm.joinToken(sm.token(t, api.RoleMaster, 0).Token)
	if _, err := sm.join(masterToken, "m2", pki.RoleMaster); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		status int
		body   string
	}{
		{"nobody", http.StatusNotFound, `no node named "nobody" joined this cluster`},
		{"m2", http.StatusConflict, "node m2 is a master: it holds the cluster CA's key and can sign itself certificates, so revoking its own would not shut it out"},
	} {
		if status, body := sm.revoke(t, tt.name); status != tt.status || body != tt.body+"\n" {
			t.Errorf("revoke %s: %d %q, want %d %q", tt.name, status, body, tt.status, tt.body)
		}
	}

	// Joined again with a join token, the node works again, at a new generation.
	again, err := sm.join(joinToken, "a1", pki.RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	if gen := pki.CertGeneration(again.Cert.Leaf); gen != 2 {
		t.Errorf("generation after joining again: %d, want 2", gen)
	}
	if _, err := renew(again, sm.HTTPS); err != nil {
		t.Errorf("renew after joining again: %v", err)
	}
}

// TestRevokeOnEveryMaster: a node revoked through the leader can renew with no master
// once each has applied the revocation, each checking its own replica.
func TestRevokeOnEveryMaster(t *testing.T) {
	creds := newClusterCreds(t)
	admins := make(chan string, 3)
	cluster := master.NewTestCluster(t, 3, func(c *master.Config) {
		c.Auth = master.AuthConfig{Enabled: true, AdminToken: func(token string) { admins <- token }}
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			if err := master.AttachJoin(m, master.JoinConfig{Credentials: creds, FirstJoinTokens: func(map[pki.Role]string) {}}); err != nil {
				t.Errorf("AttachJoin: %v", err)
			}
		})
	})
	adminToken := adminFrom(t, admins)
	var urls []string
	for _, ts := range cluster.Servers {
		srv := httptest.NewUnstartedServer(ts.Handler())
		srv.TLS = creds.ServerTLS()
		srv.StartTLS()
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	leader := cluster.Leader()
	created, err := api.NewClient(leader.URL, api.WithToken(adminToken)).CreateToken(context.Background(), api.CreateTokenRequest{Role: api.RoleAgent})
	if err != nil {
		t.Fatal(err)
	}
	a1, err := pki.Join(context.Background(), pki.JoinConfig{MasterURL: urls[0], Token: pki.JoinToken{CAHash: creds.CA.Hash(), Secret: created.Token},
		Identity: pki.Identity{Name: "a1", Roles: []pki.Role{pki.RoleAgent}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range urls {
		eventually(t, u+" renewing a1", func() error {
			_, err := renew(a1, u)
			return err
		})
	}
	if status, _, body := rawCall(t, "POST", leader.URL+pki.RevokePath("a1"), adminToken, ""); status != http.StatusOK {
		t.Fatalf("revoke a1: %d %s", status, body)
	}
	for _, u := range urls {
		eventually(t, u+" refusing to renew a1", func() error {
			if _, err := renew(a1, u); !strings.HasPrefix(refusal(err), "403 the certificate of node a1 was revoked at ") {
				return fmt.Errorf("renew: %q", refusal(err))
			}
			return nil
		})
	}
}

// TestOwnToken: the leader registers the API token its master made itself, as the
// master's node token, once: the token works, and the master's node cannot be revoked.
func TestOwnToken(t *testing.T) {
	creds := newClusterCreds(t)
	own, err := master.NewAPIToken()
	if err != nil {
		t.Fatal(err)
	}
	admins := make(chan string, 1)
	ts := master.NewTestServer(t, func(c *master.Config) {
		c.Auth = master.AuthConfig{Enabled: true, AdminToken: func(token string) { admins <- token }}
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			if err := master.AttachJoin(m, master.JoinConfig{Credentials: creds, OwnToken: own, FirstJoinTokens: func(map[pki.Role]string) {}}); err != nil {
				t.Errorf("AttachJoin: %v", err)
			}
		})
	})
	adminToken := adminFrom(t, admins)
	eventually(t, "the own token working", func() error {
		_, err := api.NewClient(ts.URL, api.WithToken(own)).GetVersion(context.Background())
		return err
	})
	list, err := api.NewClient(ts.URL, api.WithToken(adminToken)).ListTokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, tok := range list.Tokens {
		if tok.Principal == "m1" {
			mine = append(mine, fmt.Sprintf("%s %s %s", tok.ID, tok.Role, tok.CreatedBy))
		}
	}
	if want := []string{strings.Split(own, "_")[1] + " master own token of master m1"}; !slices.Equal(mine, want) {
		t.Fatalf("tokens of m1: %q, want %q", mine, want)
	}
	if status, _, body := rawCall(t, "POST", ts.URL+pki.RevokePath("m1"), adminToken, ""); status != http.StatusConflict {
		t.Errorf("revoke the master m1: %d %s, want 409", status, body)
	}
	if err := (master.JoinConfig{Credentials: creds, OwnToken: "atl_x"}).Validate(); errString(err) != "join: own token: "+
		"not an Atoll API token: want atl_<id>_<secret> as `atoll token create` prints it" {
		t.Errorf("a malformed own token: %v", err)
	}
}

package master_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/master/state"
	"github.com/atoll/atoll/node/pki"
)

// testClock is a settable clock for token expiry.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// secureMaster is a master of a secure cluster: the join endpoints attached, its API
// served over TLS with its own certificate as well as over plain HTTP (TestServer's).
type secureMaster struct {
	*master.TestServer
	creds *pki.Credentials
	// HTTPS is the master's API over TLS.
	HTTPS string
	clock *testClock
	// admin is a client with the admin token, adminToken (none when auth is off).
	admin      *api.Client
	adminToken string
	// firstTokens receives the first join tokens.
	firstTokens chan map[pki.Role]string
}

func newSecureMaster(t testing.TB, auth bool) *secureMaster {
	t.Helper()
	creds, err := pki.NewCluster("test", pki.Identity{Name: "m1", Roles: []pki.Role{pki.RoleMaster}, IPs: []net.IP{net.IPv4(127, 0, 0, 1).To4()}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sm := &secureMaster{creds: creds, clock: &testClock{now: time.Now()}, firstTokens: make(chan map[pki.Role]string, 4)}
	admins := make(chan string, 4)
	var attachErr error
	sm.TestServer = master.NewTestServer(t, func(c *master.Config) {
		c.Auth = master.AuthConfig{Enabled: auth, AdminToken: func(token string) { admins <- token }, Now: sm.clock.Now}
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			attachErr = master.AttachJoin(m, master.JoinConfig{Credentials: creds, FirstJoinTokens: func(tokens map[pki.Role]string) { sm.firstTokens <- tokens }})
		})
	})
	if attachErr != nil {
		t.Fatalf("AttachJoin: %v", attachErr)
	}
	srv := httptest.NewUnstartedServer(sm.Handler())
	srv.TLS = creds.ServerTLS()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	sm.HTTPS = srv.URL
	sm.admin = api.NewClient(sm.URL)
	if auth {
		select {
		case token := <-admins:
			sm.admin, sm.adminToken = api.NewClient(sm.URL, api.WithToken(token)), token
		case <-time.After(waitTimeout):
			t.Fatal("no admin token")
		}
	}
	return sm
}

// token creates an API token of role, with a TTL when ttl > 0.
func (sm *secureMaster) token(t testing.TB, role api.TokenRole, ttl time.Duration) *api.CreatedToken {
	t.Helper()
	created, err := sm.admin.CreateToken(context.Background(), api.CreateTokenRequest{Role: role, Principal: "p", TTLSeconds: int64(ttl / time.Second)})
	if err != nil {
		t.Fatalf("create %s token: %v", role, err)
	}
	return created
}

// joinToken is the join token of an API token of this cluster.
func (sm *secureMaster) joinToken(secret string) pki.JoinToken {
	return pki.JoinToken{CAHash: sm.creds.CA.Hash(), Secret: secret}
}

// join joins a node named name with roles through the master's TLS API.
func (sm *secureMaster) join(token pki.JoinToken, name string, roles ...pki.Role) (*pki.Credentials, error) {
	return pki.Join(context.Background(), pki.JoinConfig{
		MasterURL: sm.HTTPS,
		Token:     token,
		Identity:  pki.Identity{Name: name, Roles: roles, IPs: []net.IP{net.IPv4(127, 0, 0, 2).To4()}},
	})
}

// TestJoin: a node joins with a token of a node role and gets a certificate of the
// cluster CA for the roles the token grants, the gossip key, and on masters the CA key;
// every other token is refused with a message that says why, and a token pinning another
// CA never reaches the point of sending its secret.
func TestJoin(t *testing.T) {
	sm := newSecureMaster(t, true)
	agentToken := sm.token(t, api.RoleAgent, 0)
	lbToken := sm.token(t, api.RoleLB, 0)
	masterToken := sm.token(t, api.RoleMaster, 0)
	readOnly := sm.token(t, api.RoleReadOnly, 0)
	revoked := sm.token(t, api.RoleAgent, 0)
	revokedInfo, err := sm.admin.RevokeToken(context.Background(), revoked.Info.ID)
	if err != nil {
		t.Fatal(err)
	}
	expiring := sm.token(t, api.RoleAgent, time.Hour)
	sm.clock.advance(2 * time.Hour)
	adminToken := sm.token(t, api.RoleAdmin, 0)
	wrongSecret := withOtherSecret(agentToken)

	refused := func(status int, msg string) string {
		return fmt.Sprintf("join refused by %s: %d %s", sm.HTTPS, status, msg)
	}
	tests := []struct {
		name   string
		token  pki.JoinToken
		roles  []pki.Role
		err    string
		caKey  bool
		holder string
	}{
		{name: "agent", token: sm.joinToken(agentToken.Token), roles: []pki.Role{pki.RoleAgent}},
		{name: "agent and lb with an agent token", token: sm.joinToken(agentToken.Token), roles: []pki.Role{pki.RoleAgent, pki.RoleLB}},
		{name: "lb", token: sm.joinToken(lbToken.Token), roles: []pki.Role{pki.RoleLB}},
		{name: "master", token: sm.joinToken(masterToken.Token), roles: []pki.Role{pki.RoleMaster, pki.RoleAgent}, caKey: true},
		{name: "agent with an lb token", token: sm.joinToken(lbToken.Token), roles: []pki.Role{pki.RoleAgent},
			err: refused(403, "token "+lbToken.Info.ID+` of role lb cannot join a node with role "agent"`)},
		{name: "master with an agent token", token: sm.joinToken(agentToken.Token), roles: []pki.Role{pki.RoleMaster},
			err: refused(403, "token "+agentToken.Info.ID+` of role agent cannot join a node with role "master"`)},
		{name: "read-only token", token: sm.joinToken(readOnly.Token), roles: []pki.Role{pki.RoleAgent},
			err: refused(403, "role read-only may not POST /atoll/v1/join")},
		{name: "admin token", token: sm.joinToken(adminToken.Token), roles: []pki.Role{pki.RoleAgent},
			err: refused(403, "token "+adminToken.Info.ID+" has role admin, which joins no node: join with a token of role master, agent or lb (atoll token create --role agent)")},
		{name: "wrong secret", token: sm.joinToken(wrongSecret), roles: []pki.Role{pki.RoleAgent},
			err: refused(401, "invalid token: wrong secret for token "+agentToken.Info.ID)},
		{name: "unknown token", token: sm.joinToken("atl_aaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), roles: []pki.Role{pki.RoleAgent},
			err: refused(401, "invalid token: no token has id aaaaaaaaaaaa")},
		{name: "not an API token", token: sm.joinToken("secret"), roles: []pki.Role{pki.RoleAgent},
			err: refused(401, "invalid token: not an Atoll API token: want atl_<id>_<secret> as `atoll token create` prints it")},
		{name: "revoked", token: sm.joinToken(revoked.Token), roles: []pki.Role{pki.RoleAgent},
			err: refused(401, "token "+revoked.Info.ID+" revoked at "+revokedInfo.Revoked.UTC().Format(time.RFC3339))},
		{name: "expired", token: sm.joinToken(expiring.Token), roles: []pki.Role{pki.RoleAgent},
			err: refused(401, "token "+expiring.Info.ID+" expired at "+expiring.Info.Expires.UTC().Format(time.RFC3339))},
		{name: "another cluster's CA", token: pki.JoinToken{CAHash: strings.Repeat("ab", 32), Secret: agentToken.Token}, roles: []pki.Role{pki.RoleAgent},
			err: "CA hash mismatch: expected " + strings.Repeat("ab", 32) + ", the server presented " + sm.creds.CA.Hash()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, err := sm.join(tt.token, "n1", tt.roles...)
			if errString(err) != tt.err {
				t.Fatalf("join: %q\nwant %q", errString(err), tt.err)
			}
			if err != nil {
				return
			}
			if creds.CA.Hash() != sm.creds.CA.Hash() || !bytes.Equal(creds.GossipKey, sm.creds.GossipKey) || creds.CA.CanSign() != tt.caKey ||
				!reflect.DeepEqual(creds.Roles(), tt.roles) || creds.Cert.Leaf.Subject.CommonName != "n1" {
				t.Fatalf("credentials: CA %s, gossip key equal %v, can sign %v, roles %v, name %q", creds.CA.Hash(), bytes.Equal(creds.GossipKey, sm.creds.GossipKey),
					creds.CA.CanSign(), creds.Roles(), creds.Cert.Leaf.Subject.CommonName)
			}
			if err := sm.creds.CA.Verify(creds.Cert.Leaf, time.Now(), tt.roles...); err != nil {
				t.Fatalf("the certificate does not verify: %v", err)
			}
			// What a node joined with works: mutual TLS with the master's certificate.
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
			}))
			srv.TLS = sm.creds.ServerTLS(tt.roles[0])
			srv.StartTLS()
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: creds.ClientTLS(pki.RoleMaster)}}
			defer client.CloseIdleConnections()
			resp, err := client.Get(srv.URL)
			if err != nil {
				t.Fatalf("mutual TLS with the joined credentials: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "n1" {
				t.Fatalf("the server saw %q, want n1", body)
			}
		})
	}
	var refusedErr *pki.RefusedError
	if _, err := sm.join(sm.joinToken(revoked.Token), "n1", pki.RoleAgent); !errors.As(err, &refusedErr) || refusedErr.Status != http.StatusUnauthorized {
		t.Fatalf("revoked token: %v, want a RefusedError with 401", err)
	}
}

// TestJoinWithoutAuth: with API tokens off elsewhere, joins still need a working join
// token, and the CA is public.
func TestJoinWithoutAuth(t *testing.T) {
	sm := newSecureMaster(t, false)
	agent := sm.token(t, api.RoleAgent, 0)
	if _, err := sm.join(sm.joinToken(agent.Token), "a1", pki.RoleAgent); err != nil {
		t.Fatalf("join with an agent token: %v", err)
	}
	want := "join refused by " + sm.HTTPS + ": 401 invalid token: wrong secret for token " + agent.Info.ID
	if _, err := sm.join(sm.joinToken(withOtherSecret(agent)), "a1", pki.RoleAgent); errString(err) != want {
		t.Fatalf("join with a wrong secret: %q, want %q", errString(err), want)
	}
	for _, tt := range []struct {
		method, path, auth string
		status             int
		body               string
	}{
		{"GET", pki.CAPath, "", 200, string(sm.creds.CA.CertPEM())},
		{"POST", pki.JoinPath, "", 401, "authentication required: send the header \"Authorization: Bearer <token>\" (atoll --token, or ATOLL_TOKEN)\n"},
	} {
		status, _, body := rawCall(t, tt.method, sm.URL+tt.path, tt.auth, "")
		if status != tt.status || body != tt.body {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.path, status, body, tt.status, tt.body)
		}
	}
}

// TestJoinBadRequests: a join with a working token but a request the master cannot sign
// is refused with 400 and why.
func TestJoinBadRequests(t *testing.T) {
	sm := newSecureMaster(t, true)
	agent := sm.token(t, api.RoleAgent, 0)
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr := func(id pki.Identity) string {
		data, err := pki.NewCSR(key, id)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	body := func(roles []string, csr string) string {
		data, _ := json.Marshal(map[string]any{"roles": roles, "csr": csr})
		return string(data)
	}
	tests := []struct {
		name, body string
		status     int
		want       string
	}{
		{"no CSR", body([]string{"agent"}, ""), 400, "certificate request: no PEM data: want a CERTIFICATE REQUEST block\n"},
		{"no role", body(nil, csr(pki.Identity{Name: "a1"})), 400, "certificate request: node \"a1\": no role\n"},
		{"unknown role", body([]string{"dns"}, csr(pki.Identity{Name: "a1"})), 403, "token " + agent.Info.ID + " of role agent cannot join a node with role \"dns\"\n"},
		{"a role's name asked for", body([]string{"agent"}, csr(pki.Identity{Name: "a1", DNSNames: []string{"master.node.atoll"}})), 400,
			"certificate request: node \"a1\": DNS name \"master.node.atoll\": names under node.atoll are the roles' and granted by the CA\n"},
		{"bad name", body([]string{"agent"}, csr(pki.Identity{Name: "a_1"})), 400, "certificate request: node name \"a_1\": only letters, digits, '-' and '.' allowed\n"},
		{"not JSON", "{", 400, "failed to parse body into JSON: unexpected EOF\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, got := rawCall(t, "POST", sm.URL+pki.JoinPath, agent.Token, tt.body)
			if status != tt.status || got != tt.want {
				t.Fatalf("%d %q, want %d %q", status, got, tt.status, tt.want)
			}
		})
	}
}

// TestFirstJoinTokens: the first leader of a secure cluster makes one join token per
// node role, hands them out once, and each joins a node of its role; a restarted master
// makes none.
func TestFirstJoinTokens(t *testing.T) {
	sm := newSecureMaster(t, true)
	var tokens map[pki.Role]string
	select {
	case tokens = <-sm.firstTokens:
	case <-time.After(waitTimeout):
		t.Fatal("no first join tokens")
	}
	if len(tokens) != 3 {
		t.Fatalf("%d first join tokens, want 3: %v", len(tokens), tokens)
	}
	list, err := sm.admin.ListTokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]api.Token{}
	for _, tok := range list.Tokens {
		byID[tok.ID] = tok
	}
	for _, role := range pki.Roles {
		token, err := pki.ParseJoinToken(tokens[role])
		if err != nil {
			t.Fatalf("%s token %q: %v", role, tokens[role], err)
		}
		id := strings.Split(token.Secret, "_")[1]
		if token.CAHash != sm.creds.CA.Hash() || byID[id].Role != api.TokenRole(role) || byID[id].CreatedBy != "first-join-tokens" || !byID[id].Expires.IsZero() {
			t.Fatalf("%s token: CA hash %s, listed as %+v", role, token.CAHash, byID[id])
		}
		if _, err := sm.join(token, "n-"+string(role), role); err != nil {
			t.Fatalf("join with the first %s token: %v", role, err)
		}
	}
	sm.Restart()
	select {
	case again := <-sm.firstTokens:
		t.Fatalf("a restarted master made join tokens again: %v", again)
	case <-time.After(time.Second):
	}
}

// TestRaftMutualTLS: three masters replicate over Raft on mutual TLS, each with its own
// certificate of the cluster CA; the Raft port refuses a client that is no master.
func TestRaftMutualTLS(t *testing.T) {
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	credentials := func(name string, roles ...pki.Role) *pki.Credentials {
		key, err := pki.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		cert, err := ca.Issue(key.Public(), pki.Identity{Name: name, Roles: roles}, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return &pki.Credentials{CA: ca, Cert: tlsCert(cert, key)}
	}
	c := master.NewTestCluster(t, 3, func(cfg *master.Config) {
		creds := credentials(cfg.ID, pki.RoleMaster)
		cfg.RaftTLS = &state.RaftTLS{Server: creds.ServerTLS(pki.RoleMaster), Client: creds.ClientTLS(pki.RoleMaster)}
	})
	leader := c.Leader()
	index, err := leader.WriteKV(context.Background(), kvPut("tls", "k", `"replicated"`))
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range c.Servers {
		eventually(t, ts.ID()+" applies the write", func() error {
			entry, ok := ts.Store().KV("tls", "k")
			if !ok || entry.Index != index || string(entry.Value) != `"replicated"` {
				return errors.New("not yet")
			}
			return nil
		})
	}

	agent := credentials("a1", pki.RoleAgent)
	for _, ts := range c.Servers {
		conn, err := tlsDial(string(ts.Raft().Addr()), agent.ClientTLS(pki.RoleMaster))
		if err != nil {
			t.Fatalf("dial %s: %v", ts.ID(), err)
		}
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
		if errString(err) != "remote error: tls: bad certificate" {
			t.Fatalf("an agent's certificate on %s's Raft port: %v, want remote error: tls: bad certificate", ts.ID(), err)
		}
	}
}

// withOtherSecret is token with another secret of the right format.
func withOtherSecret(token *api.CreatedToken) string {
	other := strings.Repeat("a", 52)
	if strings.HasSuffix(token.Token, other) {
		other = strings.Repeat("b", 52)
	}
	return "atl_" + token.Info.ID + "_" + other
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// rawCall makes a request with token as the bearer ("" sends none) and body as JSON
// ("" sends none), and returns the answer.
func rawCall(t testing.TB, method, url, token, body string) (int, http.Header, string) {
	t.Helper()
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, reader)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, string(data)
}

func tlsCert(cert *x509.Certificate, key *ecdsa.PrivateKey) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

func tlsDial(addr string, cfg *tls.Config) (*tls.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, cfg)
}

func kvPut(namespace, key, value string) *state.WriteKVRequest {
	return &state.WriteKVRequest{Namespace: namespace, Puts: []state.KVPut{{Key: key, Value: []byte(value)}}}
}

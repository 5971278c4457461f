package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/pki"
)

// loadCreds reads the credentials a node keeps in its data dir.
func loadCreds(t *testing.T, dataDir string) *pki.Credentials {
	t.Helper()
	creds, err := pki.LoadCredentials(filepath.Join(dataDir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// servedCert is the certificate the TLS server at url presents to a new connection.
func servedCert(t *testing.T, url string, ca *pki.CA) (*x509.Certificate, error) {
	t.Helper()
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}
	defer transport.CloseIdleConnections()
	resp, err := (&http.Client{Transport: transport}).Get(url + "/health")
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0], nil
}

// renewedFrom waits until the certificate a node keeps in dataDir, and the one its TLS
// server at url presents, is a renewal of old: same identity, another serial number.
func renewedFrom(t *testing.T, what, dataDir, url string, old *x509.Certificate) {
	t.Helper()
	eventually(t, what+" renewing its certificate", func() error {
		creds, err := pki.LoadCredentials(filepath.Join(dataDir, "pki"))
		if err != nil {
			return err
		}
		saved := creds.Cert.Leaf
		if saved.SerialNumber.Cmp(old.SerialNumber) == 0 {
			return errors.New("the saved certificate is the old one")
		}
		if got, want := pki.IdentityOf(saved), pki.IdentityOf(old); got.Name != want.Name || !slices.Equal(got.Roles, want.Roles) || got.Generation != want.Generation {
			return fmt.Errorf("renewed as %+v, want %+v", got, want)
		}
		served, err := servedCert(t, url, creds.CA)
		if err != nil {
			return err
		}
		if served.SerialNumber.Cmp(old.SerialNumber) == 0 {
			return errors.New("the TLS server still presents the old certificate")
		}
		return nil
	})
}

// TestSecureCredentialLifecycle: with certificates valid for seconds, a running agent
// renews its own through the master well before it expires, keeps it in its data dir
// and serves its API with it without a restart, and the master does the same with its
// own. Once the agent is revoked, the master refuses every call that presents its
// certificate (on the agent API as elsewhere), its renewal and its API token, saying
// why, and the agent drops out of the master's agents; it comes back by joining again
// with a join token.
func TestSecureCredentialLifecycle(t *testing.T) {
	t.Parallel()
	const validity = 6 * time.Second
	// A revoked agent's calls are refused: it is gone from the master's agents once
	// its connection is down this long.
	sm := startSecureMaster(t, nil, func(c *Config) { c.CertValidity, c.AgentTimeout = validity, 3*time.Second })
	if got := sm.creds.Cert.Leaf.NotAfter.Sub(sm.creds.Cert.Leaf.NotBefore); got > validity+10*time.Minute {
		t.Fatalf("the master's first certificate is valid for %v, want %v (and the clock skew allowance)", got, validity)
	}
	acfg := sm.nodeConfig(t, "a1", sm.tokens[pki.RoleAgent])
	acfg.Agent = true
	a1 := startRun(t, acfg)
	a1Info := a1.info(t)
	joined := loadCreds(t, acfg.DataDir).Cert.Leaf
	if left := time.Until(joined.NotAfter); left > validity || left <= 0 {
		t.Fatalf("the agent's certificate expires in %v, want at most %v", left, validity)
	}
	renewedFrom(t, "the agent", acfg.DataDir, a1Info.AgentURL, joined)
	renewedFrom(t, "the master", sm.cfg.DataDir, sm.info.APIURL, sm.creds.Cert.Leaf)

	creds := loadCreds(t, acfg.DataDir)
	status, body := sm.call(t, nil, http.MethodPost, sm.info.APIURL+pki.RevokePath("a1"), "")
	var revocation pki.NodeRevocation
	if err := json.Unmarshal([]byte(body), &revocation); status != http.StatusOK || err != nil || revocation.Generation != 1 || len(revocation.Tokens) != 1 {
		t.Fatalf("revoke a1: %d %s", status, body)
	}
	refused := "the certificate of node a1 was revoked at " + revocation.Revoked.UTC().Format(time.RFC3339) +
		" (atoll node revoke): the node must join again with a join token"
	client := mastersClient(creds)
	t.Cleanup(client.CloseIdleConnections)
	for _, tt := range []struct{ method, path, body string }{
		{http.MethodPost, api.AgentPath, `{"type": "SUBSCRIBE", "subscribe": {"agent_info": {"hostname": "a1"}}}`},
		{http.MethodGet, "/master/state", ""},
	} {
		req, err := http.NewRequest(tt.method, sm.info.APIURL+tt.path, strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+creds.APIToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		_, _ = got.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || got.String() != refused+"\n" {
			t.Errorf("%s %s with a1's certificate: %d %q, want 403 %q", tt.method, tt.path, resp.StatusCode, got.String(), refused)
		}
	}
	_, err := pki.Renew(context.Background(), client, sm.info.APIURL, creds)
	var refusal *pki.RefusedError
	if !errors.As(err, &refusal) || refusal.Status != http.StatusForbidden || refusal.Message != refused {
		t.Errorf("renew a1's certificate: %v, want 403 %q", err, refused)
	}
	tokenID := strings.Split(creds.APIToken, "_")[1]
	_, err = api.NewClient(sm.info.APIURL, api.WithToken(creds.APIToken), api.WithHTTPClient(sm.tls)).GetVersion(context.Background())
	if want := "GET_VERSION: 401 Unauthorized: token " + tokenID + " revoked at " + revocation.Revoked.UTC().Format(time.RFC3339); errString(err) != want {
		t.Errorf("a1's API token: %q, want %q", errString(err), want)
	}

	eventually(t, "the revoked a1 gone from the master's agents", func() error {
		agents, err := sm.client.GetAgents(context.Background())
		if err != nil {
			return err
		}
		if len(agents.Agents) != 0 {
			return fmt.Errorf("agents %+v", agents.Agents)
		}
		return nil
	})

	// Its credentials removed, it joins again with the join token, at a new generation.
	a1.stop()
	if err := os.RemoveAll(filepath.Join(acfg.DataDir, "pki")); err != nil {
		t.Fatal(err)
	}
	runNode(t, acfg)
	if gen := pki.CertGeneration(loadCreds(t, acfg.DataDir).Cert.Leaf); gen != 2 {
		t.Errorf("generation of the certificate of the join again: %d, want 2", gen)
	}
}

// TestSecureExpiredCertificate: a node whose saved certificate expired is told that the
// masters no longer renew it, and to join again with a join token.
func TestSecureExpiredCertificate(t *testing.T) {
	t.Parallel()
	cluster, err := pki.NewCluster("a", pki.Identity{Name: "m1", Roles: []pki.Role{pki.RoleMaster}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	expired, err := cluster.IssueOwn(pki.Identity{Name: "a1", Roles: []pki.Role{pki.RoleAgent}}, time.Now().Add(-time.Hour), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	verifyOnly, err := pki.ParseCA(cluster.CA.CertPEM(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := loopbackConfig(t, "a1")
	cfg.Agent, cfg.Join, cfg.DNSPort = true, []string{"127.0.0.1:1"}, -1
	creds := &pki.Credentials{CA: verifyOnly, Cert: expired, GossipKey: cluster.GossipKey, APIToken: "atl_x"}
	if err := creds.Save(filepath.Join(cfg.DataDir, "pki")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want := "the credentials in " + filepath.Join(cfg.DataDir, "pki") + " do not fit this node: the node certificate expired at " +
		expired.Leaf.NotAfter.UTC().Format(time.RFC3339) + ", and masters renew only certificates that are valid; join again with --join-token"
	if err := Run(ctx, cfg, nil); errString(err) != want {
		t.Fatalf("Run with an expired certificate: %q\nwant %q", errString(err), want)
	}
}

// gossipKeyOf is the gossip key a node keeps in its data dir.
func gossipKeyOf(t *testing.T, dataDir string) []byte {
	t.Helper()
	return loadCreds(t, dataDir).GossipKey
}

// aliveMembers lists the names of the alive members the master knows.
func (sm *secureMaster) aliveMembers(t *testing.T) ([]string, error) {
	t.Helper()
	members, err := sm.client.GetMembers(context.Background())
	if err != nil {
		return nil, err
	}
	var alive []string
	for _, m := range members.Members {
		if m.Status == "alive" {
			alive = append(alive, m.Name)
		}
	}
	return alive, nil
}

// TestSecureKeyringRotation: a gossip key rotation in a running three-node cluster
// leaves every node a member, each keeping the new key in its data dir (a restarted
// node is a member again); a node that joins afterwards gets the new key, and a node
// with the old one is no longer admitted.
func TestSecureKeyringRotation(t *testing.T) {
	t.Parallel()
	logs := newTestLog(t)
	sm := startSecureMaster(t, nil, nil)
	oldKey := sm.creds.GossipKey
	nodes := map[string]Config{"m1": sm.cfg}
	var a1 testNode
	for _, name := range []string{"a1", "a2"} {
		cfg := sm.nodeConfig(t, name, sm.tokens[pki.RoleAgent])
		cfg.Agent = true
		n := startRun(t, cfg)
		n.info(t)
		nodes[name] = cfg
		if name == "a1" {
			a1 = n
		}
	}
	eventually(t, "three alive members", func() error {
		alive, err := sm.aliveMembers(t)
		if err != nil || !slices.Equal(alive, []string{"a1", "a2", "m1"}) {
			return fmt.Errorf("alive %v (%v)", alive, err)
		}
		return nil
	})

	status, body := sm.call(t, nil, http.MethodPost, sm.info.APIURL+pki.KeyringRotatePath, "")
	var rotation pki.KeyringRotation
	if err := json.Unmarshal([]byte(body), &rotation); status != http.StatusOK || err != nil || rotation.Members != 3 || len(rotation.Missed) != 0 {
		t.Fatalf("rotate: %d %s, want 3 members and none missed", status, body)
	}
	// A node with the old key tries to join meanwhile.
	intruder := startNode(t, logs, "intruder", nil, func(c *MembershipConfig) {
		c.GossipKey, c.Join = oldKey, []string{sm.info.GossipAddr}
	})
	intruderStart := time.Now()
	var newKey []byte
	eventually(t, "every node keeping the new key", func() error {
		newKey = gossipKeyOf(t, sm.cfg.DataDir)
		for name, cfg := range nodes {
			if key := gossipKeyOf(t, cfg.DataDir); bytes.Equal(key, oldKey) || !bytes.Equal(key, newKey) {
				return fmt.Errorf("%s keeps the old key, or another than m1's", name)
			}
		}
		return nil
	})
	// Every member still gossips: a1 restarted with the key it kept is a member again.
	a1.stop()
	runNode(t, nodes["a1"])
	eventually(t, "three alive members after the rotation", func() error {
		alive, err := sm.aliveMembers(t)
		if err != nil || !slices.Equal(alive, []string{"a1", "a2", "m1"}) {
			return fmt.Errorf("alive %v (%v)", alive, err)
		}
		return nil
	})

	// A node joining now gets the new key; its agent learns the master through gossip.
	a3 := sm.nodeConfig(t, "a3", sm.tokens[pki.RoleAgent])
	a3.Agent = true
	runNode(t, a3)
	if !bytes.Equal(gossipKeyOf(t, a3.DataDir), newKey) {
		t.Fatal("a3 joined with another key than the rotated one")
	}

	// The old key no longer admits a member: trying for seconds, the intruder has not
	// joined, and the master does not list it.
	ctx, cancel := context.WithDeadline(context.Background(), intruderStart.Add(3*time.Second))
	defer cancel()
	if err := intruder.WaitJoined(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a node with the old key joining: %v, want no join", err)
	}
	if alive, err := sm.aliveMembers(t); err != nil || !slices.Equal(alive, []string{"a1", "a2", "a3", "m1"}) {
		t.Fatalf("alive members %v (%v), want a1, a2, a3 and m1", alive, err)
	}
}

// TestSecureMasterWithAgent: the master that creates a secure cluster runs an agent and
// a DNS server beside it, with the API token it makes itself: the agent registers, and
// the DNS server follows the master. Restarted with the lb role too, the master signs
// itself a certificate with it, and the lb role runs.
func TestSecureMasterWithAgent(t *testing.T) {
	t.Parallel()
	cfg := loopbackConfig(t, "m1")
	cfg.Master, cfg.Agent, cfg.Secure = true, true, true
	admins := make(chan string, 2)
	cfg.AdminToken = func(token string) { admins <- token }
	cfg.JoinCommands = func(map[pki.Role]string) {}
	m1 := startRun(t, cfg)
	info := m1.info(t)
	if info.AgentID == "" || !strings.HasPrefix(info.AgentURL, "https://") {
		t.Fatalf("node info %+v: want a registered agent serving https", info)
	}
	creds := loadCreds(t, cfg.DataDir)
	if !slices.Equal(creds.Roles(), []pki.Role{pki.RoleMaster, pki.RoleAgent}) || creds.APIToken == "" {
		t.Fatalf("credentials: roles %v, an API token: %v", creds.Roles(), creds.APIToken != "")
	}
	var admin string
	select {
	case admin = <-admins:
	case <-time.After(30 * time.Second):
		t.Fatal("no admin token")
	}
	userTLS := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: creds.CA.Pool()}}}
	t.Cleanup(userTLS.CloseIdleConnections)
	list, err := api.NewClient(info.APIURL, api.WithToken(admin), api.WithHTTPClient(userTLS)).ListTokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var own []string
	for _, tok := range list.Tokens {
		if tok.Principal == "m1" {
			own = append(own, fmt.Sprintf("%s %s %s", tok.ID, tok.Role, tok.CreatedBy))
		}
	}
	if want := []string{strings.Split(creds.APIToken, "_")[1] + " master own token of master m1"}; !slices.Equal(own, want) {
		t.Fatalf("tokens of m1: %q, want %q", own, want)
	}
	eventually(t, "leader.mesos answered by m1's DNS", func() error {
		q := new(mdns.Msg)
		q.SetQuestion("leader.mesos.", mdns.TypeA)
		in, err := mdns.Exchange(q, info.DNSAddr)
		if err != nil {
			return err
		}
		if len(in.Answer) != 1 {
			return fmt.Errorf("answers %v", in.Answer)
		}
		return nil
	})

	m1.stop()
	cfg.LB = true
	cfg.LBHTTPPort, cfg.LBHTTPSPort, cfg.LBAppIDPort, cfg.LBAdminPort = 0, -1, -1, -1
	info = runNode(t, cfg)
	if info.LBHTTPAddr == "" || info.AgentID == "" {
		t.Fatalf("restarted node info %+v: want the lb and the agent", info)
	}
	again := loadCreds(t, cfg.DataDir)
	if !slices.Equal(again.Roles(), []pki.Role{pki.RoleMaster, pki.RoleAgent, pki.RoleLB}) || again.APIToken != creds.APIToken {
		t.Fatalf("credentials after the restart: roles %v, same API token %v", again.Roles(), again.APIToken == creds.APIToken)
	}
}

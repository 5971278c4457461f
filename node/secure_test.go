package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/pki"
)

// secureMaster is the first master of a secure cluster, started by startSecureMaster.
type secureMaster struct {
	info Info
	cfg  Config
	// host is its API's 127.0.0.1:port.
	host  string
	creds *pki.Credentials
	// tokens are the first join tokens, one per node role.
	tokens map[pki.Role]pki.JoinToken
	// admin is the admin token; tls a client trusting the cluster CA alone, and client
	// an API client with both.
	admin  string
	tls    *http.Client
	client *api.Client
}

// startSecureMaster runs the first master of a new secure cluster, its logs to logs (nil:
// the test's log), and waits for its join commands and admin token.
func startSecureMaster(t *testing.T, logs io.Writer, edit func(*Config)) *secureMaster {
	t.Helper()
	cfg := loopbackConfig(t, "m1")
	cfg.Master, cfg.Secure, cfg.DNSPort = true, true, -1
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	commands := make(chan map[pki.Role]string, 2)
	cfg.JoinCommands = func(c map[pki.Role]string) { commands <- c }
	admins := make(chan string, 2)
	cfg.AdminToken = func(token string) { admins <- token }
	if edit != nil {
		edit(&cfg)
	}
	sm := &secureMaster{cfg: cfg, info: runNode(t, cfg), tokens: map[pki.Role]pki.JoinToken{}}
	port, ok := strings.CutPrefix(sm.info.APIURL, "https://127.0.0.1:")
	if !ok {
		t.Fatalf("master API %q, want https://127.0.0.1:…", sm.info.APIURL)
	}
	sm.host = "127.0.0.1:" + port
	var err error
	if sm.creds, err = pki.LoadCredentials(filepath.Join(cfg.DataDir, "pki")); err != nil {
		t.Fatal(err)
	}
	var joinCommands map[pki.Role]string
	select {
	case joinCommands = <-commands:
	case <-time.After(30 * time.Second):
		t.Fatal("no join commands within 30s")
	}
	for _, role := range pki.Roles {
		prefix := "curl -fsSL http://" + sm.host + "/install.sh | sudo sh -s -- " + string(role) + " --token "
		tokenText, ok := strings.CutPrefix(joinCommands[role], prefix)
		token, err := pki.ParseJoinToken(tokenText)
		if !ok || err != nil || token.CAHash != sm.creds.CA.Hash() {
			t.Fatalf("%s join command %q: want %q and a token of CA %s (%v)", role, joinCommands[role], prefix+"ATL1-…", sm.creds.CA.Hash(), err)
		}
		sm.tokens[role] = token
	}
	select {
	case sm.admin = <-admins:
	case <-time.After(30 * time.Second):
		t.Fatal("no admin token within 30s")
	}
	sm.tls = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: sm.creds.CA.Pool()}}}
	t.Cleanup(sm.tls.CloseIdleConnections)
	sm.client = api.NewClient(sm.info.APIURL, api.WithToken(sm.admin), api.WithHTTPClient(sm.tls))
	return sm
}

// nodeConfig is the configuration of a node of role that joins sm's cluster with token.
func (sm *secureMaster) nodeConfig(t *testing.T, name string, token pki.JoinToken) Config {
	cfg := loopbackConfig(t, name)
	cfg.DNSPort, cfg.Join, cfg.MasterURL = -1, []string{sm.info.GossipAddr}, sm.info.APIURL
	cfg.JoinToken = token.String()
	return cfg
}

// joinToken creates an API token of role and returns it as a join token.
func (sm *secureMaster) joinToken(t *testing.T, role api.TokenRole, ttl time.Duration) (pki.JoinToken, *api.CreatedToken) {
	t.Helper()
	created, err := sm.client.CreateToken(context.Background(), api.CreateTokenRequest{Role: role, TTLSeconds: int64(ttl / time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	return pki.JoinToken{CAHash: sm.creds.CA.Hash(), Secret: created.Token}, created
}

// call makes a request with the admin token over TLS, presenting cert when not nil,
// and returns the answer's status and body.
func (sm *secureMaster) call(t *testing.T, cert *tls.Certificate, method, url, body string) (int, string) {
	t.Helper()
	cfg := &tls.Config{RootCAs: sm.creds.CA.Pool()}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	transport := &http.Transport{TLSClientConfig: cfg}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+sm.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// TestSecureAgent: an agent joins a secure master with the first agent join token: it
// gets an agent certificate and an API token of its own, registers over mutual TLS, runs
// a task, and serves its own API over TLS alone. The master takes agent calls only from
// clients holding an agent certificate, whatever their API token. An lb joins with the lb
// token and follows the masters with its own lb token.
func TestSecureAgent(t *testing.T) {
	sm := startSecureMaster(t, nil, nil)
	acfg := sm.nodeConfig(t, "a1", sm.tokens[pki.RoleAgent])
	acfg.Agent, acfg.DNSPort = true, 0
	a1 := runNode(t, acfg)
	if !strings.HasPrefix(a1.AgentURL, "https://127.0.0.1:") || a1.AgentID == "" || a1.APIURL != sm.info.APIURL {
		t.Fatalf("agent node info %+v: want an https agent API, an agent id and the master's API", a1)
	}
	creds, err := pki.LoadCredentials(filepath.Join(acfg.DataDir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	if creds.CA.Hash() != sm.creds.CA.Hash() || creds.CA.CanSign() || !bytes.Equal(creds.GossipKey, sm.creds.GossipKey) ||
		!slices.Equal(creds.Roles(), []pki.Role{pki.RoleAgent}) || creds.APIToken == "" || creds.APIToken == sm.tokens[pki.RoleAgent].Secret {
		t.Fatalf("agent credentials: CA %s, can sign %v, roles %v, own API token %v", creds.CA.Hash(), creds.CA.CanSign(), creds.Roles(),
			creds.APIToken != "" && creds.APIToken != sm.tokens[pki.RoleAgent].Secret)
	}

	// The agent's own token: role agent, its name as the principal, made by the join.
	ctx := context.Background()
	list, err := sm.client.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	joinID := strings.Split(sm.tokens[pki.RoleAgent].Secret, "_")[1]
	var own []string
	for _, tok := range list.Tokens {
		if tok.Principal == "a1" {
			own = append(own, fmt.Sprintf("%s %s", tok.Role, tok.CreatedBy))
		}
	}
	if want := []string{"agent join with token " + joinID}; !slices.Equal(own, want) {
		t.Fatalf("tokens of principal a1: %q, want %q", own, want)
	}

	// A task runs on it.
	app := `{"id": "/sleeper", "cmd": "echo secure-hello; exec sleep 3600", "cpus": 0.1, "mem": 16, "instances": 1}`
	if status, body := sm.call(t, nil, http.MethodPost, sm.info.APIURL+"/v2/apps", app); status != http.StatusCreated {
		t.Fatalf("POST /v2/apps: %d %s", status, body)
	}
	var taskID string
	eventually(t, "the app's task running on a1", func() error {
		tasks, err := sm.client.GetTasks(ctx)
		if err != nil {
			return err
		}
		for _, task := range tasks.Tasks {
			if task.State == api.TaskRunning && task.AgentID.Value == a1.AgentID {
				taskID = task.TaskID.Value
				return nil
			}
		}
		return fmt.Errorf("tasks %+v", tasks.Tasks)
	})

	// Its log, read from the agent's TLS API as `atoll task log` does.
	eventually(t, "the task's stdout through the agent's TLS API", func() error {
		loc, err := sm.client.LocateTaskLog(ctx, taskID)
		if err != nil {
			return err
		}
		if loc.AgentURL != a1.AgentURL {
			return fmt.Errorf("log located at %s, want %s", loc.AgentURL, a1.AgentURL)
		}
		var out bytes.Buffer
		if err := sm.client.CopyTaskLog(ctx, loc, &out, api.TaskLogOptions{}); err != nil {
			return err
		}
		if out.String() != "secure-hello\n" {
			return fmt.Errorf("stdout %q", out.String())
		}
		return nil
	})

	// The agent node's DNS follows the masters over TLS with the node's own token: the
	// task's name answers there.
	eventually(t, "sleeper.marathon.mesos answered by a1's DNS", func() error {
		q := new(mdns.Msg)
		q.SetQuestion("sleeper.marathon.mesos.", mdns.TypeA)
		in, err := mdns.Exchange(q, a1.DNSAddr)
		if err != nil {
			return err
		}
		if len(in.Answer) != 1 {
			return fmt.Errorf("answers %v", in.Answer)
		}
		if a, ok := in.Answer[0].(*mdns.A); !ok || a.A.String() != "127.0.0.1" {
			return fmt.Errorf("answer %v, want A 127.0.0.1", in.Answer[0])
		}
		return nil
	})

	// The agent's API: TLS with its certificate of the cluster CA, and nothing else.
	if status, body := sm.call(t, nil, http.MethodGet, a1.AgentURL+"/health", ""); status != http.StatusOK {
		t.Errorf("GET %s/health over TLS: %d %s", a1.AgentURL, status, body)
	}
	plainURL := "http://" + strings.TrimPrefix(a1.AgentURL, "https://") + "/health"
	if resp, err := http.Get(plainURL); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET %s over plain HTTP: %v, want 400 from a TLS server", plainURL, err)
	} else {
		resp.Body.Close()
	}

	// The agent API of the master: an agent's certificate, else 403.
	subscribe := `{"type": "SUBSCRIBE", "subscribe": {"agent_info": {"hostname": "fake"}}}`
	for _, tt := range []struct {
		name string
		cert *tls.Certificate
		want string
	}{
		{"no certificate", nil, api.AgentPath + " is for nodes of role agent: call it over TLS with the node certificate the agent got by joining (--join-token)\n"},
		{"a master's certificate", &sm.creds.Cert, api.AgentPath + ` is for nodes of role agent: certificate of "m1" holds master, want agent` + "\n"},
	} {
		if status, body := sm.call(t, tt.cert, http.MethodPost, sm.info.APIURL+api.AgentPath, subscribe); status != http.StatusForbidden || body != tt.want {
			t.Errorf("%s: SUBSCRIBE with the admin token: %d %q, want 403 %q", tt.name, status, body, tt.want)
		}
	}

	// An lb joins with the lb token and reads the apps with its own token.
	lcfg := sm.nodeConfig(t, "l1", sm.tokens[pki.RoleLB])
	lcfg.LB = true
	lcfg.LBHTTPPort, lcfg.LBHTTPSPort, lcfg.LBAppIDPort, lcfg.LBAdminPort = 0, -1, -1, -1
	runNode(t, lcfg)
	lbCreds, err := pki.LoadCredentials(filepath.Join(lcfg.DataDir, "pki"))
	if err != nil || !slices.Equal(lbCreds.Roles(), []pki.Role{pki.RoleLB}) {
		t.Fatalf("lb credentials: %v", err)
	}
	lbClient := api.NewClient(sm.info.APIURL, api.WithToken(lbCreds.APIToken), api.WithHTTPClient(mastersClient(lbCreds)))
	if _, err := lbClient.GetTasks(ctx); err != nil {
		t.Errorf("the lb's own token over the lb's TLS: GET_TASKS: %v", err)
	}
}

// TestSecureJoinRefused: a node whose join token is wrong, expired, revoked (the moment
// the revocation returns) or pins another CA (a man in the middle) is refused with a
// message that says which, and keeps nothing.
func TestSecureJoinRefused(t *testing.T) {
	sm := startSecureMaster(t, nil, nil)
	good := sm.tokens[pki.RoleAgent]
	wrongSecret := good
	wrongSecret.Secret = good.Secret[:len(good.Secret)-4] + "aaaa"
	if wrongSecret.Secret == good.Secret {
		wrongSecret.Secret = good.Secret[:len(good.Secret)-4] + "bbbb"
	}
	ctx := context.Background()
	revoked, revokedToken := sm.joinToken(t, api.RoleAgent, 0)
	revokedInfo, err := sm.client.RevokeToken(ctx, revokedToken.Info.ID)
	if err != nil {
		t.Fatal(err)
	}
	expiring, expiringToken := sm.joinToken(t, api.RoleAgent, time.Second)
	readOnly, _ := sm.joinToken(t, api.RoleReadOnly, 0)
	otherCA, err := pki.NewCA("mitm", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mitm := pki.JoinToken{CAHash: otherCA.Hash(), Secret: good.Secret}
	// The expiring token works until its second is up.
	time.Sleep(time.Until(expiringToken.Info.Expires.Add(100 * time.Millisecond)))

	refused := func(status int, msg string) string {
		return fmt.Sprintf("join the cluster with --join-token: join refused by %s: %d %s", sm.info.APIURL, status, msg)
	}
	tests := []struct {
		name  string
		token pki.JoinToken
		want  string
	}{
		{"wrong secret", wrongSecret, refused(401, "invalid token: wrong secret for token "+strings.Split(good.Secret, "_")[1])},
		{"revoked", revoked, refused(401, "token "+revokedToken.Info.ID+" revoked at "+revokedInfo.Revoked.UTC().Format(time.RFC3339))},
		{"expired", expiring, refused(401, "token "+expiringToken.Info.ID+" expired at "+expiringToken.Info.Expires.UTC().Format(time.RFC3339))},
		{"not a node role", readOnly, refused(403, "role read-only may not POST "+pki.JoinPath)},
		{"another CA", mitm, "join the cluster with --join-token: the cluster CA's hash " + sm.creds.CA.Hash() + ", as " + sm.info.APIURL +
			" presented it, does not match the join token's " + otherCA.Hash() + ": a man in the middle, or a token of another cluster; nothing was sent to that server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := sm.nodeConfig(t, "a1", tt.token)
			cfg.Agent = true
			runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := Run(runCtx, cfg, nil); errString(err) != tt.want {
				t.Fatalf("Run() = %q\nwant %q", errString(err), tt.want)
			}
			if _, err := pki.LoadCredentials(filepath.Join(cfg.DataDir, "pki")); err == nil {
				t.Fatal("the refused node kept credentials")
			}
		})
	}
}

// TestSecureGossipKey: a node with the cluster's certificate but another gossip key is
// not admitted: the master cannot read its gossip, never lists it, and its agent never
// learns of a master to register with.
func TestSecureGossipKey(t *testing.T) {
	logs := newTestLog(t)
	sm := startSecureMaster(t, logs, nil)
	token, _ := sm.joinToken(t, api.RoleAgent, 0)
	creds, err := pki.Join(context.Background(), pki.JoinConfig{MasterURL: sm.info.APIURL, Token: token,
		Identity: nodeIdentity(Config{Name: "a2", Agent: true, BindAddr: "127.0.0.1"}, "127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	creds.GossipKey = bytes.Repeat([]byte{7}, pki.GossipKeySize)
	cfg := loopbackConfig(t, "a2")
	cfg.Agent, cfg.Secure, cfg.DNSPort, cfg.Join = true, true, -1, []string{sm.info.GossipAddr}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := creds.Save(filepath.Join(cfg.DataDir, "pki")); err != nil {
		t.Fatal(err)
	}
	a2 := startRun(t, cfg)
	eventually(t, "a decryption failure in the logs", func() error {
		if _, ok := logs.find("No installed keys could decrypt the message"); !ok {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	members, err := sm.client.GetMembers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members.Members {
		if m.Name == "a2" {
			t.Fatalf("the master lists a2 (%s), which has another gossip key", m.Status)
		}
	}
	select {
	case info := <-a2.ready:
		t.Fatalf("a2 became ready with another gossip key: %+v", info)
	case err := <-a2.done:
		t.Fatalf("a2 stopped: %v", err)
	default:
	}
}

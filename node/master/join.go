package master

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
	"github.com/atoll/atoll/node/pki"
)

// Node joins in a secure cluster (see node/pki). Every master serves the cluster CA and
// signs the certificates of joining nodes with the CA key it holds; the join secrets are
// API tokens of the node roles (master, agent, lb), stored and checked like every API
// token (auth.go), so `atoll token list` shows them and `atoll token revoke` stops them.
// Each node that joins gets an API token of its own, of its most trusted role and with
// its name as the principal, for its API calls: a join token may expire or be revoked
// once its nodes have joined. Joins are served by the leader, which replicates that token
// with the node's record (certs.go): a node that joins again under its name replaces its
// previous token and certificates rather than adding to them. The first leader of a
// secure cluster creates one join token per role and hands them out once
// (JoinConfig.FirstJoinTokens).

// JoinConfig configures a master's part in node joins (AttachJoin).
type JoinConfig struct {
	// Credentials are this master's: the cluster CA with its key, which signs the
	// joining nodes' certificates, and the gossip key they receive.
	Credentials *pki.Credentials
	// CertValidity is how long node certificates are valid; 0 is pki.DefaultCertValidity.
	CertValidity time.Duration
	// FirstJoinTokens receives the join tokens ("ATL1-…") the first leader of a secure
	// cluster creates, one per node role: the only copies. nil logs them.
	FirstJoinTokens func(tokens map[pki.Role]string)
	// Now is the clock certificates are issued by; nil is time.Now.
	Now func() time.Time
	// Keyring, when set, is the cluster's gossip keyring, which the leader rotates
	// (pki.KeyringRotatePath); nil serves no rotation.
	Keyring GossipKeyring
	// OwnToken, when set, is this master's own API token ("atl_…", NewAPIToken), which
	// the roles beside it in its process call the masters with: while this master leads,
	// it registers the token if no master knows it yet (registerOwnToken).
	OwnToken string
}

// Validate reports the first thing wrong with c.
func (c JoinConfig) Validate() error {
	switch {
	case c.Credentials == nil:
		return errors.New("join: no credentials")
	case !c.Credentials.CA.CanSign():
		return errors.New("join: this master holds the CA certificate without its key, so it cannot sign the certificates of joining nodes")
	case len(c.Credentials.GossipKey) != pki.GossipKeySize:
		return fmt.Errorf("join: gossip key of %d bytes, want %d", len(c.Credentials.GossipKey), pki.GossipKeySize)
	case c.CertValidity < 0:
		return fmt.Errorf("join: certificate validity %v, want ≥ 0", c.CertValidity)
	}
	if c.OwnToken != "" {
		if _, _, err := parseToken(c.OwnToken); err != nil {
			return fmt.Errorf("join: own token: %w", err)
		}
	}
	return nil
}

// firstJoinTokensKey, in the tokens' namespace, records that the first join tokens were
// made, so that no later leader makes them again.
const firstJoinTokensKey = "first-join-tokens"

// joinService serves the join endpoints of one master, and those of the node
// certificates and gossip key it joins with (certs.go, certs_keyring.go).
type joinService struct {
	m        *Master
	cfg      JoinConfig
	caPEM    []byte
	caKeyPEM string
	now      func() time.Time
	validity time.Duration
	// mu serializes the writes of node records (joins, revocations), which read the
	// record they replace.
	mu sync.Mutex
	// rotateMu serializes gossip key rotations.
	rotateMu sync.Mutex
}

// AttachJoin adds the join endpoints (pki.CAPath, pki.JoinPath), certificate renewal
// (pki.RenewPath), node revocation (pki.RevokePath) and, with a Keyring, gossip key
// rotation (pki.KeyringRotatePath) to m's API, and the leader services that create the
// first join tokens and register OwnToken (registerOwnToken). Call it before Handler, as
// an extension (Config.Extensions).
func AttachJoin(m *Master, cfg JoinConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	caKey, err := cfg.Credentials.CA.KeyPEM()
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	j := &joinService{m: m, cfg: cfg, caPEM: cfg.Credentials.CA.CertPEM(), caKeyPEM: string(caKey), now: cfg.Now, validity: cfg.CertValidity}
	if j.now == nil {
		j.now = time.Now
	}
	if j.validity == 0 {
		j.validity = pki.DefaultCertValidity
	}
	m.Handle("GET "+pki.CAPath, http.HandlerFunc(j.handleCA))
	m.Handle("POST "+pki.JoinPath, m.LeaderOnly(http.HandlerFunc(j.handleJoin)))
	m.Handle("POST "+pki.RenewPath, http.HandlerFunc(j.handleRenew))
	m.Handle("POST "+pki.NodesPath+"/{name}/revoke", m.LeaderOnly(http.HandlerFunc(j.handleRevokeNode)))
	if cfg.Keyring != nil {
		m.Handle("POST "+pki.KeyringRotatePath, m.LeaderOnly(http.HandlerFunc(j.handleRotate)))
	}
	m.AddLeaderService(retryingService{m: m, name: "first-join-tokens", what: "create the first join tokens", attempt: j.handOutFirstJoinTokens})
	if cfg.OwnToken != "" {
		m.AddLeaderService(retryingService{m: m, name: "own-node-token", what: "register this master's own API token", attempt: j.registerOwnToken})
	}
	return nil
}

func (j *joinService) handleCA(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(j.caPEM)
}

// handleJoin checks the join secret (an API token of a node role) as every API token is
// checked, also when the master does not require tokens elsewhere, then the request (one
// without a certificate request is refused alike whatever the token's role), and signs the node's
// certificate for the roles the token grants.
func (j *joinService) handleJoin(w http.ResponseWriter, r *http.Request) {
	token, authErr := j.m.authenticate(r)
	if authErr != nil {
		writeAuthError(w, r, authErr)
		return
	}
	var req pki.JoinRequest
	csr, err := j.readCSR(r, &req, &req.CSR)
	if err != nil {
		writeError(w, err)
		return
	}
	grantable := pki.GrantableRoles(pki.Role(token.Role))
	if grantable == nil {
		writeAuthError(w, r, forbidden("token %s has role %s, which joins no node: join with a token of role master, agent or lb (atoll token create --role agent)", token.ID, token.Role))
		return
	}
	for _, role := range req.Roles {
		if !slices.Contains(grantable, role) {
			writeAuthError(w, r, forbidden("token %s of role %s cannot join a node with role %q", token.ID, token.Role, role))
			return
		}
	}
	id, err := pki.CSRIdentity(csr, req.Roles)
	if err != nil {
		writeError(w, errorf(http.StatusBadRequest, "%v", err))
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	previous, again := j.m.lookupNode(id.Name)
	if again {
		id.Generation = previous.Generation + 1
	}
	cert, err := j.cfg.Credentials.CA.Issue(csr.PublicKey, id, j.now(), j.validity)
	if err != nil {
		writeError(w, errorf(http.StatusBadRequest, "%v", err))
		return
	}
	nodeToken, secret, err := j.m.newToken(api.CreateTokenRequest{Role: api.TokenRole(mostTrusted(req.Roles)), Principal: id.Name}, "join with token "+token.ID)
	if err != nil {
		writeError(w, fmt.Errorf("make the API token of node %s: %w", id.Name, err))
		return
	}
	write, err := joinWrite(nodeToken, &nodeRecord{Name: id.Name, Roles: req.Roles, Generation: id.Generation, TokenID: nodeToken.ID, Joined: j.now().UTC()}, previous)
	if err != nil {
		writeError(w, err)
		return
	}
	if _, err := j.m.WriteKV(r.Context(), write); err != nil {
		writeError(w, fmt.Errorf("store the API token of node %s: %w", id.Name, err))
		return
	}
	answer := pki.JoinResponse{Certificate: string(pki.CertPEM(cert)), CA: string(j.caPEM), GossipKey: j.gossipKey(), APIToken: secret}
	if slices.Contains(req.Roles, pki.RoleMaster) {
		answer.CAKey = j.caKeyPEM
	}
	attrs := []any{"node", id.Name, "roles", req.Roles, "generation", id.Generation, "token", token.ID, "node_token", nodeToken.ID,
		"remote", r.RemoteAddr, "expires", cert.NotAfter.UTC().Format(time.RFC3339)}
	if again {
		j.m.log.Info("node joined again: certificate issued; its previous certificates and API token no longer work", append(attrs, "previous_token", previous.TokenID)...)
	} else {
		j.m.log.Info("node joined: certificate issued", attrs...)
	}
	writeJSON(w, http.StatusOK, answer)
}

// joinWrite is the one write of a join: the node's new API token and record, and the
// deletion of the token of the node's previous record, which the new one replaces.
func joinWrite(token *storedToken, rec, previous *nodeRecord) (*state.WriteKVRequest, error) {
	tokenWrite, err := tokenPut(token)
	if err != nil {
		return nil, err
	}
	recWrite, err := nodePut(rec)
	if err != nil {
		return nil, err
	}
	write := &state.WriteKVRequest{Namespace: authNamespace, Puts: []state.KVPut{tokenWrite, recWrite}}
	if previous != nil && previous.TokenID != "" {
		write.Deletes = []string{tokenKeyPrefix + previous.TokenID}
	}
	return write, nil
}

// readCSR decodes a join or renewal request into req, and parses the certificate
// request it holds at csrPEM.
func (j *joinService) readCSR(r *http.Request, req any, csrPEM *string) (*x509.CertificateRequest, error) {
	if err := j.m.decodeBody(r, req); err != nil {
		return nil, err
	}
	csr, err := pki.ParseCSR([]byte(*csrPEM))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	return csr, nil
}

// mostTrusted is the first of pki.Roles among roles: the role of a node's own API token.
func mostTrusted(roles []pki.Role) pki.Role {
	for _, r := range pki.Roles {
		if slices.Contains(roles, r) {
			return r
		}
	}
	return ""
}

// handOutFirstJoinTokens creates the first join tokens of a secure cluster and hands
// them out, unless they were made before: the work of the leader service
// "first-join-tokens".
func (j *joinService) handOutFirstJoinTokens(ctx context.Context) error {
	m := j.m
	if _, made := m.fsm.Store().KV(authNamespace, firstJoinTokensKey); made {
		return nil
	}
	tokens, err := j.createFirstJoinTokens(ctx)
	if err != nil {
		return err
	}
	m.log.Info("created the first join tokens", "roles", len(tokens))
	if j.cfg.FirstJoinTokens != nil {
		j.cfg.FirstJoinTokens(tokens)
		return nil
	}
	for _, role := range pki.Roles {
		m.log.Warn("a join token, shown only this once: install a node with it (install.sh "+string(role)+" --token …), make others with atoll token create --role "+string(role), "role", role, "join_token", tokens[role])
	}
	return nil
}

// createFirstJoinTokens replicates one API token per node role and the record that they
// exist, in one write, and returns them as join tokens.
func (j *joinService) createFirstJoinTokens(ctx context.Context) (map[pki.Role]string, error) {
	m := j.m
	now := m.auth.now().UTC()
	tokens := make(map[pki.Role]string, len(pki.Roles))
	var ids []string
	var puts []state.KVPut
	for _, role := range pki.Roles {
		id, secret, err := newTokenSecret()
		if err != nil {
			return nil, err
		}
		if _, taken := m.fsm.Store().KV(authNamespace, tokenKeyPrefix+id); taken || slices.Contains(ids, id) {
			return nil, fmt.Errorf("token id %s made twice", id)
		}
		put, err := tokenPut(tokenRecord(id, secret, api.Token{Role: api.TokenRole(role), Created: now, CreatedBy: "first-join-tokens"}))
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
		puts = append(puts, put)
		tokens[role] = pki.JoinToken{CAHash: j.cfg.Credentials.CA.Hash(), Secret: tokenPrefix + id + "_" + secret}.String()
	}
	marker, err := json.Marshal(struct {
		Created time.Time `json:"created"`
		Tokens  []string  `json:"tokens"`
	}{now, ids})
	if err != nil {
		return nil, fmt.Errorf("encode the first join tokens' record: %w", err)
	}
	puts = append(puts, state.KVPut{Key: firstJoinTokensKey, Value: marker})
	if _, err := m.WriteKV(ctx, &state.WriteKVRequest{Namespace: authNamespace, Puts: puts}); err != nil {
		return nil, fmt.Errorf("store the first join tokens: %w", err)
	}
	return tokens, nil
}

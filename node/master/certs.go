package master

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
	"github.com/atoll/atoll/node/pki"
)

// Node certificates in a secure cluster, beyond the join (join.go). The masters keep a
// record of each node name that joined, in the tokens' namespace (nodeKeyPrefix + name):
// its roles, its own API token and its generation (pki.Identity.Generation). A
// certificate of a lower generation than its name's record is refused wherever a master
// checks node certificates (CheckNodeCert): a join under a name that joined before
// replaces that node's certificates and API token (a machine installed again), and a
// revocation (pki.RevokePath) cuts a node off until it joins again with a join token.
// Each master checks against its own replica, so a revocation holds on every master as
// soon as it has applied the write. Nodes renew their certificates (pki.RenewPath)
// through any master, presenting the certificate to renew.

// nodeKeyPrefix starts the key of each node's record, followed by its name.
const nodeKeyPrefix = "node/"

// nodeRecord is what the masters keep of a node that joined.
type nodeRecord struct {
	Name  string     `json:"name"`
	Roles []pki.Role `json:"roles"`
	// Generation is the lowest generation of the name's certificates that the masters
	// accept: that of the last join, or one more after a revocation.
	Generation uint64 `json:"generation"`
	// TokenID is the node's own API token.
	TokenID string    `json:"token_id,omitempty"`
	Joined  time.Time `json:"joined"`
	// Revoked is when the node was revoked; zero: it was not, since it last joined.
	Revoked time.Time `json:"revoked,omitzero"`
}

// cachedNode is a decoded node record and the Raft index it was written at.
type cachedNode struct {
	index  uint64
	record *nodeRecord
}

// lookupNode returns the record of node name from the master's replica.
func (m *Master) lookupNode(name string) (*nodeRecord, bool) {
	entry, ok := m.fsm.Store().KV(authNamespace, nodeKeyPrefix+name)
	if !ok {
		return nil, false
	}
	a := m.auth
	a.mu.RLock()
	cached := a.nodes[name]
	a.mu.RUnlock()
	if cached != nil && cached.index == entry.Index {
		return cached.record, true
	}
	var rec nodeRecord
	if err := json.Unmarshal(entry.Value, &rec); err != nil {
		// Unreadable, the record cannot vouch for any certificate of the name.
		m.log.Error("a stored node record is unreadable; the node's certificates are refused", "node", name, "err", err)
		rec = nodeRecord{Name: name, Generation: ^uint64(0)}
	}
	a.mu.Lock()
	a.nodes[name] = &cachedNode{index: entry.Index, record: &rec}
	a.mu.Unlock()
	return &rec, true
}

// nodePut is the key-value write of a node's record.
func nodePut(rec *nodeRecord) (state.KVPut, error) {
	value, err := json.Marshal(rec)
	if err != nil {
		return state.KVPut{}, fmt.Errorf("encode the record of node %s: %w", rec.Name, err)
	}
	return state.KVPut{Key: nodeKeyPrefix + rec.Name, Value: value}, nil
}

// CheckNodeCert says why the masters refuse a node certificate that the TLS handshake
// verified against the cluster CA: its node was revoked, or joined again since. nil when
// they accept it. It reads this master's replica; safe for concurrent use.
func (m *Master) CheckNodeCert(cert *x509.Certificate) error {
	name := cert.Subject.CommonName
	rec, ok := m.lookupNode(name)
	if !ok || pki.CertGeneration(cert) >= rec.Generation {
		return nil
	}
	if !rec.Revoked.IsZero() {
		return fmt.Errorf("the certificate of node %s was revoked at %s (atoll node revoke): the node must join again with a join token",
			name, rec.Revoked.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("the certificate of node %s was replaced when a node of that name joined again at %s", name, rec.Joined.UTC().Format(time.RFC3339))
}

// NewAPIToken makes an API token ("atl_<id>_<secret>") that no master knows yet: the
// master that creates a secure cluster makes its own this way, and the leader registers
// it (JoinConfig.OwnToken).
func NewAPIToken() (string, error) {
	id, secret, err := newTokenSecret()
	if err != nil {
		return "", err
	}
	return tokenPrefix + id + "_" + secret, nil
}

// handleRenew signs a certificate of the identity of the one the node presents (its name,
// roles and generation, with the addresses its request asks for) for the node's new key.
// The route needs no API token: the node certificate is the credential, and the TLS
// handshake verified it against the cluster CA, expiry included.
func (j *joinService) handleRenew(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		writeError(w, errorf(http.StatusForbidden, "%s renews node certificates: call it over TLS presenting the certificate to renew", pki.RenewPath))
		return
	}
	cert := r.TLS.VerifiedChains[0][0]
	roles := pki.RolesOf(cert)
	if len(roles) == 0 {
		writeError(w, errorf(http.StatusForbidden, "the certificate of %q holds no node role", cert.Subject.CommonName))
		return
	}
	if err := j.m.CheckNodeCert(cert); err != nil {
		writeError(w, errorf(http.StatusForbidden, "%v", err))
		return
	}
	var req pki.RenewRequest
	csr, err := j.readCSR(r, &req, &req.CSR)
	if err != nil {
		writeError(w, err)
		return
	}
	if csr.Subject.CommonName != cert.Subject.CommonName {
		writeError(w, errorf(http.StatusBadRequest, "certificate request for %q, but the certificate to renew is of %q", csr.Subject.CommonName, cert.Subject.CommonName))
		return
	}
	id, err := pki.CSRIdentity(csr, roles)
	if err != nil {
		writeError(w, errorf(http.StatusBadRequest, "%v", err))
		return
	}
	id.Generation = pki.CertGeneration(cert)
	renewed, err := j.cfg.Credentials.CA.Issue(csr.PublicKey, id, j.now(), j.validity)
	if err != nil {
		writeError(w, errorf(http.StatusBadRequest, "%v", err))
		return
	}
	j.m.log.Info("node certificate renewed", "node", id.Name, "roles", roles, "generation", id.Generation, "remote", r.RemoteAddr,
		"expires", renewed.NotAfter.UTC().Format(time.RFC3339))
	writeJSON(w, http.StatusOK, pki.RenewResponse{Certificate: string(pki.CertPEM(renewed))})
}

// handleRevokeNode revokes node name: its record's generation goes past every
// certificate it holds, and its API tokens are revoked, in one write. A master cannot be
// revoked: it holds the CA's key.
func (j *joinService) handleRevokeNode(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	j.mu.Lock()
	defer j.mu.Unlock()
	rec, known := j.m.lookupNode(name)
	var tokens []*storedToken
	for _, t := range j.m.tokens() {
		if t.Principal == name && pki.Role(t.Role).Valid() {
			tokens = append(tokens, t)
		}
	}
	if !known && len(tokens) == 0 {
		writeError(w, errorf(http.StatusNotFound, "no node named %q joined this cluster", name))
		return
	}
	if !known {
		// A node that joined before the masters kept records: its certificates are all
		// of generation 0.
		rec = &nodeRecord{Name: name}
		for _, t := range tokens {
			rec.Roles = append(rec.Roles, pki.Role(t.Role))
		}
	}
	if slices.Contains(rec.Roles, pki.RoleMaster) {
		writeError(w, errorf(http.StatusConflict, "node %s is a master: it holds the cluster CA's key and can sign itself certificates, so revoking its own would not shut it out", name))
		return
	}
	if !rec.Revoked.IsZero() {
		writeJSON(w, http.StatusOK, pki.NodeRevocation{Name: name, Generation: rec.Generation, Revoked: rec.Revoked, Tokens: []string{}})
		return
	}
	now := j.m.auth.now().UTC()
	revoked := *rec
	revoked.Generation++
	revoked.Revoked = now
	put, err := nodePut(&revoked)
	if err != nil {
		writeError(w, err)
		return
	}
	write := &state.WriteKVRequest{Namespace: authNamespace, Puts: []state.KVPut{put}}
	answer := pki.NodeRevocation{Name: name, Generation: revoked.Generation, Revoked: now, Tokens: []string{}}
	for _, t := range tokens {
		if !t.Revoked.IsZero() {
			continue
		}
		t.Revoked = now
		put, err := tokenPut(t)
		if err != nil {
			writeError(w, err)
			return
		}
		write.Puts = append(write.Puts, put)
		answer.Tokens = append(answer.Tokens, t.ID)
	}
	if _, err := j.m.WriteKV(r.Context(), write); err != nil {
		writeError(w, fmt.Errorf("store the revocation of node %s: %w", name, err))
		return
	}
	j.m.log.Info("node revoked: the masters refuse its certificates and API tokens", "node", name, "generation", revoked.Generation,
		"tokens", answer.Tokens, "by", requester(r))
	writeJSON(w, http.StatusOK, answer)
}

// registerOwnToken registers the API token of the master it runs on (JoinConfig.OwnToken),
// made by that master itself, so that the agent, lb and DNS roles beside it can call the
// masters: a token of the master's most trusted role, its name as the principal, and the
// record of its node. A token id already stored is left as it is, revoked or not. It is
// the work of the leader service "own-node-token".
func (j *joinService) registerOwnToken(ctx context.Context) error {
	m := j.m
	id, secret, err := parseToken(j.cfg.OwnToken)
	if err != nil {
		return fmt.Errorf("own token: %w", err)
	}
	if _, known := m.fsm.Store().KV(authNamespace, tokenKeyPrefix+id); known {
		return nil
	}
	cert := j.cfg.Credentials.CurrentCert().Leaf
	node := pki.IdentityOf(cert)
	token := tokenRecord(id, secret, api.Token{Role: api.TokenRole(mostTrusted(node.Roles)), Principal: node.Name,
		Created: m.auth.now().UTC(), CreatedBy: "own token of master " + node.Name})
	put, err := tokenPut(token)
	if err != nil {
		return err
	}
	write := &state.WriteKVRequest{Namespace: authNamespace, Puts: []state.KVPut{put}}
	if _, known := m.lookupNode(node.Name); !known {
		put, err := nodePut(&nodeRecord{Name: node.Name, Roles: node.Roles, Generation: node.Generation, TokenID: id, Joined: token.Created})
		if err != nil {
			return err
		}
		write.Puts = append(write.Puts, put)
	}
	if _, err := m.WriteKV(ctx, write); err != nil {
		return fmt.Errorf("store this master's own API token: %w", err)
	}
	m.log.Info("registered this master's own API token", "token", id, "role", token.Role, "principal", token.Principal)
	return nil
}

// retryingService is a leader service that makes attempt until it succeeds, once a
// second while this master leads, logging why each failed attempt failed to do what.
type retryingService struct {
	m          *Master
	name, what string
	attempt    func(context.Context) error
}

var _ LeaderService = retryingService{}

func (s retryingService) Name() string { return s.name }

func (s retryingService) Run(ctx context.Context) {
	for {
		err := s.attempt(ctx)
		if err == nil {
			return
		}
		s.m.log.Warn("could not "+s.what+"; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

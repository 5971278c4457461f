package pki

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
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The join API, served by every master of a secure cluster, on its API port:
//
//	GET  /atoll/v1/ca    the cluster CA's certificate (PEM); public
//	POST /atoll/v1/join  a JoinRequest with "Authorization: Bearer <the join token's
//	                     secret>"; 200 with a JoinResponse, 401 or 403 with why not
const (
	CAPath   = "/atoll/v1/ca"
	JoinPath = "/atoll/v1/join"
)

// JoinRequest asks for a node certificate.
type JoinRequest struct {
	// Roles are the roles the node runs; the join token's role bounds them (see
	// GrantableRoles).
	Roles []Role `json:"roles"`
	// CSR is the node's PEM certificate request: its name (common name) and addresses.
	CSR string `json:"csr"`
}

// JoinResponse answers a granted JoinRequest.
type JoinResponse struct {
	// Certificate is the node's PEM certificate.
	Certificate string `json:"certificate"`
	// CA is the cluster CA's PEM certificate.
	CA string `json:"ca"`
	// CAKey is the CA's PEM key, for masters only: every master signs the certificates
	// of the nodes that join through it.
	CAKey string `json:"ca_key,omitempty"`
	// GossipKey is the key that encrypts gossip (base64 in JSON).
	GossipKey []byte `json:"gossip_key"`
	// APIToken is the API token the master made for this node, of its most trusted role
	// ("atl_<id>_<secret>"): the node sends it with its API calls, so that it keeps
	// working when the join token expires or is revoked.
	APIToken string `json:"api_token,omitempty"`
}

// GrantableRoles are the node roles a join token of role may obtain: a master's token
// any, an agent's agent and lb (load balancers often run on agents, and an lb may do
// less than an agent), an lb's lb alone; nil for roles that join no node.
func GrantableRoles(role Role) []Role {
	switch role {
	case RoleMaster:
		return []Role{RoleMaster, RoleAgent, RoleLB}
	case RoleAgent:
		return []Role{RoleAgent, RoleLB}
	case RoleLB:
		return []Role{RoleLB}
	}
	return nil
}

// JoinConfig configures Join.
type JoinConfig struct {
	// MasterURL is the master to join through: https://host:port, or http://host:port
	// (the same port serves TLS), or host:port.
	MasterURL string
	// Token is the join token.
	Token JoinToken
	// Identity is the node's name, roles and addresses.
	Identity Identity
	// Timeout bounds each request; 0 is DefaultJoinTimeout.
	Timeout time.Duration
}

// DefaultJoinTimeout bounds each join request: a master answers in milliseconds, and
// one that does not answer within this is better retried.
const DefaultJoinTimeout = 10 * time.Second

// Limits on what a master sends: a CA certificate and a join answer are a few KiB.
const (
	maxCABytes       = 64 << 10
	maxResponseBytes = 1 << 20
)

// RefusedError is a master that refused a join (the token was wrong, expired, revoked,
// or of a role that cannot make this node) or a renewal (the certificate was revoked).
type RefusedError struct {
	// Op is what was refused: "join" or "renewal".
	Op      string
	URL     string
	Status  int
	Message string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s refused by %s: %d %s", e.Op, e.URL, e.Status, e.Message)
}

// exchange posts request as JSON to base+path through client, with the bearer secret
// when there is one, and decodes a 200 answer into answer; another status is a
// RefusedError of op.
func exchange(ctx context.Context, client *http.Client, base, path, op, secret string, request, answer any) error {
	body, err := json.Marshal(request)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s through %s: %w", op, base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s through %s: read answer: %w", op, base, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &RefusedError{Op: op, URL: base, Status: resp.StatusCode, Message: strings.TrimSpace(string(data))}
	}
	if err := json.Unmarshal(data, answer); err != nil {
		return fmt.Errorf("%s through %s: answer: %w", op, base, err)
	}
	return nil
}

// Join joins a node to a secure cluster: it fetches the CA from the master, checks it
// against the token's hash, and over TLS that trusts that CA alone sends the token's
// secret and a certificate request for a key it makes. It returns the node's
// credentials; a master's include the CA's key.
func Join(ctx context.Context, cfg JoinConfig) (*Credentials, error) {
	base, err := MasterBaseURL(cfg.MasterURL)
	if err != nil {
		return nil, err
	}
	if err := cfg.Identity.Validate(); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultJoinTimeout
	}
	ca, err := FetchCA(ctx, base, cfg.Token.CAHash, timeout)
	if err != nil {
		return nil, err
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := NewCSR(key, cfg.Identity)
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{TLSClientConfig: ClientConfig(nil, ca.Pool(), RoleMaster)}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: timeout}
	var answer JoinResponse
	if err := exchange(ctx, client, base, JoinPath, "join", cfg.Token.Secret, JoinRequest{Roles: cfg.Identity.Roles, CSR: string(csr)}, &answer); err != nil {
		return nil, err
	}
	creds, err := answer.credentials(ca, &key.PublicKey, cfg.Identity.Roles)
	if err != nil {
		return nil, fmt.Errorf("join through %s: %w", base, err)
	}
	creds.Cert.PrivateKey = key
	return creds, nil
}

// credentials checks a join answer against what was asked: the pinned CA, a certificate
// of it for pub holding every role asked for, a CA key that is the CA's.
func (a *JoinResponse) credentials(pinned *CA, pub *ecdsa.PublicKey, roles []Role) (*Credentials, error) {
	var caKey []byte
	if a.CAKey != "" {
		caKey = []byte(a.CAKey)
	}
	ca, err := ParseCA([]byte(a.CA), caKey)
	if err != nil {
		return nil, err
	}
	if ca.Hash() != pinned.Hash() {
		return nil, &CAMismatchError{Expected: pinned.Hash(), Presented: ca.Hash()}
	}
	cert, err := ParseCertificate([]byte(a.Certificate))
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	if err := ca.Verify(cert, time.Now()); err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	if certKey, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !certKey.Equal(pub) {
		return nil, errors.New("node certificate: it is not for this node's key")
	}
	for _, r := range roles {
		if !slices.Contains(RolesOf(cert), r) {
			return nil, fmt.Errorf("node certificate: no role %s in it", r)
		}
	}
	if len(a.GossipKey) != GossipKeySize {
		return nil, fmt.Errorf("gossip key: %d bytes, want %d", len(a.GossipKey), GossipKeySize)
	}
	return &Credentials{CA: ca, Cert: tls.Certificate{Certificate: [][]byte{cert.Raw}, Leaf: cert}, GossipKey: a.GossipKey, APIToken: a.APIToken}, nil
}

// FetchCA fetches the cluster CA from the master at base (https://host:port) and
// returns it if its hash is caHash. Nothing is trusted yet, so the connection is not
// verified; once the CA matches, the master's certificate must be a master's of that
// CA, which a man in the middle passing the real CA on does not hold. Nothing secret
// is sent.
func FetchCA(ctx context.Context, base, caHash string, timeout time.Duration) (*CA, error) {
	transport := &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The CA is unknown until fetched: it is checked against the pinned hash
		// below, and the server's certificate against the CA.
		InsecureSkipVerify: true,
	}}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: timeout}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+CAPath, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch the cluster CA: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch the cluster CA from %s: %w", base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCABytes))
	if err != nil {
		return nil, fmt.Errorf("fetch the cluster CA from %s: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch the cluster CA from %s: %s: %s (is security on at that master?)", base, resp.Status, strings.TrimSpace(string(data)))
	}
	ca, err := ParseCA(data, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch the cluster CA from %s: %w", base, err)
	}
	if ca.Hash() != caHash {
		return nil, &CAMismatchError{Expected: caHash, Presented: ca.Hash()}
	}
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return nil, fmt.Errorf("fetch the cluster CA from %s: the connection is not TLS", base)
	}
	peers := resp.TLS.PeerCertificates
	intermediates := x509.NewCertPool()
	for _, c := range peers[1:] {
		intermediates.AddCert(c)
	}
	if _, err := peers[0].Verify(x509.VerifyOptions{Roots: ca.Pool(), Intermediates: intermediates, DNSName: RoleMaster.ServerName()}); err != nil {
		return nil, fmt.Errorf("the server at %s sent the cluster CA but its own certificate is not a master's of that CA (a man in the middle?): %w", base, err)
	}
	return ca, nil
}

// MasterBaseURL turns a master's address (https://host:port, http://host:port or
// host:port) into the https base URL of its API.
func MasterBaseURL(s string) (string, error) {
	raw := s
	if !strings.Contains(s, "://") {
		raw = "https://" + s
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("master URL %q: %w", s, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", fmt.Errorf("master URL %q: scheme %q, want https", s, u.Scheme)
	}
	if u.Host == "" || u.Port() == "" || u.User != nil || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("master URL %q: want https://host:port", s)
	}
	return "https://" + u.Host, nil
}

package master

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// API authentication. With AuthConfig.Enabled every request to the master's API carries
// "Authorization: Bearer atl_<id>_<secret>", except the few public routes of the policy
// table (auth_policy.go). Tokens live in the replicated key-value table, namespace
// authNamespace, which the key-value API refuses: each holds a role, a principal, its
// expiry and revocation and the SHA-256 of its secret, never the secret. Every master
// checks tokens against its own replica, so a revocation or expiry holds on each master
// as soon as it has applied the write.
//
// Requests that did not come over the network pass unchecked: the built-in frameworks and
// the catalog call the master's handler in the same process (api.HandlerTransport), on
// behalf of requests that were checked when they arrived.

// AuthConfig configures API authentication.
type AuthConfig struct {
	// Enabled requires a token on every request but the public ones. Off, every request
	// passes, as before tokens existed.
	Enabled bool
	// AdminToken receives the admin token a leader creates when the cluster has no
	// working admin token (a new cluster, or every admin token revoked or expired): it
	// is the only copy, shown once. nil logs it instead.
	AdminToken func(token string)
	// Now is the clock of token creation and expiry; nil is time.Now.
	Now func() time.Time
}

// authNamespace is the key-value namespace of the tokens; tokenKeyPrefix starts each
// token's key, followed by its id.
const (
	authNamespace  = "auth"
	tokenKeyPrefix = "token/"
)

// The token format: "atl_", 12 base32 characters of id, "_", 52 of secret (32 random
// bytes). Lowercase base32 without padding is safe in a header, a shell and a file name.
const (
	tokenPrefix    = "atl_"
	tokenIDLen     = 12
	tokenSecretLen = 52
	tokenLen       = len(tokenPrefix) + tokenIDLen + 1 + tokenSecretLen
)

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// errBadTokenFormat explains a token that is not one.
var errBadTokenFormat = errors.New("not an Atoll API token: want atl_<id>_<secret> as `atoll token create` prints it")

// parseToken splits a token into its id and secret.
func parseToken(token string) (id, secret string, err error) {
	if len(token) != tokenLen || !strings.HasPrefix(token, tokenPrefix) || token[len(tokenPrefix)+tokenIDLen] != '_' {
		return "", "", errBadTokenFormat
	}
	id = token[len(tokenPrefix) : len(tokenPrefix)+tokenIDLen]
	secret = token[len(tokenPrefix)+tokenIDLen+1:]
	if !isBase32(id) || !isBase32(secret) {
		return "", "", errBadTokenFormat
	}
	return id, secret, nil
}

// isBase32 reports whether s is made of tokenEncoding's alphabet only.
func isBase32(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// newTokenSecret makes a token's id and secret from the system's random source.
func newTokenSecret() (id, secret string, err error) {
	var idBytes [8]byte
	var secretBytes [32]byte
	if _, err := rand.Read(idBytes[:]); err != nil {
		return "", "", fmt.Errorf("random token id: %w", err)
	}
	if _, err := rand.Read(secretBytes[:]); err != nil {
		return "", "", fmt.Errorf("random token secret: %w", err)
	}
	return tokenEncoding.EncodeToString(idBytes[:])[:tokenIDLen], tokenEncoding.EncodeToString(secretBytes[:]), nil
}

// hashSecret is what the state keeps of a secret.
func hashSecret(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }

// storedToken is a token's record in the key-value table.
type storedToken struct {
	api.Token
	// SecretSHA256 is the hex SHA-256 of the secret part of the token.
	SecretSHA256 string `json:"secret_sha256"`
}

// cachedToken is a decoded record and the Raft index it was written at: a later write
// (a revocation) has another index, so the cache never serves a stale record.
type cachedToken struct {
	index uint64
	token *storedToken
	hash  [sha256.Size]byte
}

// authState is the master's part of authentication, shared by every Handler it builds.
type authState struct {
	cfg   AuthConfig
	now   func() time.Time
	audit *slog.Logger

	mu    sync.RWMutex
	cache map[string]*cachedToken
	// nodes caches node records by name (certs.go), as cache does tokens.
	nodes map[string]*cachedNode
}

func newAuthState(cfg AuthConfig, logger *slog.Logger) *authState {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &authState{cfg: cfg, now: now, audit: logger.With("component", "audit"), cache: map[string]*cachedToken{}, nodes: map[string]*cachedNode{}}
}

// lookupToken returns the record of token id from the master's replica.
func (m *Master) lookupToken(id string) (*cachedToken, bool) {
	entry, ok := m.fsm.Store().KV(authNamespace, tokenKeyPrefix+id)
	if !ok {
		return nil, false
	}
	a := m.auth
	a.mu.RLock()
	cached := a.cache[id]
	a.mu.RUnlock()
	if cached != nil && cached.index == entry.Index {
		return cached, true
	}
	var t storedToken
	if err := json.Unmarshal(entry.Value, &t); err != nil {
		m.log.Error("a stored API token is unreadable; it does not authenticate", "token", id, "err", err)
		return nil, false
	}
	var hash [sha256.Size]byte
	if n, err := hex.Decode(hash[:], []byte(t.SecretSHA256)); err != nil || n != sha256.Size {
		m.log.Error("a stored API token has no valid secret hash; it does not authenticate", "token", id)
		return nil, false
	}
	cached = &cachedToken{index: entry.Index, token: &t, hash: hash}
	a.mu.Lock()
	a.cache[id] = cached
	a.mu.Unlock()
	return cached, true
}

// authError is a refused request: 401 or 403 and why.
type authError struct {
	status int
	msg    string
}

func (e *authError) Error() string { return e.msg }

func unauthorized(format string, args ...any) *authError {
	return &authError{http.StatusUnauthorized, fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) *authError {
	return &authError{http.StatusForbidden, fmt.Sprintf(format, args...)}
}

// authenticate finds the token a request carries and checks that it works now.
func (m *Master) authenticate(r *http.Request) (*storedToken, *authError) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return nil, unauthorized("authentication required: send the header \"Authorization: Bearer <token>\" (atoll --token, or ATOLL_TOKEN)")
	}
	scheme, token, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return nil, unauthorized("authorization scheme %q is not supported: send \"Authorization: Bearer <token>\"", scheme)
	}
	id, secret, err := parseToken(strings.TrimSpace(token))
	if err != nil {
		return nil, unauthorized("invalid token: %v", err)
	}
	cached, ok := m.lookupToken(id)
	if !ok {
		return nil, unauthorized("invalid token: no token has id %s", id)
	}
	hash := hashSecret(secret)
	if subtle.ConstantTimeCompare(hash[:], cached.hash[:]) != 1 {
		return nil, unauthorized("invalid token: wrong secret for token %s", id)
	}
	t := cached.token
	if !t.Revoked.IsZero() {
		return nil, unauthorized("token %s revoked at %s", id, t.Revoked.UTC().Format(time.RFC3339))
	}
	if !t.Expires.IsZero() && !m.auth.now().Before(t.Expires) {
		return nil, unauthorized("token %s expired at %s", id, t.Expires.UTC().Format(time.RFC3339))
	}
	return t, nil
}

// inProcessAddr is the RemoteAddr api.HandlerTransport gives the requests it serves.
const inProcessAddr = "in-process"

// fromThisProcess reports whether a request was handed to the handler by code in this
// process, through api.HandlerTransport, which sets its RemoteAddr to inProcessAddr.
// net/http's server sets every request's RemoteAddr to the peer's ip:port, whatever the
// request says, so no network request has that address. (The context cannot tell: an
// in-process call made for a network request carries that request's context.)
func fromThisProcess(r *http.Request) bool { return r.RemoteAddr == inProcessAddr }

// createToken makes a token as req asks and replicates its record; createdBy names who
// asked. It returns the token, the only time its secret exists outside the caller.
func (m *Master) createToken(ctx context.Context, req api.CreateTokenRequest, createdBy string) (*api.CreatedToken, error) {
	record, token, err := m.newToken(req, createdBy)
	if err != nil {
		return nil, err
	}
	if err := m.writeToken(ctx, record); err != nil {
		return nil, err
	}
	return &api.CreatedToken{Token: token, Info: record.Token}, nil
}

// newToken makes a token as req asks, with an id no stored token has, and its record,
// for the caller to replicate (tokenPut).
func (m *Master) newToken(req api.CreateTokenRequest, createdBy string) (record *storedToken, token string, err error) {
	if err := validateTokenRequest(req); err != nil {
		return nil, "", errorf(http.StatusBadRequest, "%v", err)
	}
	var id, secret string
	for {
		if id, secret, err = newTokenSecret(); err != nil {
			return nil, "", err
		}
		if _, taken := m.fsm.Store().KV(authNamespace, tokenKeyPrefix+id); !taken {
			break
		}
	}
	now := m.auth.now().UTC()
	record = tokenRecord(id, secret, api.Token{Role: req.Role, Principal: req.Principal, Created: now, CreatedBy: createdBy})
	if req.TTLSeconds > 0 {
		record.Expires = now.Add(time.Duration(req.TTLSeconds) * time.Second)
	}
	return record, tokenPrefix + id + "_" + secret, nil
}

// tokenRecord is the record of token id with secret, described by info.
func tokenRecord(id, secret string, info api.Token) *storedToken {
	hash := hashSecret(secret)
	info.ID = id
	return &storedToken{Token: info, SecretSHA256: hex.EncodeToString(hash[:])}
}

// maxPrincipal bounds a principal's length: it names a person, a service or a framework.
const maxPrincipal = 128

// maxTTLSeconds keeps an expiry representable: a hundred years.
const maxTTLSeconds = 100 * 365 * 24 * 3600

// validateTokenRequest reports the first thing wrong with a token request.
func validateTokenRequest(req api.CreateTokenRequest) error {
	switch {
	case !req.Role.Valid():
		roles := make([]string, len(api.TokenRoles))
		for i, r := range api.TokenRoles {
			roles[i] = string(r)
		}
		return fmt.Errorf("role %q: want one of %s", req.Role, strings.Join(roles, ", "))
	case req.Role == api.RoleFramework && req.Principal == "":
		return errors.New("principal: a framework token needs one, the principal its frameworks subscribe with")
	case req.TTLSeconds < 0 || req.TTLSeconds > maxTTLSeconds:
		return fmt.Errorf("ttl_seconds: %d, want 0 (no expiry) to %d", req.TTLSeconds, maxTTLSeconds)
	}
	return validatePrincipal(req.Principal)
}

// validatePrincipal accepts letters, digits and . _ @ - (not first), up to maxPrincipal:
// printable in a log line, and a valid Mesos role for framework principals.
func validatePrincipal(p string) error {
	if len(p) > maxPrincipal {
		return fmt.Errorf("principal: %d characters, at most %d", len(p), maxPrincipal)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '@' || c == '-')
		if !ok {
			return fmt.Errorf("principal %q: want letters, digits and . _ @ - (not first)", p)
		}
	}
	return nil
}

// writeToken replicates a token's record.
func (m *Master) writeToken(ctx context.Context, t *storedToken) error {
	put, err := tokenPut(t)
	if err != nil {
		return err
	}
	if _, err := m.WriteKV(ctx, &state.WriteKVRequest{Namespace: authNamespace, Puts: []state.KVPut{put}}); err != nil {
		return fmt.Errorf("store token %s: %w", t.ID, err)
	}
	return nil
}

// tokenPut is the key-value write of a token's record.
func tokenPut(t *storedToken) (state.KVPut, error) {
	value, err := json.Marshal(t)
	if err != nil {
		return state.KVPut{}, fmt.Errorf("encode token %s: %w", t.ID, err)
	}
	return state.KVPut{Key: tokenKeyPrefix + t.ID, Value: value}, nil
}

// tokens returns every token's record from this master's replica, in creation order.
func (m *Master) tokens() []*storedToken {
	var out []*storedToken
	for _, entry := range m.fsm.Store().KVList(authNamespace, tokenKeyPrefix) {
		var t storedToken
		if err := json.Unmarshal(entry.Value, &t); err != nil {
			m.log.Error("a stored API token is unreadable", "key", entry.Key, "err", err)
			continue
		}
		out = append(out, &t)
	}
	// Keys order by id; creation order is what a listing wants.
	slices.SortFunc(out, func(a, b *storedToken) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	return out
}

// adminBootstrap is the leader service that gives a cluster without a working admin
// token one, shown once through AuthConfig.AdminToken.
type adminBootstrap struct{ m *Master }

var _ LeaderService = adminBootstrap{}

func (adminBootstrap) Name() string { return "auth-bootstrap" }

// Run creates the admin token if none works, retrying while this master leads.
func (b adminBootstrap) Run(ctx context.Context) {
	retryingService{m: b.m, name: b.Name(), what: "create the admin API token", attempt: b.createOnce}.Run(ctx)
}

// createOnce creates the admin token and hands it out, unless one works.
func (b adminBootstrap) createOnce(ctx context.Context) error {
	m := b.m
	now := m.auth.now()
	for _, t := range m.tokens() {
		if t.Role == api.RoleAdmin && t.Status(now) == "active" {
			return nil
		}
	}
	created, err := m.createToken(ctx, api.CreateTokenRequest{Role: api.RoleAdmin, Principal: "admin"}, "bootstrap")
	if err != nil {
		return err
	}
	m.log.Info("created an admin API token: the cluster had no working one", "token", created.Info.ID)
	if m.auth.cfg.AdminToken != nil {
		m.auth.cfg.AdminToken(created.Token)
	} else {
		m.log.Warn("the admin API token, shown only this once: use it with atoll --token or ATOLL_TOKEN, and make others with atoll token create", "admin_token", created.Token)
	}
	return nil
}

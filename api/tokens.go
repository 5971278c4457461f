package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// The token API (an Atoll extension, admin tokens only but for /self) manages the API
// tokens the masters check on every request when they run with authentication on:
//
//	POST   /atoll/v1/tokens       a CreateTokenRequest; 201 with a CreatedToken
//	GET    /atoll/v1/tokens       TokenList of every token, revoked and expired ones too
//	DELETE /atoll/v1/tokens/{id}  revokes the token; 200 with its Token
//	GET    /atoll/v1/tokens/self  the Token the request carries (any working token)
//
// A token is "atl_<id>_<secret>"; the masters keep only a hash of the secret, so the
// token itself is shown once, when it is created.

// TokensPath is the token API's path.
const TokensPath = "/atoll/v1/tokens"

// TokenSelfPath answers GET with the Token the request authenticated with: any working
// token may ask who it is (its role and principal), as agents do to decide who may read
// a task's sandbox.
const TokenSelfPath = TokensPath + "/self"

// TokenRole is what a token may do; see the masters' policy table for the exact requests.
type TokenRole string

// Token roles.
const (
	// RoleAdmin may make every request, token management included.
	RoleAdmin TokenRole = "admin"
	// RoleOperator may make every request but token management.
	RoleOperator TokenRole = "operator"
	// RoleReadOnly may read: GETs and the read calls sent as POST.
	RoleReadOnly TokenRole = "read-only"
	// RoleFramework may use the scheduler API as its principal (FrameworkInfo.principal),
	// write the key-value namespace named after it, and read.
	RoleFramework TokenRole = "framework"
	// RoleAgent may use the agent API and read.
	RoleAgent TokenRole = "agent"
	// RoleLB may read apps, tasks and the event streams: what load balancers and their
	// DNS servers follow.
	RoleLB TokenRole = "lb"
	// RoleMaster may read: what masters ask each other.
	RoleMaster TokenRole = "master"
)

// TokenRoles lists every role, most powerful first.
var TokenRoles = []TokenRole{RoleAdmin, RoleOperator, RoleReadOnly, RoleFramework, RoleAgent, RoleLB, RoleMaster}

// Valid reports whether r is one of TokenRoles.
func (r TokenRole) Valid() bool {
	for _, known := range TokenRoles {
		if r == known {
			return true
		}
	}
	return false
}

// Token describes an API token; never its secret.
type Token struct {
	ID        string    `json:"id"`
	Role      TokenRole `json:"role"`
	Principal string    `json:"principal,omitempty"`
	Created   time.Time `json:"created"`
	// CreatedBy is the id of the token that created it, or who else did ("bootstrap").
	CreatedBy string `json:"created_by"`
	// Expires is when the token stops working; zero: never.
	Expires time.Time `json:"expires,omitzero"`
	// Revoked is when the token was revoked; zero: it was not.
	Revoked time.Time `json:"revoked,omitzero"`
}

// Status says whether the token works at now: "active", "expired" or "revoked".
func (t *Token) Status(now time.Time) string {
	switch {
	case !t.Revoked.IsZero():
		return "revoked"
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return "expired"
	}
	return "active"
}

// CreateTokenRequest asks for a new token.
type CreateTokenRequest struct {
	Role TokenRole `json:"role"`
	// Principal names who uses the token: required for framework tokens, whose frameworks
	// must subscribe with it as their principal.
	Principal string `json:"principal,omitempty"`
	// TTLSeconds is how long the token works; 0: until revoked.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

// CreatedToken answers a token creation: the token, shown this once, and its description.
type CreatedToken struct {
	Token string `json:"token"`
	Info  Token  `json:"info"`
}

// TokenList answers a token listing, ordered by creation.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// CreateToken creates a token (admin tokens only).
func (c *Client) CreateToken(ctx context.Context, req CreateTokenRequest) (*CreatedToken, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	resp, err := c.post(ctx, c.baseURL+TokensPath, data, nil, true)
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("create token: %w", replyError(resp))
	}
	var created CreatedToken
	if err := decodeReply(resp, &created); err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	return &created, nil
}

// ListTokens lists every token (admin tokens only).
func (c *Client) ListTokens(ctx context.Context) (*TokenList, error) {
	resp, err := c.send(ctx, http.MethodGet, c.baseURL+TokensPath, nil, 0, http.Header{"Accept": {"application/json"}}, true)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list tokens: %w", replyError(resp))
	}
	var list TokenList
	if err := decodeReply(resp, &list); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return &list, nil
}

// TokenSelf describes the token the client sends (its id, role and principal), as the
// master it asks knows it; any working token may ask. A token the master refuses is an
// *HTTPError (401) with its reason. Errors are the request's own, unwrapped.
func (c *Client) TokenSelf(ctx context.Context) (*Token, error) {
	resp, err := c.send(ctx, http.MethodGet, c.baseURL+TokenSelfPath, nil, 0, http.Header{"Accept": {"application/json"}}, true)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, replyError(resp)
	}
	var t Token
	if err := decodeReply(resp, &t); err != nil {
		return nil, fmt.Errorf("%s: %w", TokenSelfPath, err)
	}
	return &t, nil
}

// RevokeToken revokes the token with id (admin tokens only) and returns it as revoked.
// Revoking a revoked token changes nothing.
func (c *Client) RevokeToken(ctx context.Context, id string) (*Token, error) {
	resp, err := c.send(ctx, http.MethodDelete, c.baseURL+TokensPath+"/"+url.PathEscape(id), nil, 0, http.Header{"Accept": {"application/json"}}, true)
	if err != nil {
		return nil, fmt.Errorf("revoke token %s: %w", id, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("revoke token %s: %w", id, replyError(resp))
	}
	var token Token
	if err := decodeReply(resp, &token); err != nil {
		return nil, fmt.Errorf("revoke token %s: %w", id, err)
	}
	return &token, nil
}

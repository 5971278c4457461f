package master

import (
	"encoding/json"
	"net/http"

	"github.com/atoll/atoll/api"
)

// tokenRoutes serve the token API (see api.TokensPath) on the leader; followers forward.
// Only admin tokens reach it (the policy table).
func (m *Master) tokenRoutes() []route {
	return []route{
		{"POST " + api.TokensPath, m.LeaderOnly(http.HandlerFunc(m.handleCreateToken))},
		{"GET " + api.TokensPath, m.LeaderOnly(http.HandlerFunc(m.handleListTokens))},
		{"DELETE " + api.TokensPath + "/{id}", m.LeaderOnly(http.HandlerFunc(m.handleRevokeToken))},
		// Every master answers from its own replica, as it checks tokens.
		{"GET " + api.TokenSelfPath, http.HandlerFunc(m.handleTokenSelf)},
	}
}

// handleTokenSelf describes the token the request carries.
func (m *Master) handleTokenSelf(w http.ResponseWriter, r *http.Request) {
	t := requestToken(r.Context())
	if t == nil {
		writeError(w, errorf(http.StatusNotFound, "this request carries no token: authentication is off"))
		return
	}
	writeJSON(w, http.StatusOK, t.Token)
}

// requester names who made a request, for a token's created_by.
func requester(r *http.Request) string {
	if t := requestToken(r.Context()); t != nil {
		return t.ID
	}
	if fromThisProcess(r) {
		return "in-process"
	}
	return "unauthenticated"
}

func (m *Master) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	var req api.CreateTokenRequest
	if err := m.decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	by := requester(r)
	created, err := m.createToken(r.Context(), req, by)
	if err != nil {
		writeError(w, err)
		return
	}
	m.log.Info("API token created", "token", created.Info.ID, "role", created.Info.Role, "principal", created.Info.Principal, "expires", created.Info.Expires, "by", by)
	writeJSON(w, http.StatusCreated, created)
}

func (m *Master) handleListTokens(w http.ResponseWriter, _ *http.Request) {
	list := api.TokenList{Tokens: []api.Token{}}
	for _, t := range m.tokens() {
		list.Tokens = append(list.Tokens, t.Token)
	}
	writeJSON(w, http.StatusOK, list)
}

func (m *Master) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	entry, ok := m.fsm.Store().KV(authNamespace, tokenKeyPrefix+id)
	if !ok {
		writeError(w, errorf(http.StatusNotFound, "no token has id %q", id))
		return
	}
	var t storedToken
	if err := json.Unmarshal(entry.Value, &t); err != nil {
		writeError(w, errorf(http.StatusInternalServerError, "token %s: stored record unreadable: %v", id, err))
		return
	}
	if t.Revoked.IsZero() {
		t.Revoked = m.auth.now().UTC()
		if err := m.writeToken(r.Context(), &t); err != nil {
			writeError(w, err)
			return
		}
		m.log.Info("API token revoked", "token", id, "role", t.Role, "principal", t.Principal, "by", requester(r))
	}
	writeJSON(w, http.StatusOK, t.Token)
}

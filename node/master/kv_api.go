package master

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// The key-value API (an Atoll extension) serves the replicated key-value table over HTTP,
// for frameworks that run as processes of their own (`atoll framework services|jobs`, the
// Marathon and Chronos the package catalog installs) and keep their state where the
// built-in frameworks keep theirs, one namespace each:
//
//	GET  /atoll/v1/kv/{namespace}?prefix=P  {"entries": [state.KVEntry…]} of the keys
//	                                        starting with P (all without it), ordered by key
//	GET  /atoll/v1/kv/{namespace}/{key…}    one state.KVEntry, the key path-escaped
//	                                        (keys hold slashes); 404 when there is none
//	POST /atoll/v1/kv/{namespace}           a state.WriteKVRequest (its namespace empty or
//	                                        the path's), applied through Raft as one entry;
//	                                        {"index": N}, the Raft index it was applied at
//
// Every request goes to the leader (followers forward it; reads may add ?stale=true for
// this master's replica), so a framework reads its own writes. The namespaces of the
// built-in frameworks are refused, and so is any name not matching kvNamespacePattern:
// no process outside the masters can change the built-in frameworks' state through it.
// With authentication on, framework tokens write only the namespace named as their
// principal (see the policy table).

// KVPath is the key-value API's path prefix.
const KVPath = "/atoll/v1/kv/"

// reservedKVNamespaces are the namespaces only components inside the masters write, each
// with its owner.
var reservedKVNamespaces = map[string]string{
	"services": "the built-in services framework",
	"jobs":     "the built-in jobs framework",
	"packages": "the package catalog",
	"auth":     "the masters' API tokens",
}

// kvNamespacePattern is what a namespace of the key-value API looks like: safe in a URL
// path and a log line, and short.
var kvNamespacePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// CheckKVNamespace reports why namespace cannot be used through the key-value API, or nil
// when it can.
func CheckKVNamespace(namespace string) error {
	if owner, ok := reservedKVNamespaces[namespace]; ok {
		return fmt.Errorf("key-value namespace %q belongs to %s and cannot be used through the key-value API: give the framework a namespace of its own", namespace, owner)
	}
	if !kvNamespacePattern.MatchString(namespace) {
		return fmt.Errorf("key-value namespace %q: want 1 to 63 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit", namespace)
	}
	return nil
}

// KVEntries answers a key-value list.
type KVEntries struct {
	Entries []*state.KVEntry `json:"entries"`
}

// KVWritten answers a key-value write.
type KVWritten struct {
	Index uint64 `json:"index"`
}

// kvRoutes are the key-value API's routes.
func (m *Master) kvRoutes() []route {
	return []route{
		{"GET " + KVPath + "{namespace}", m.LeaderOnly(kvHandler(m.kvList))},
		{"GET " + KVPath + "{namespace}/{key...}", m.LeaderOnly(kvHandler(m.kvGet))},
		{"POST " + KVPath + "{namespace}", m.LeaderOnly(kvHandler(m.kvWrite))},
	}
}

// kvHandler checks the path's namespace, then calls h with it.
func kvHandler(h func(w http.ResponseWriter, r *http.Request, namespace string) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		namespace := r.PathValue("namespace")
		err := CheckKVNamespace(namespace)
		if err != nil {
			err = errorf(http.StatusBadRequest, "%v", err)
		} else {
			err = h(w, r, namespace)
		}
		if err != nil {
			writeError(w, err)
		}
	})
}

// SecretKeyPrefix starts the keys of a namespace's secret store (the services framework
// keeps its secrets under it): the key-value API serves them to the namespace's own
// framework token and to admins alone, and leaves them out of other readers' listings.
const SecretKeyPrefix = "secret/"

// mayReadSecrets says the request may read namespace's secrets: authentication is off,
// or its token is an admin's or the namespace's own framework token.
func mayReadSecrets(r *http.Request, namespace string) bool {
	token := requestToken(r.Context())
	return token == nil || token.Role == api.RoleAdmin || token.Role == api.RoleFramework && token.Principal == namespace
}

func (m *Master) kvList(w http.ResponseWriter, r *http.Request, namespace string) error {
	entries := m.fsm.Store().KVList(namespace, r.URL.Query().Get("prefix"))
	if !mayReadSecrets(r, namespace) {
		entries = slices.DeleteFunc(entries, func(e *state.KVEntry) bool { return strings.HasPrefix(e.Key, SecretKeyPrefix) })
	}
	if entries == nil {
		entries = []*state.KVEntry{}
	}
	writeJSON(w, http.StatusOK, KVEntries{Entries: entries})
	return nil
}

func (m *Master) kvGet(w http.ResponseWriter, r *http.Request, namespace string) error {
	key := r.PathValue("key")
	if key == "" {
		return errorf(http.StatusBadRequest, "key-value read in %q: empty key", namespace)
	}
	if strings.HasPrefix(key, SecretKeyPrefix) && !mayReadSecrets(r, namespace) {
		return errorf(http.StatusForbidden, "key %q of key-value namespace %q is a secret: only the namespace's framework token and admins read it", key, namespace)
	}
	entry, ok := m.fsm.Store().KV(namespace, key)
	if !ok {
		return errorf(http.StatusNotFound, "key %q is not in key-value namespace %q", key, namespace)
	}
	writeJSON(w, http.StatusOK, entry)
	return nil
}

func (m *Master) kvWrite(w http.ResponseWriter, r *http.Request, namespace string) error {
	var req state.WriteKVRequest
	if err := m.decodeBody(r, &req); err != nil {
		return err
	}
	switch req.Namespace {
	case "":
		req.Namespace = namespace
	case namespace:
	default:
		return errorf(http.StatusBadRequest, "key-value write to %q: the body names namespace %q", namespace, req.Namespace)
	}
	if err := req.Validate(); err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	index, err := m.WriteKV(r.Context(), &req)
	if err != nil {
		return fmt.Errorf("key-value write to %q: %w", namespace, err)
	}
	writeJSON(w, http.StatusOK, KVWritten{Index: index})
	return nil
}

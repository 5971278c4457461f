package master

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/atoll/atoll/node/master/state"
	"github.com/atoll/atoll/node/pki"
)

// Gossip key rotation (pki.KeyringRotatePath). The leader installs a new key on every
// member beside the one in use, stores it in Raft (gossipKeyKey) so that the nodes
// joining from then on get it, makes every member use it, and then has them drop every
// other key. Each node keeps the key its keyring uses in its credentials, so that a
// restart keeps it.

// gossipKeyKey, in the tokens' namespace, holds the gossip key of the last rotation;
// without it the joining nodes get the key the cluster was created with.
const gossipKeyKey = "gossip-key"

// GossipKeyring is the keyring of the cluster's gossip, on every member at once: each
// call asks every alive member and returns once all answered, or with an error that says
// how many did not. Safe for concurrent use.
type GossipKeyring interface {
	// InstallKey adds key to the keyring of every alive member, beside the key in use.
	// It returns how many members have it, and the names of the known members that are
	// not alive, which do not.
	InstallKey(key []byte) (members int, missed []string, err error)
	// UseKey makes key, installed, the one every member encrypts with.
	UseKey(key []byte) error
	// RemoveKeysExcept drops every key but key from every member's keyring.
	RemoveKeysExcept(key []byte) error
}

// storedGossipKey is the value at gossipKeyKey.
type storedGossipKey struct {
	Key     []byte    `json:"key"`
	Rotated time.Time `json:"rotated"`
}

// gossipKey is the key joining nodes get: the last rotation's, else the cluster's first.
func (j *joinService) gossipKey() []byte {
	if entry, ok := j.m.fsm.Store().KV(authNamespace, gossipKeyKey); ok {
		var stored storedGossipKey
		if err := json.Unmarshal(entry.Value, &stored); err == nil && len(stored.Key) == pki.GossipKeySize {
			return stored.Key
		}
		j.m.log.Error("the stored gossip key is unreadable; joining nodes get the cluster's first one", "key", gossipKeyKey)
	}
	return j.cfg.Credentials.GossipKey
}

// handleRotate rotates the gossip key on every member (see above). A failure before the
// new key is stored changes nothing that matters (a key no one uses may stay installed);
// one after it leaves the old key working beside the new one, and running the rotation
// again finishes it.
func (j *joinService) handleRotate(w http.ResponseWriter, r *http.Request) {
	j.rotateMu.Lock()
	defer j.rotateMu.Unlock()
	key, err := pki.NewGossipKey()
	if err != nil {
		writeError(w, err)
		return
	}
	members, missed, err := j.cfg.Keyring.InstallKey(key)
	if err != nil {
		writeError(w, errorf(http.StatusServiceUnavailable, "install a new gossip key on every member: %v; the old key is still the one in use: run the rotation again", err))
		return
	}
	now := j.m.auth.now().UTC()
	value, err := json.Marshal(storedGossipKey{Key: key, Rotated: now})
	if err != nil {
		writeError(w, fmt.Errorf("encode the gossip key: %w", err))
		return
	}
	if _, err := j.m.WriteKV(r.Context(), &state.WriteKVRequest{Namespace: authNamespace, Puts: []state.KVPut{{Key: gossipKeyKey, Value: value}}}); err != nil {
		writeError(w, fmt.Errorf("store the new gossip key: %w; the old key is still the one in use: run the rotation again", err))
		return
	}
	if err := j.cfg.Keyring.UseKey(key); err != nil {
		writeError(w, errorf(http.StatusServiceUnavailable, "switch every member to the new gossip key: %v; both keys work meanwhile: run the rotation again", err))
		return
	}
	if err := j.cfg.Keyring.RemoveKeysExcept(key); err != nil {
		writeError(w, errorf(http.StatusServiceUnavailable, "drop the old gossip key from every member: %v; the old key still works: run the rotation again", err))
		return
	}
	j.m.log.Info("gossip key rotated", "members", members, "missed", missed, "by", requester(r))
	writeJSON(w, http.StatusOK, pki.KeyringRotation{Members: members, Missed: missed, Rotated: now})
}

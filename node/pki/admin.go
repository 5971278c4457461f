package pki

import (
	"net/url"
	"time"
)

// The admin API of a secure cluster's node credentials, on the masters' API port, for
// admin tokens; the leader answers, the other masters forward:
//
//	POST /atoll/v1/nodes/{name}/revoke  the masters refuse the node's certificates and
//	                                    its API token from then on: 200 with a
//	                                    NodeRevocation
//	POST /atoll/v1/keyring/rotate       a new gossip key on every member: 200 with a
//	                                    KeyringRotation
const (
	NodesPath         = "/atoll/v1/nodes"
	KeyringRotatePath = "/atoll/v1/keyring/rotate"
)

// RevokePath is the path that revokes node name's certificates.
func RevokePath(name string) string { return NodesPath + "/" + url.PathEscape(name) + "/revoke" }

// NodeRevocation answers a node's revocation.
type NodeRevocation struct {
	// Name is the node's.
	Name string `json:"name"`
	// Generation is the lowest certificate generation the masters now accept for the
	// name: the node's certificates are all below it, and only a join with a join token
	// gets one that is not.
	Generation uint64 `json:"generation"`
	// Revoked is when the revocation was replicated.
	Revoked time.Time `json:"revoked"`
	// Tokens are the ids of the node's API tokens revoked with it.
	Tokens []string `json:"tokens"`
}

// KeyringRotation answers a gossip key rotation.
type KeyringRotation struct {
	// Members is how many gossip members installed the new key, use it and dropped the
	// others.
	Members int `json:"members"`
	// Missed names the members that were not alive to get the new key: they can no
	// longer gossip, and join again with a join token.
	Missed []string `json:"missed,omitempty"`
	// Rotated is when the new key was stored for the nodes that join from then on.
	Rotated time.Time `json:"rotated"`
}

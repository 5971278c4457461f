// Package pki is the security of node-to-node traffic in a cluster: its certificate
// authority, the node certificates it issues, the join tokens that pin it, the TLS
// configurations of Raft and the node APIs, and the key that encrypts gossip.
//
// A cluster's first master creates the CA (ECDSA P-256, self-signed). Every other node
// joins with a token "ATL1-<SHA-256 of the CA certificate>-<secret>": it fetches the CA
// from a master without trusting it, checks it against the hash, and from then on trusts
// that CA alone; it sends the secret and a certificate request and receives its node
// certificate and the gossip key. A node certificate names the node and its roles
// (master, agent, lb); peers check the role, not the address they dialed. A running node
// renews its certificate through a master before it expires (Renew), and the TLS
// configurations made of its Credentials present the new one at once; a certificate's
// generation (Identity.Generation) lets the masters refuse those of a node revoked or
// joined again under its name.
package pki

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Role is what a node certificate allows its holder to act as.
type Role string

// Node roles.
const (
	RoleMaster Role = "master"
	RoleAgent  Role = "agent"
	RoleLB     Role = "lb"
)

// Roles lists every role, most trusted first.
var Roles = []Role{RoleMaster, RoleAgent, RoleLB}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// roleDomain is where the roles' server names live: not a real domain, only a name
// certificates carry.
const roleDomain = "node.atoll"

// ServerName is the DNS name every certificate of role r carries ("master.node.atoll").
// Node clients verify servers against it rather than against the address they dialed,
// so a master stays verifiable whatever address it is reached at, and a certificate of
// another role does not pass for it.
func (r Role) ServerName() string { return string(r) + "." + roleDomain }

// ParseRoles turns role names into Roles, refusing unknown and repeated ones.
func ParseRoles(names []string) ([]Role, error) {
	roles := make([]Role, 0, len(names))
	for _, name := range names {
		r := Role(name)
		if !r.Valid() {
			return nil, fmt.Errorf("role %q: want %s", name, roleList(Roles, "or"))
		}
		if slices.Contains(roles, r) {
			return nil, fmt.Errorf("role %q given twice", name)
		}
		roles = append(roles, r)
	}
	return roles, nil
}

// roleList names roles for messages: "master, agent or lb" (conj "or").
func roleList(roles []Role, conj string) string {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " " + conj + " " + names[len(names)-1]
}

// Validity periods.
const (
	// CAValidity is the CA's lifetime: a cluster outlives its hardware, and replacing
	// the CA means joining every node again.
	CAValidity = 10 * 365 * 24 * time.Hour
	// DefaultCertValidity is a node certificate's lifetime: a year, as a node joined
	// again (or re-installed) gets a new one.
	DefaultCertValidity = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore, so that a node whose clock is a little behind the
	// master's accepts a certificate issued a moment ago.
	clockSkew = 5 * time.Minute
)

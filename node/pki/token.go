package pki

import (
	"errors"
	"fmt"
	"strings"
)

// A join token is "ATL1-<CA hash>-<secret>": the version, the hex SHA-256 of the cluster
// CA's certificate (64 lowercase hex digits) and the secret the master checks, which may
// hold letters, digits and '_' (an API token of a node role, "atl_<id>_<secret>").
const (
	joinTokenPrefix    = "ATL1-"
	caHashLen          = 64
	maxJoinTokenSecret = 256
)

// ErrNotJoinToken is wrapped by the errors of ParseJoinToken.
var ErrNotJoinToken = errors.New("token is not an Atoll join token")

// JoinToken is a parsed join token.
type JoinToken struct {
	// CAHash is the hex SHA-256 of the cluster CA's certificate.
	CAHash string
	// Secret authenticates the joining node to the master.
	Secret string
}

// String is the token as users pass it.
func (t JoinToken) String() string { return joinTokenPrefix + t.CAHash + "-" + t.Secret }

// ParseJoinToken reads a join token, saying what is wrong with one that is not.
func ParseJoinToken(s string) (JoinToken, error) {
	rest, ok := strings.CutPrefix(s, joinTokenPrefix)
	if !ok {
		return JoinToken{}, fmt.Errorf("%w: want ATL1-<CA hash>-<secret>, as the first master and `atoll token create --role agent|lb|master` print it", ErrNotJoinToken)
	}
	hash, secret, ok := strings.Cut(rest, "-")
	if !ok {
		return JoinToken{}, fmt.Errorf("%w: no '-' between the CA hash and the secret", ErrNotJoinToken)
	}
	if len(hash) != caHashLen || !isLowerHex(hash) {
		return JoinToken{}, fmt.Errorf("%w: the CA hash is not %d lowercase hex digits", ErrNotJoinToken, caHashLen)
	}
	if secret == "" || len(secret) > maxJoinTokenSecret {
		return JoinToken{}, fmt.Errorf("%w: the secret must be 1 to %d characters", ErrNotJoinToken, maxJoinTokenSecret)
	}
	for i := 0; i < len(secret); i++ {
		c := secret[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return JoinToken{}, fmt.Errorf("%w: the secret may hold only letters, digits and '_'", ErrNotJoinToken)
		}
	}
	return JoinToken{CAHash: hash, Secret: secret}, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// CAMismatchError is a master that presented a CA other than the one a join token pins:
// a man in the middle, or a token of another cluster.
type CAMismatchError struct {
	// Expected is the token's CA hash, Presented the hash of the CA the server sent.
	Expected, Presented string
}

func (e *CAMismatchError) Error() string {
	return fmt.Sprintf("CA hash mismatch: expected %s, the server presented %s", e.Expected, e.Presented)
}

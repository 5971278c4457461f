package lb

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// shaCrypt is a password hash in the SHA-crypt form of crypt(3) (Ulrich Drepper's
// specification, "$5$" SHA-256 and "$6$" SHA-512): the form mkpasswd and openssl passwd
// write and HAProxy's userlists (so marathon-lb's AUTH labels) take.
type shaCrypt struct {
	id       string // "5" or "6"
	rounds   int
	explicit bool // the hash names its rounds
	salt     string
	sum      string // the encoded digest
}

const (
	shaCryptDefaultRounds = 5000
	shaCryptMinRounds     = 1000
	shaCryptMaxRounds     = 999_999_999
	shaCryptMaxSalt       = 16
	// shaCryptMaxVerifyRounds bounds the work one login may cost: a label asking for more
	// would let any client burn the load balancer's CPU.
	shaCryptMaxVerifyRounds = 100_000
)

func parseShaCrypt(s string) (shaCrypt, error) {
	var c shaCrypt
	switch {
	case strings.HasPrefix(s, "$5$"):
		c.id = "5"
	case strings.HasPrefix(s, "$6$"):
		c.id = "6"
	default:
		return c, fmt.Errorf("only crypt(3) SHA-256 ($5$) and SHA-512 ($6$) hashes are supported")
	}
	rest := s[3:]
	c.rounds = shaCryptDefaultRounds
	if r, ok := strings.CutPrefix(rest, "rounds="); ok {
		num, after, found := strings.Cut(r, "$")
		n, err := strconv.Atoi(num)
		if !found || err != nil {
			return c, fmt.Errorf("bad rounds in the hash")
		}
		c.rounds = min(max(n, shaCryptMinRounds), shaCryptMaxRounds)
		c.explicit = true
		rest = after
	}
	salt, sum, ok := strings.Cut(rest, "$")
	if !ok || sum == "" {
		return c, fmt.Errorf("the hash has no digest")
	}
	if c.rounds > shaCryptMaxVerifyRounds {
		return c, fmt.Errorf("%d rounds are more than the %d the load balancer spends on a login", c.rounds, shaCryptMaxVerifyRounds)
	}
	c.salt = salt[:min(len(salt), shaCryptMaxSalt)]
	c.sum = sum
	return c, nil
}

// verify tells whether password hashes to c.
func (c shaCrypt) verify(password string) bool {
	got := shaCryptSum(c.id, []byte(password), []byte(c.salt), c.rounds)
	return subtle.ConstantTimeCompare([]byte(got), []byte(c.sum)) == 1
}

// shaCryptSum computes the encoded digest of SHA-crypt.
func shaCryptSum(id string, password, salt []byte, rounds int) string {
	newHash := sha512.New
	if id == "5" {
		newHash = sha256.New
	}
	sum := func(h hash.Hash) []byte { return h.Sum(nil) }

	h := newHash()
	h.Write(password)
	h.Write(salt)
	h.Write(password)
	b := sum(h)

	h = newHash()
	h.Write(password)
	h.Write(salt)
	writeRepeated(h, b, len(password))
	for n := len(password); n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write(b)
		} else {
			h.Write(password)
		}
	}
	a := sum(h)

	h = newHash()
	for range password {
		h.Write(password)
	}
	pSeq := repeatTo(sum(h), len(password))

	h = newHash()
	for range 16 + int(a[0]) {
		h.Write(salt)
	}
	sSeq := repeatTo(sum(h), len(salt))

	c := a
	for i := range rounds {
		h = newHash()
		if i&1 != 0 {
			h.Write(pSeq)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(sSeq)
		}
		if i%7 != 0 {
			h.Write(pSeq)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(pSeq)
		}
		c = sum(h)
	}
	return shaCryptEncode(id, c)
}

// writeRepeated writes n bytes of block repeated.
func writeRepeated(h hash.Hash, block []byte, n int) {
	for ; n > len(block); n -= len(block) {
		h.Write(block)
	}
	h.Write(block[:n])
}

func repeatTo(block []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, block[:min(len(block), n-len(out))]...)
	}
	return out
}

const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// The byte order of SHA-crypt's encoding: triples of digest indexes, then the rest.
var (
	sha256Order = [][3]int{{0, 10, 20}, {21, 1, 11}, {12, 22, 2}, {3, 13, 23}, {24, 4, 14}, {15, 25, 5}, {6, 16, 26}, {27, 7, 17}, {18, 28, 8}, {9, 19, 29}}
	sha512Order = [][3]int{{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4}, {47, 5, 26}, {6, 27, 48}, {28, 49, 7}, {50, 8, 29}, {9, 30, 51}, {31, 52, 10}, {53, 11, 32}, {12, 33, 54}, {34, 55, 13}, {56, 14, 35}, {15, 36, 57}, {37, 58, 16}, {59, 17, 38}, {18, 39, 60}, {40, 61, 19}, {62, 20, 41}}
)

func shaCryptEncode(id string, d []byte) string {
	var sb strings.Builder
	put := func(b2, b1, b0 byte, n int) {
		w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
		for range n {
			sb.WriteByte(cryptAlphabet[w&0x3f])
			w >>= 6
		}
	}
	if id == "5" {
		for _, t := range sha256Order {
			put(d[t[0]], d[t[1]], d[t[2]], 4)
		}
		put(0, d[31], d[30], 3)
	} else {
		for _, t := range sha512Order {
			put(d[t[0]], d[t[1]], d[t[2]], 4)
		}
		put(0, 0, d[63], 2)
	}
	return sb.String()
}

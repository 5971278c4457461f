package pki

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Credentials are what a node of a secure cluster holds: the cluster CA (with its key on
// masters), its own certificate and the gossip key. They are read-only once made, so
// safe for concurrent use.
type Credentials struct {
	// CA is the cluster CA; it can sign on masters only.
	CA *CA
	// Cert is the node's certificate and key, Leaf set.
	Cert tls.Certificate
	// GossipKey encrypts serf's gossip (GossipKeySize bytes, AES-256-GCM).
	GossipKey []byte
	// APIToken is the API token the node sends to the masters (JoinResponse.APIToken);
	// empty on the master that created the cluster, which needs none.
	APIToken string
}

// GossipKeySize is the size of gossip keys: memberlist's largest, AES-256.
const GossipKeySize = 32

// NewGossipKey makes a random gossip key.
func NewGossipKey() ([]byte, error) {
	key := make([]byte, GossipKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("random gossip key: %w", err)
	}
	return key, nil
}

// NewCluster makes the credentials of a new cluster's first master: a CA, a gossip key,
// and the master's own certificate for id, issued at now.
func NewCluster(clusterName string, id Identity, now time.Time) (*Credentials, error) {
	ca, err := NewCA(clusterName, now)
	if err != nil {
		return nil, err
	}
	gossipKey, err := NewGossipKey()
	if err != nil {
		return nil, err
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	cert, err := ca.Issue(key.Public(), id, now, DefaultCertValidity)
	if err != nil {
		return nil, err
	}
	return &Credentials{CA: ca, Cert: tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, GossipKey: gossipKey}, nil
}

// Roles are the roles the node's certificate holds.
func (c *Credentials) Roles() []Role { return RolesOf(c.Cert.Leaf) }

// ServerTLS is ServerConfig with the node's certificate and the cluster CA.
func (c *Credentials) ServerTLS(clientRoles ...Role) *tls.Config {
	return ServerConfig(c.Cert, c.CA.Pool(), clientRoles...)
}

// ClientTLS is ClientConfig with the node's certificate and the cluster CA.
func (c *Credentials) ClientTLS(serverRole Role) *tls.Config {
	return ClientConfig(&c.Cert, c.CA.Pool(), serverRole)
}

// The files of a credentials directory. The keys are readable by their owner only.
const (
	caCertFile    = "ca.crt"
	caKeyFile     = "ca.key"
	certFile      = "node.crt"
	keyFile       = "node.key"
	gossipKeyFile = "gossip.key"
	apiTokenFile  = "api.token"
)

// ErrNoCredentials is wrapped by LoadCredentials's error when dir holds none: the node
// has not joined yet.
var ErrNoCredentials = errors.New("no node credentials")

// LoadCredentials reads the credentials Save wrote to dir.
func LoadCredentials(dir string) (*Credentials, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, certFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoCredentials, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read node certificate: %w", err)
	}
	read := func(name string, optional bool) ([]byte, error) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if optional && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read node credentials: %w", err)
		}
		return data, nil
	}
	keyPEM, err := read(keyFile, false)
	if err != nil {
		return nil, err
	}
	caPEM, err := read(caCertFile, false)
	if err != nil {
		return nil, err
	}
	caKeyPEM, err := read(caKeyFile, true)
	if err != nil {
		return nil, err
	}
	gossipText, err := read(gossipKeyFile, false)
	if err != nil {
		return nil, err
	}
	apiToken, err := read(apiTokenFile, true)
	if err != nil {
		return nil, err
	}
	ca, err := ParseCA(caPEM, caKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: node certificate: %w", dir, err)
	}
	if err := cert.Leaf.CheckSignatureFrom(ca.cert); err != nil {
		return nil, fmt.Errorf("%s: node certificate of %q was not issued by the cluster CA: %w", dir, cert.Leaf.Subject.CommonName, err)
	}
	gossipKey, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(gossipText)))
	if err != nil || len(gossipKey) != GossipKeySize {
		return nil, fmt.Errorf("%s: %s: want %d bytes in base64", dir, gossipKeyFile, GossipKeySize)
	}
	return &Credentials{CA: ca, Cert: cert, GossipKey: gossipKey, APIToken: strings.TrimSpace(string(apiToken))}, nil
}

// Save writes the credentials to dir, creating it; each file is replaced whole.
func (c *Credentials) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save node credentials: %w", err)
	}
	key, ok := c.Cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("save node credentials: node key of type %T, want ECDSA", c.Cert.PrivateKey)
	}
	keyPEM, err := KeyPEM(key)
	if err != nil {
		return fmt.Errorf("save node credentials: %w", err)
	}
	type file struct {
		name string
		data []byte
		mode os.FileMode
	}
	files := []file{
		{caCertFile, c.CA.CertPEM(), 0o644},
		{certFile, encodePEM(pemCertificate, c.Cert.Leaf.Raw), 0o644},
		{keyFile, keyPEM, 0o600},
		{gossipKeyFile, []byte(base64.StdEncoding.EncodeToString(c.GossipKey) + "\n"), 0o600},
	}
	if c.CA.CanSign() {
		caKey, err := c.CA.KeyPEM()
		if err != nil {
			return fmt.Errorf("save node credentials: %w", err)
		}
		files = append(files, file{caKeyFile, caKey, 0o600})
	}
	if c.APIToken != "" {
		files = append(files, file{apiTokenFile, []byte(c.APIToken + "\n"), 0o600})
	} else if err := os.Remove(filepath.Join(dir, apiTokenFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("save node credentials: %w", err)
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("save node credentials: %w", err)
		}
	}
	return nil
}

// writeFile replaces path with data by a rename, so that a crash leaves the old file or
// the new one, never half of one.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// Credentials are what a node of a secure cluster holds: the cluster CA (with its key on
// masters), its own certificate and the gossip key. A running node renews its certificate
// and follows gossip key rotations: SetCert and SetGossipKey replace them, and the TLS
// configurations made by ServerTLS and ClientTLS present the current certificate from
// then on. Safe for concurrent use.
type Credentials struct {
	// CA is the cluster CA; it can sign on masters only.
	CA *CA
	// Cert is the node's certificate and key as made or loaded, Leaf set; CurrentCert is
	// the one in use.
	Cert tls.Certificate
	// GossipKey encrypts serf's gossip (GossipKeySize bytes, AES-256-GCM), as made or
	// loaded; CurrentGossipKey is the one in use.
	GossipKey []byte
	// APIToken is the API token the node sends to the masters (JoinResponse.APIToken, or
	// on the master that created the cluster one it made itself).
	APIToken string

	// cert and gossipKey are the current ones once replaced.
	cert      atomic.Pointer[tls.Certificate]
	gossipKey atomic.Pointer[[]byte]
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

// CurrentCert is the node's certificate in use: Cert, or what SetCert put in its place.
func (c *Credentials) CurrentCert() *tls.Certificate {
	if cert := c.cert.Load(); cert != nil {
		return cert
	}
	return &c.Cert
}

// SetCert replaces the node's certificate (Leaf set): the next TLS handshakes of the
// configurations made by ServerTLS and ClientTLS present it.
func (c *Credentials) SetCert(cert tls.Certificate) { c.cert.Store(&cert) }

// CurrentGossipKey is the gossip key in use: GossipKey, or what SetGossipKey put in its
// place.
func (c *Credentials) CurrentGossipKey() []byte {
	if key := c.gossipKey.Load(); key != nil {
		return *key
	}
	return c.GossipKey
}

// SetGossipKey replaces the gossip key, after a rotation.
func (c *Credentials) SetGossipKey(key []byte) {
	key = bytes.Clone(key)
	c.gossipKey.Store(&key)
}

// Roles are the roles the node's certificate holds.
func (c *Credentials) Roles() []Role { return RolesOf(c.CurrentCert().Leaf) }

// ServerTLS is ServerConfig with the cluster CA, presenting the node's current
// certificate in each handshake.
func (c *Credentials) ServerTLS(clientRoles ...Role) *tls.Config {
	base := serverConfig(c.CA.Pool(), clientRoles)
	cfg := base.Clone()
	// The configuration of each handshake, rather than a GetCertificate callback: a
	// server that finds no certificate in its configuration adds one of its own
	// (httptest's), which clients that send no server name would get instead.
	var current atomic.Pointer[tls.Config]
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert := c.CurrentCert()
		if last := current.Load(); last != nil && last.Certificates[0].Leaf == cert.Leaf {
			return last, nil
		}
		next := base.Clone()
		next.Certificates = []tls.Certificate{*cert}
		current.Store(next)
		return next, nil
	}
	return cfg
}

// ClientTLS is ClientConfig with the cluster CA, presenting the node's current
// certificate to servers that ask for one.
func (c *Credentials) ClientTLS(serverRole Role) *tls.Config {
	cfg := ClientConfig(nil, c.CA.Pool(), serverRole)
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c.CurrentCert(), nil }
	return cfg
}

// IssueOwn is how a master renews its own certificate, or gives it roles it lacks: it
// makes a key and signs a certificate for it and id with the CA's key, valid from now
// for validity.
func (c *Credentials) IssueOwn(id Identity, now time.Time, validity time.Duration) (tls.Certificate, error) {
	key, err := NewKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := c.CA.Issue(key.Public(), id, now, validity)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// RenewAt is when a node renews its certificate: once two thirds of its lifetime have
// passed, which leaves a third to reach a master in (a year's certificate: four months).
func RenewAt(cert *x509.Certificate) time.Time {
	// NotBefore was backdated by clockSkew at issue.
	issued := cert.NotBefore.Add(clockSkew)
	if issued.After(cert.NotAfter) {
		issued = cert.NotBefore
	}
	return issued.Add(cert.NotAfter.Sub(issued) * 2 / 3)
}

// The files of a credentials directory (a node's <data-dir>/pki). The keys are readable
// by their owner only; CACertFile, the cluster CA's certificate, is what clients of the
// masters' TLS API trust.
const (
	CACertFile    = "ca.crt"
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
	caPEM, err := read(CACertFile, false)
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

// Save writes the credentials to dir, creating it, with the current certificate and
// gossip key; each file is replaced whole.
func (c *Credentials) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save node credentials: %w", err)
	}
	cert := c.CurrentCert()
	key, ok := cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("save node credentials: node key of type %T, want ECDSA", cert.PrivateKey)
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
		{CACertFile, c.CA.CertPEM(), 0o644},
		{certFile, encodePEM(pemCertificate, cert.Leaf.Raw), 0o644},
		{keyFile, keyPEM, 0o600},
		{gossipKeyFile, []byte(base64.StdEncoding.EncodeToString(c.CurrentGossipKey()) + "\n"), 0o600},
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

package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// PEM block types.
const (
	pemCertificate = "CERTIFICATE"
	pemECKey       = "EC PRIVATE KEY"
	pemCSR         = "CERTIFICATE REQUEST"
)

// CA is a cluster's certificate authority: its certificate and, on masters, its key.
// It is safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	// key is nil on nodes that only verify.
	key *ecdsa.PrivateKey
}

// NewCA creates a cluster CA valid from now for CAValidity, named after the cluster.
func NewCA(clusterName string, now time.Time) (*CA, error) {
	key, err := NewKey()
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Atoll cluster CA " + clusterName, Organization: []string{"atoll"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// Node certificates only: no intermediate CAs below this one.
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	return &CA{cert: cert, certPEM: encodePEM(pemCertificate, der), key: key}, nil
}

// ParseCA reads a CA from its PEM certificate and, when keyPEM is not nil, its PEM key,
// which must be the certificate's.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("CA certificate %q is not a CA certificate", cert.Subject.CommonName)
	}
	ca := &CA{cert: cert, certPEM: encodePEM(pemCertificate, cert.Raw)}
	if keyPEM == nil {
		return ca, nil
	}
	key, err := parseECKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("CA key: it is not the key of the CA certificate")
	}
	ca.key = key
	return ca, nil
}

// Certificate is the CA's certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM is the CA's certificate in PEM.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// CanSign reports whether the CA holds its key, and so can issue certificates.
func (ca *CA) CanSign() bool { return ca.key != nil }

// KeyPEM is the CA's key in PEM, for a master to store or hand to a joining master.
func (ca *CA) KeyPEM() ([]byte, error) {
	if ca.key == nil {
		return nil, errors.New("CA key: this node holds only the CA certificate")
	}
	der, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("encode CA key: %w", err)
	}
	return encodePEM(pemECKey, der), nil
}

// Hash is the hex SHA-256 of the CA certificate (DER), what join tokens pin.
func (ca *CA) Hash() string { return CertHash(ca.cert) }

// CertHash is the hex SHA-256 of a certificate's DER encoding.
func CertHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// Pool is a certificate pool holding the CA alone.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// Verify checks that cert was issued by the CA, is valid at now and holds one of roles
// (any role when none is given).
func (ca *CA) Verify(cert *x509.Certificate, now time.Time, roles ...Role) error {
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:       ca.Pool(),
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fmt.Errorf("certificate of %q: %w", cert.Subject.CommonName, err)
	}
	return checkRoles(cert, roles)
}

// Issue signs a node certificate for pub with id's name, roles, addresses and generation,
// valid from now for validity (never beyond the CA's own expiry).
func (ca *CA) Issue(pub crypto.PublicKey, id Identity, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	if ca.key == nil {
		return nil, errors.New("issue certificate: this node holds only the CA certificate, not its key")
	}
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", id.Name, err)
	}
	if validity <= 0 {
		return nil, fmt.Errorf("issue certificate for %q: validity %v, want > 0", id.Name, validity)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", id.Name, err)
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	ous := make([]string, len(id.Roles))
	dnsNames := make([]string, 0, len(id.Roles)+len(id.DNSNames))
	for i, r := range id.Roles {
		ous[i] = string(r)
		dnsNames = append(dnsNames, r.ServerName())
	}
	dnsNames = append(dnsNames, id.DNSNames...)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id.Name, OrganizationalUnit: ous, Organization: []string{"atoll"}, SerialNumber: generationAttr(id.Generation)},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Every node both serves and dials other nodes with the one certificate.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    dnsNames,
		IPAddresses: id.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", id.Name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", id.Name, err)
	}
	return cert, nil
}

// NewKey makes a node or CA key: ECDSA on P-256.
func NewKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return key, nil
}

// checkPublicKey accepts the keys nodes make: ECDSA on P-256 or P-384.
func checkPublicKey(pub crypto.PublicKey) error {
	key, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("public key of type %T: want ECDSA on P-256", pub)
	}
	if key.Curve != elliptic.P256() && key.Curve != elliptic.P384() {
		return fmt.Errorf("ECDSA key on %s: want P-256 or P-384", key.Curve.Params().Name)
	}
	return nil
}

// newSerial is a random 128-bit serial number, as RFC 5280 allows up to 20 bytes.
func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("random serial number: %w", err)
	}
	return serial, nil
}

// ParseCertificate reads the first PEM certificate of data.
func ParseCertificate(data []byte) (*x509.Certificate, error) {
	block, err := decodePEM(data, pemCertificate)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}

// CertPEM encodes a certificate as PEM.
func CertPEM(cert *x509.Certificate) []byte { return encodePEM(pemCertificate, cert.Raw) }

// KeyPEM encodes an ECDSA key as PEM.
func KeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return encodePEM(pemECKey, der), nil
}

func parseECKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, err := decodePEM(data, pemECKey)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	return key, nil
}

func encodePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// decodePEM finds the first PEM block of data, which must be of type typ.
func decodePEM(data []byte, typ string) (*pem.Block, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM data: want a %s block", typ)
	}
	if block.Type != typ {
		return nil, fmt.Errorf("PEM block %q: want %s", block.Type, typ)
	}
	return block, nil
}

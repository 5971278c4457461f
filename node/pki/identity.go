package pki

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Identity is what a node certificate says of its holder.
type Identity struct {
	// Name is the node's name (its gossip name): letters, digits, '-' and '.', at most
	// 128 bytes. It is the certificate's common name.
	Name string
	// Roles are the node's roles, its certificate's organizational units. Each role's
	// ServerName is added to DNSNames.
	Roles []Role
	// IPs and DNSNames are the addresses clients outside the cluster (a user's curl with
	// the CA) reach the node at.
	IPs      []net.IP
	DNSNames []string
	// Generation counts the times a node of this name joined the cluster (or was
	// revoked): the masters refuse a certificate of a generation below the one they
	// recorded last for the name (see CertGeneration). The CA grants it; a certificate
	// request does not ask for it.
	Generation uint64
}

// Bounds that keep a certificate a reasonable size.
const (
	maxNameLength = 128
	maxSANs       = 32
)

// Validate reports the first thing wrong with id.
func (id Identity) Validate() error {
	if id.Name == "" || len(id.Name) > maxNameLength {
		return fmt.Errorf("node name %q: want 1 to %d characters", id.Name, maxNameLength)
	}
	for _, c := range id.Name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("node name %q: only letters, digits, '-' and '.' allowed", id.Name)
		}
	}
	if len(id.Roles) == 0 {
		return fmt.Errorf("node %q: no role", id.Name)
	}
	for i, r := range id.Roles {
		if !r.Valid() {
			return fmt.Errorf("node %q: role %q: want %s", id.Name, r, roleList(Roles, "or"))
		}
		if slices.Contains(id.Roles[:i], r) {
			return fmt.Errorf("node %q: role %q given twice", id.Name, r)
		}
	}
	if len(id.IPs)+len(id.DNSNames) > maxSANs {
		return fmt.Errorf("node %q: %d addresses, at most %d", id.Name, len(id.IPs)+len(id.DNSNames), maxSANs)
	}
	for _, ip := range id.IPs {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return fmt.Errorf("node %q: IP address %v is not one", id.Name, ip)
		}
	}
	for _, name := range id.DNSNames {
		if err := validateDNSName(name); err != nil {
			return fmt.Errorf("node %q: %w", id.Name, err)
		}
	}
	return nil
}

// validateDNSName accepts host names, refusing the roles' server names: roles are the
// CA's to grant, through the join token.
func validateDNSName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("DNS name %q: want 1 to 253 characters", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("DNS name %q: only letters, digits, '-', '_' and '.' allowed", name)
		}
	}
	lower := strings.ToLower(name)
	if lower == roleDomain || strings.HasSuffix(lower, "."+roleDomain) {
		return fmt.Errorf("DNS name %q: names under %s are the roles' and granted by the CA", name, roleDomain)
	}
	return nil
}

// NewCSR makes a PEM certificate request for id's name and addresses, signed with key.
// The roles are not in it: the master grants them from the join token.
func NewCSR(key *ecdsa.PrivateKey, id Identity) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: id.Name},
		DNSNames:    id.DNSNames,
		IPAddresses: id.IPs,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("certificate request for %q: %w", id.Name, err)
	}
	return encodePEM(pemCSR, der), nil
}

// ParseCSR reads a PEM certificate request and checks its signature and key.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	block, err := decodePEM(data, pemCSR)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	return csr, nil
}

// CSRIdentity is the identity a certificate request asks for, with roles, and validated.
func CSRIdentity(csr *x509.CertificateRequest, roles []Role) (Identity, error) {
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return Identity{}, errors.New("certificate request: only DNS names and IP addresses may be asked for")
	}
	id := Identity{Name: csr.Subject.CommonName, Roles: roles, IPs: csr.IPAddresses, DNSNames: csr.DNSNames}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("certificate request: %w", err)
	}
	return id, nil
}

// IdentityOf is what a node certificate says of its holder: the identity it was issued
// for, which a renewal keeps.
func IdentityOf(cert *x509.Certificate) Identity {
	roles := RolesOf(cert)
	id := Identity{Name: cert.Subject.CommonName, Roles: roles, IPs: cert.IPAddresses, Generation: CertGeneration(cert)}
	for _, name := range cert.DNSNames {
		if !slices.ContainsFunc(roles, func(r Role) bool { return r.ServerName() == name }) {
			id.DNSNames = append(id.DNSNames, name)
		}
	}
	return id
}

// CertGeneration is the generation a node certificate was issued for: its subject's
// serial number attribute (RFC 5280's way to tell apart holders of one name), 0 when it
// has none.
func CertGeneration(cert *x509.Certificate) uint64 {
	gen, err := strconv.ParseUint(cert.Subject.SerialNumber, 10, 64)
	if err != nil {
		return 0
	}
	return gen
}

// generationAttr is the subject serial number attribute of generation gen: none for 0,
// as certificates were issued before generations existed.
func generationAttr(gen uint64) string {
	if gen == 0 {
		return ""
	}
	return strconv.FormatUint(gen, 10)
}

// RolesOf lists the roles a node certificate holds, in the order of Roles.
func RolesOf(cert *x509.Certificate) []Role {
	var roles []Role
	for _, r := range Roles {
		if slices.Contains(cert.Subject.OrganizationalUnit, string(r)) {
			roles = append(roles, r)
		}
	}
	return roles
}

// checkRoles reports an error unless cert holds one of roles; no roles accepts any.
func checkRoles(cert *x509.Certificate, roles []Role) error {
	if len(roles) == 0 {
		return nil
	}
	held := RolesOf(cert)
	for _, r := range roles {
		if slices.Contains(held, r) {
			return nil
		}
	}
	return &RoleError{Name: cert.Subject.CommonName, Held: held, Want: roles}
}

// RoleError is a certificate without the role a peer must have.
type RoleError struct {
	Name string
	Held []Role
	Want []Role
}

func (e *RoleError) Error() string {
	held := roleList(e.Held, "and")
	if held == "" {
		held = "no role"
	}
	return fmt.Sprintf("certificate of %q holds %s, want %s", e.Name, held, roleList(e.Want, "or"))
}

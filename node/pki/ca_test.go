package pki

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewCA(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ca, err := NewCA("prod", now)
	if err != nil {
		t.Fatal(err)
	}
	cert := ca.Certificate()
	sum := sha256.Sum256(cert.Raw)
	if ca.Hash() != hex.EncodeToString(sum[:]) || len(ca.Hash()) != 64 {
		t.Fatalf("Hash() = %q, want the hex SHA-256 of the DER", ca.Hash())
	}
	if !cert.IsCA || !cert.MaxPathLenZero || cert.Subject.CommonName != "Atoll cluster CA prod" ||
		!cert.NotBefore.Equal(now.Add(-5*time.Minute)) || !cert.NotAfter.Equal(now.Add(CAValidity)) ||
		cert.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign|x509.KeyUsageDigitalSignature {
		t.Fatalf("CA certificate %+v", cert)
	}
	if !ca.CanSign() {
		t.Fatal("a new CA cannot sign")
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseCA(ca.CertPEM(), keyPEM)
	if err != nil || again.Hash() != ca.Hash() || !again.CanSign() {
		t.Fatalf("ParseCA of its own PEM: %v (hash %s, can sign %v)", err, again.Hash(), again.CanSign())
	}
	verifyOnly, err := ParseCA(ca.CertPEM(), nil)
	if err != nil || verifyOnly.CanSign() {
		t.Fatalf("ParseCA without key: %v, can sign %v", err, verifyOnly.CanSign())
	}
	if _, err := verifyOnly.KeyPEM(); errString(err) != "CA key: this node holds only the CA certificate" {
		t.Fatalf("KeyPEM without key: %v", err)
	}
}

func TestParseCA(t *testing.T) {
	ca := newTestCA(t, "a")
	other := newTestCA(t, "b")
	otherKey, _ := other.KeyPEM()
	node := validCert(t, ca, "n1", RoleAgent)
	tests := []struct {
		name      string
		cert, key []byte
		err       string
	}{
		{name: "certificate only", cert: ca.CertPEM()},
		{name: "key of another CA", cert: ca.CertPEM(), key: otherKey, err: "CA key: it is not the key of the CA certificate"},
		{name: "node certificate", cert: CertPEM(node.Leaf), err: `CA certificate "n1" is not a CA certificate`},
		{name: "not PEM", cert: []byte("hello"), err: "CA certificate: no PEM data: want a CERTIFICATE block"},
		{name: "key where the certificate goes", cert: otherKey, err: `CA certificate: PEM block "EC PRIVATE KEY": want CERTIFICATE`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCA(tt.cert, tt.key)
			if errString(err) != tt.err {
				t.Fatalf("ParseCA: %q, want %q", errString(err), tt.err)
			}
			if err == nil && got.Hash() != ca.Hash() {
				t.Fatalf("hash %s, want %s", got.Hash(), ca.Hash())
			}
		})
	}
}

func TestIssue(t *testing.T) {
	ca := newTestCA(t, "c")
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	id := Identity{Name: "node-1.dc", Roles: []Role{RoleAgent, RoleLB}, IPs: []net.IP{net.ParseIP("10.0.0.7").To4(), net.ParseIP("fd00::7")}, DNSNames: []string{"node-1.example.com"}}
	cert, err := ca.Issue(key.Public(), id, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "node-1.dc" || !reflect.DeepEqual(slices.Sorted(slices.Values(cert.Subject.OrganizationalUnit)), []string{"agent", "lb"}) ||
		!reflect.DeepEqual(cert.DNSNames, []string{"agent.node.atoll", "lb.node.atoll", "node-1.example.com"}) ||
		len(cert.IPAddresses) != 2 || !cert.IPAddresses[0].Equal(id.IPs[0]) || !cert.IPAddresses[1].Equal(id.IPs[1]) ||
		!cert.NotBefore.Equal(now.Add(-5*time.Minute)) || !cert.NotAfter.Equal(now.Add(24*time.Hour)) ||
		!reflect.DeepEqual(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) || cert.IsCA {
		t.Fatalf("issued %+v", cert)
	}
	if got := RolesOf(cert); !reflect.DeepEqual(got, []Role{RoleAgent, RoleLB}) {
		t.Fatalf("RolesOf = %v", got)
	}
	if err := ca.Verify(cert, now, RoleLB); err != nil {
		t.Fatalf("Verify as lb: %v", err)
	}
	if err := ca.Verify(cert, now, RoleMaster); errString(err) != `certificate of "node-1.dc" holds agent and lb, want master` {
		t.Fatalf("Verify as master: %v", err)
	}
	var roleErr *RoleError
	if err := ca.Verify(cert, now, RoleMaster); !errors.As(err, &roleErr) {
		t.Fatalf("Verify as master: %T, want *RoleError", err)
	}
	var invalid x509.CertificateInvalidError
	if err := ca.Verify(cert, now.Add(25*time.Hour)); !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Fatalf("Verify after expiry: %v, want x509.Expired", err)
	}
	if err := newTestCA(t, "mitm").Verify(cert, now); !errors.As(err, &x509.UnknownAuthorityError{}) {
		t.Fatalf("Verify by another CA: %v, want x509.UnknownAuthorityError", err)
	}

	// A certificate never outlives its CA.
	long, err := ca.Issue(key.Public(), id, now, 100*year)
	if err != nil || !long.NotAfter.Equal(ca.Certificate().NotAfter) {
		t.Fatalf("100-year certificate: %v, expires %v; want the CA's expiry %v", err, long.NotAfter, ca.Certificate().NotAfter)
	}
}

func TestIssueRefuses(t *testing.T) {
	ca := newTestCA(t, "c")
	key, _ := NewKey()
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	verifyOnly, _ := ParseCA(ca.CertPEM(), nil)
	ok := Identity{Name: "n1", Roles: []Role{RoleAgent}}
	tests := []struct {
		name string
		ca   *CA
		pub  any
		id   Identity
		err  string
	}{
		{"no CA key", verifyOnly, key.Public(), ok, "issue certificate: this node holds only the CA certificate, not its key"},
		{"ed25519 key", ca, edPub, ok, `issue certificate for "n1": public key of type ed25519.PublicKey: want ECDSA on P-256`},
		{"no name", ca, key.Public(), Identity{Roles: []Role{RoleAgent}}, `issue certificate: node name "": want 1 to 128 characters`},
		{"bad name", ca, key.Public(), Identity{Name: "a b", Roles: []Role{RoleAgent}}, `issue certificate: node name "a b": only letters, digits, '-' and '.' allowed`},
		{"no role", ca, key.Public(), Identity{Name: "n1"}, `issue certificate: node "n1": no role`},
		{"unknown role", ca, key.Public(), Identity{Name: "n1", Roles: []Role{"admin"}}, `issue certificate: node "n1": role "admin": want master, agent or lb`},
		{"role twice", ca, key.Public(), Identity{Name: "n1", Roles: []Role{RoleLB, RoleLB}}, `issue certificate: node "n1": role "lb" given twice`},
		{"role name asked for", ca, key.Public(), Identity{Name: "n1", Roles: []Role{RoleAgent}, DNSNames: []string{"Master.Node.Atoll"}}, `issue certificate: node "n1": DNS name "Master.Node.Atoll": names under node.atoll are the roles' and granted by the CA`},
		{"bad DNS name", ca, key.Public(), Identity{Name: "n1", Roles: []Role{RoleAgent}, DNSNames: []string{"a/b"}}, `issue certificate: node "n1": DNS name "a/b": only letters, digits, '-', '_' and '.' allowed`},
		{"bad IP", ca, key.Public(), Identity{Name: "n1", Roles: []Role{RoleAgent}, IPs: []net.IP{{1, 2, 3}}}, `issue certificate: node "n1": IP address ?010203 is not one`},
		{"too many addresses", ca, key.Public(), Identity{Name: "n1", Roles: []Role{RoleAgent}, DNSNames: strings.Split(strings.Repeat("x,", 33), ",")[:33]}, `issue certificate: node "n1": 33 addresses, at most 32`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.ca.Issue(tt.pub, tt.id, time.Now(), year)
			if errString(err) != tt.err {
				t.Fatalf("Issue: %q, want %q", errString(err), tt.err)
			}
		})
	}
}

func TestParseCSR(t *testing.T) {
	key, _ := NewKey()
	id := Identity{Name: "a1", Roles: []Role{RoleAgent}, IPs: []net.IP{net.ParseIP("10.1.2.3").To4()}, DNSNames: []string{"a1.example"}}
	csrPEM, err := NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	got, err := CSRIdentity(csr, []Role{RoleAgent})
	if err != nil || got.Name != "a1" || len(got.IPs) != 1 || !got.IPs[0].Equal(id.IPs[0]) || !reflect.DeepEqual(got.DNSNames, id.DNSNames) || !reflect.DeepEqual(got.Roles, id.Roles) {
		t.Fatalf("CSRIdentity = %+v, %v; want %+v", got, err, id)
	}

	tampered := append([]byte(nil), csrPEM...)
	block := strings.Index(string(tampered), "\n") + 60
	tampered[block] ^= 1
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, edKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		data []byte
		err  string
	}{
		{"empty", nil, "certificate request: no PEM data: want a CERTIFICATE REQUEST block"},
		{"certificate", newTestCA(t, "x").CertPEM(), `certificate request: PEM block "CERTIFICATE": want CERTIFICATE REQUEST`},
		{"ed25519", encodePEM(pemCSR, edDER), "certificate request: public key of type ed25519.PublicKey: want ECDSA on P-256"},
	} {
		if _, err := ParseCSR(tt.data); errString(err) != tt.err {
			t.Errorf("%s: ParseCSR: %q, want %q", tt.name, errString(err), tt.err)
		}
	}
	if _, err := ParseCSR(tampered); err == nil || !strings.HasPrefix(err.Error(), "certificate request: ") {
		t.Errorf("tampered request: ParseCSR: %v, want a certificate request error", err)
	}
}

// FuzzParseCSR: whatever request is accepted gives an identity that validates or a
// clear refusal, never a panic.
func FuzzParseCSR(f *testing.F) {
	key, _ := NewKey()
	csr, _ := NewCSR(key, Identity{Name: "n1", Roles: []Role{RoleAgent}, IPs: []net.IP{net.IPv4(10, 0, 0, 1).To4()}})
	f.Add(csr)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "certificate request: ") {
				t.Fatalf("ParseCSR error %q does not say what failed", err)
			}
			return
		}
		id, err := CSRIdentity(csr, []Role{RoleAgent})
		if err == nil {
			if err := id.Validate(); err != nil {
				t.Fatalf("CSRIdentity accepted %+v, which does not validate: %v", id, err)
			}
		}
	})
}

func TestParseRoles(t *testing.T) {
	tests := []struct {
		in   []string
		want []Role
		err  string
	}{
		{[]string{"master", "agent", "lb"}, []Role{RoleMaster, RoleAgent, RoleLB}, ""},
		{[]string{}, []Role{}, ""},
		{[]string{"agent", "agent"}, nil, `role "agent" given twice`},
		{[]string{"admin"}, nil, `role "admin": want master, agent or lb`},
	}
	for _, tt := range tests {
		got, err := ParseRoles(tt.in)
		if !reflect.DeepEqual(got, tt.want) || errString(err) != tt.err {
			t.Errorf("ParseRoles(%q) = %v, %q; want %v, %q", tt.in, got, errString(err), tt.want, tt.err)
		}
	}
}

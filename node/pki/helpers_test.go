package pki

import (
	"crypto/ecdsa"
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// year is a year, for certificates made in the past.
const year = 365 * 24 * time.Hour

// newTestCA makes a CA that became valid three years ago, so that tests can also issue
// certificates that expired already.
func newTestCA(t testing.TB, name string) *CA {
	t.Helper()
	ca, err := NewCA(name, time.Now().Add(-3*year))
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

// issue makes a key and a certificate for name with roles, issued at issued for validity.
func issue(t testing.TB, ca *CA, name string, roles []Role, issued time.Time, validity time.Duration) tls.Certificate {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{Name: name, Roles: roles, IPs: []net.IP{net.IPv4(127, 0, 0, 1).To4()}, DNSNames: []string{"localhost"}}
	cert, err := ca.Issue(key.Public(), id, issued, validity)
	if err != nil {
		t.Fatalf("Issue(%s): %v", name, err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// validCert is a certificate issued now for a year.
func validCert(t testing.TB, ca *CA, name string, roles ...Role) tls.Certificate {
	t.Helper()
	return issue(t, ca, name, roles, time.Now(), year)
}

// handshake runs a TLS handshake between the two configurations over an in-memory
// connection and returns each side's error: the server's from its handshake (or from
// writing a byte after it), the client's from its handshake or from reading that byte,
// where an alert the server sent after the client's part of the handshake shows.
func handshake(t testing.TB, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	clientConn, serverConn := net.Pipe()
	deadline := time.Now().Add(10 * time.Second)
	_ = clientConn.SetDeadline(deadline)
	_ = serverConn.SetDeadline(deadline)
	done := make(chan error, 1)
	go func() {
		srv := tls.Server(serverConn, server)
		err := srv.Handshake()
		if err == nil {
			_, err = srv.Write([]byte("x"))
		}
		// The raw connection: a TLS close_notify would wait for a reader on the pipe.
		serverConn.Close()
		done <- err
	}()
	cl := tls.Client(clientConn, client)
	err := cl.Handshake()
	if err == nil {
		var b [1]byte
		_, err = cl.Read(b[:])
	}
	clientConn.Close()
	return <-done, err
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// foreignKey is a test certificate's key.
func foreignKey(cert tls.Certificate) *ecdsa.PrivateKey { return cert.PrivateKey.(*ecdsa.PrivateKey) }

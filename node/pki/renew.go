package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// The renewal API, served by every master of a secure cluster on its API port, over TLS
// with the node's certificate as the client certificate and no API token:
//
//	POST /atoll/v1/renew  a RenewRequest; 200 with a RenewResponse, 403 with why not
//
// The master that is asked answers from its own replica: forwarding to the leader would
// lose the node's certificate. A certificate that expired no longer passes the TLS
// handshake, so such a node joins again with a join token.
const RenewPath = "/atoll/v1/renew"

// RenewRequest asks for a certificate of the identity of the one the node presents.
type RenewRequest struct {
	// CSR is the PEM certificate request for the node's new key: the name of the
	// certificate presented, and the addresses the new one is to hold.
	CSR string `json:"csr"`
}

// RenewResponse answers a granted RenewRequest.
type RenewResponse struct {
	// Certificate is the node's new PEM certificate.
	Certificate string `json:"certificate"`
}

// Renew renews the node's current certificate through the master at base
// (https://host:port), with client, which must present that certificate (ClientTLS): it
// makes a new key and takes the certificate the master signs for it only if it is of the
// cluster CA and holds the current one's name, roles and generation. The caller installs
// it (SetCert).
func Renew(ctx context.Context, client *http.Client, base string, creds *Credentials) (tls.Certificate, error) {
	current := IdentityOf(creds.CurrentCert().Leaf)
	key, err := NewKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	csr, err := NewCSR(key, current)
	if err != nil {
		return tls.Certificate{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultJoinTimeout)
	defer cancel()
	var answer RenewResponse
	if err := exchange(ctx, client, base, RenewPath, "renewal", "", RenewRequest{CSR: string(csr)}, &answer); err != nil {
		return tls.Certificate{}, err
	}
	cert, err := ParseCertificate([]byte(answer.Certificate))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("renewal through %s: %w", base, err)
	}
	if err := creds.CA.Verify(cert, time.Now()); err != nil {
		return tls.Certificate{}, fmt.Errorf("renewal through %s: %w", base, err)
	}
	if certKey, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !certKey.Equal(&key.PublicKey) {
		return tls.Certificate{}, fmt.Errorf("renewal through %s: the certificate is not for the new key", base)
	}
	if got := IdentityOf(cert); got.Name != current.Name || !slices.Equal(got.Roles, current.Roles) || got.Generation != current.Generation {
		return tls.Certificate{}, fmt.Errorf("renewal through %s: %s", base, identityChange(current, got))
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// identityChange says how a renewed certificate's identity differs from the renewed one's.
func identityChange(was, got Identity) string {
	return fmt.Sprintf("the new certificate is of %q with roles %s, generation %d; want %q with roles %s, generation %d",
		got.Name, roleList(got.Roles, "and"), got.Generation, was.Name, roleList(was.Roles, "and"), was.Generation)
}

package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// ServerConfig is the TLS configuration of a node's listener: TLS 1.3, presenting cert.
// With clientRoles, every client must present a certificate of the CA in pool holding
// one of those roles (mutual TLS, as between masters); without, a client certificate is
// optional, and verified against pool when one is presented (as on the master API, whose
// users authenticate with API tokens).
func ServerConfig(cert tls.Certificate, pool *x509.CertPool, clientRoles ...Role) *tls.Config {
	cfg := serverConfig(pool, clientRoles)
	cfg.Certificates = []tls.Certificate{cert}
	return cfg
}

// serverConfig is ServerConfig without a certificate.
func serverConfig(pool *x509.CertPool, clientRoles []Role) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientCAs:  pool,
		ClientAuth: tls.VerifyClientCertIfGiven,
		// Full-size records: the dynamic sizing meant for browsers cuts every write of a
		// connection's first megabyte (and again after a second idle, as event streams
		// often are) into records of about 1 KB, each its own write(2).
		DynamicRecordSizingDisabled: true,
	}
	if len(clientRoles) > 0 {
		roles := append([]Role(nil), clientRoles...)
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no client certificate")
			}
			return checkRoles(cs.PeerCertificates[0], roles)
		}
	}
	return cfg
}

// ClientConfig is the TLS configuration of a node's connections to other nodes: TLS 1.3,
// trusting the CA in pool alone, and requiring the server to hold serverRole: it is
// verified against serverRole's ServerName, whatever address was dialed. cert, when not
// nil, is presented to servers that ask for one.
func ClientConfig(cert *tls.Certificate, pool *x509.CertPool, serverRole Role) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		ServerName: serverRole.ServerName(),
		// Resuming a session skips the signatures and the certificate checks of a full
		// handshake: clients that open connections in bursts (a framework's concurrent
		// calls) pay for one full handshake, not one per connection.
		ClientSessionCache: tls.NewLRUClientSessionCache(0),
		// Full-size records, as the servers' (ServerTLS).
		DynamicRecordSizingDisabled: true,
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

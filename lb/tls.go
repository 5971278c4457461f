package lb

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"
)

// hstsHeader and hstsValue are what HAPROXY_{n}_USE_HSTS adds to HTTPS responses:
// marathon-lb's six months.
const (
	hstsHeader = "Strict-Transport-Security"
	hstsValue  = "max-age=15768000"
)

// loadPEMCert reads a PEM file holding a certificate chain and its private key, as
// marathon-lb's HAPROXY_{n}_SSL_CERT and HAProxy's "crt" took them.
func loadPEMCert(path string) (*tls.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &cert, nil
}

// selfSignedCert makes the certificate served when no default certificate is configured:
// clients that do not verify (or that pin it) still get TLS.
func selfSignedCert() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "Atoll load balancer (self-signed)"},
		// An hour back absorbs clock skew between the load balancer and its clients.
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.AddDate(1, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// loadCerts loads the certificates of the services with virtual hosts, once per file,
// and maps each virtual host to those of the first of its services (in routing order)
// that has any. A file that does not load is a Problem, and its virtual hosts fall back
// to the default certificate.
func (r *routes) loadCerts() {
	loaded := map[string]*tls.Certificate{}
	failed := map[string]bool{}
	byService := map[*service][]*tls.Certificate{}
	for _, svc := range r.services {
		if svc.def.Mode != ModeHTTP || len(svc.def.VHosts) == 0 {
			continue
		}
		for _, path := range svc.def.SSLCerts {
			cert, ok := loaded[path]
			if !ok && !failed[path] {
				var err error
				if cert, err = loadPEMCert(path); err != nil {
					failed[path] = true
					r.certProblems = append(r.certProblems, Problem{App: svc.def.AppID,
						Label: labelPrefix + strconv.Itoa(svc.def.PortIndex) + "_SSL_CERT",
						Why:   "certificate not loaded: " + err.Error() + "; " + strings.Join(svc.def.VHosts, ", ") + " served with the default certificate"})
					continue
				}
				loaded[path] = cert
			}
			if cert != nil {
				byService[svc] = append(byService[svc], cert)
			}
		}
	}
	for host, list := range r.vhosts {
		for _, svc := range list {
			if certs := byService[svc]; len(certs) > 0 {
				r.certs[host] = certs
				break
			}
		}
	}
}

// tlsConfig is the HTTPS listener's: certificates chosen by SNI from the current table.
func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// HTTP/1.1 only: TLS connections are served by the same HTTP/1.1 path as the
		// plain ports (http.go), and clients that offer h2 as well settle on HTTP/1.1.
		NextProtos:     []string{"http/1.1"},
		GetCertificate: s.certificate,
	}
}

// certificate picks the certificate for a handshake: the first of the virtual host's
// that suits the client, else its first, else the default.
func (s *Server) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs := s.routes.Load().certs[hostOnly(hello.ServerName)]
	for _, c := range certs {
		if hello.SupportsCertificate(c) == nil {
			return c, nil
		}
	}
	if len(certs) > 0 {
		return certs[0], nil
	}
	return s.defaultCert, nil
}

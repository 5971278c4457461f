package lb

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for host and its key into one PEM file in
// dir, as HAPROXY_{n}_SSL_CERT takes them, and returns the file's path.
func writeCert(t testing.TB, dir, host string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	path := filepath.Join(dir, host+".pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// peerCert makes a TLS handshake with sni and describes the certificate served:
// "CN [SANs]".
func peerCert(t testing.TB, addr net.Addr, sni string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr.String(), &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake with SNI %q: %v", sni, err)
	}
	defer c.Close()
	leaf := c.ConnectionState().PeerCertificates[0]
	return fmt.Sprintf("%s %v", leaf.Subject.CommonName, leaf.DNSNames)
}

// protoBackend answers "<name> <X-Forwarded-Proto>" and sends a Strict-Transport-Security
// of its own, which the load balancer replaces only where USE_HSTS asks.
func protoBackend(t testing.TB, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=1")
		fmt.Fprintf(w, "%s %s", name, r.Header.Get("X-Forwarded-Proto"))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// httpsClient sends requests with SNI sni and does not follow redirects.
func httpsClient(t testing.TB, sni string) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: sni, InsecureSkipVerify: true}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestHTTPSCertificates: the HTTPS port serves a virtual host's own certificate by SNI,
// the default one to any other name, and the default one for a virtual host whose
// certificate does not load, which is a problem naming the app and the label.
func TestHTTPSCertificates(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	s, _ := newTestServer(t, func(c *Config) { c.DefaultCert = writeCert(t, dir, "default.example") })
	web := svcDef("web", freePort(t), ModeHTTP, httpBackend(t, "web"))
	web.VHosts, web.SSLCerts = []string{"web.example", "www.example"}, []string{writeCert(t, dir, "web.example")}
	shop := svcDef("shop", freePort(t), ModeHTTP, httpBackend(t, "shop"))
	shop.VHosts, shop.SSLCerts = []string{"shop.example"}, []string{missing}
	plain := svcDef("plain", freePort(t), ModeHTTP, httpBackend(t, "plain"))
	plain.VHosts = []string{"plain.example"}
	swap(t, s, web, shop, plain)

	for _, tc := range []struct{ sni, want string }{
		{"web.example", "web.example [web.example]"},
		{"WWW.Example", "web.example [web.example]"},
		{"shop.example", "default.example [default.example]"},
		{"plain.example", "default.example [default.example]"},
		{"unknown.example", "default.example [default.example]"},
		{"", "default.example [default.example]"},
	} {
		if got := peerCert(t, s.HTTPSAddr(), tc.sni); got != tc.want {
			t.Errorf("SNI %q: served %q, want %q", tc.sni, got, tc.want)
		}
	}

	want := []Problem{{App: "/shop", Label: "HAPROXY_0_SSL_CERT",
		Why: "certificate not loaded: open " + missing + ": no such file or directory; shop.example served with the default certificate"}}
	if got := s.Problems(); !slices.Equal(got, want) {
		t.Errorf("problems %v, want %v", got, want)
	}

	// Requests over TLS route by virtual host, the fallback one included.
	base := "https://" + s.HTTPSAddr().String()
	for _, tc := range []struct{ host, path, body string }{
		{"web.example", "/tls", "web /tls 127.0.0.1 "},
		{"shop.example", "/cart", "shop /cart 127.0.0.1 "},
		{"plain.example", "/", "plain / 127.0.0.1 "},
	} {
		code, body, _ := get(t, httpsClient(t, tc.host), base+tc.path, map[string]string{"Host": tc.host})
		if code != 200 || body != tc.body {
			t.Errorf("GET https://%s%s = %d %q, want 200 %q", tc.host, tc.path, code, body, tc.body)
		}
	}

	// The next table without the broken certificate has no problem left.
	swap(t, s, web, plain)
	if got := s.Problems(); len(got) != 0 {
		t.Errorf("problems after the fix %v, want none", got)
	}
}

// TestRedirectAndHSTS: REDIRECT_TO_HTTPS answers plain HTTP with a 301 to the same host,
// path and query on the HTTPS port; USE_HSTS gives HTTPS responses marathon-lb's
// Strict-Transport-Security (only it); X-Forwarded-Proto says how the client connected.
func TestRedirectAndHSTS(t *testing.T) {
	s, _ := newTestServer(t)
	secure := svcDef("secure", freePort(t), ModeHTTP, protoBackend(t, "secure"))
	secure.VHosts, secure.RedirectToHTTPS, secure.UseHSTS = []string{"secure.example"}, true, true
	open := svcDef("open", freePort(t), ModeHTTP, protoBackend(t, "open"))
	open.VHosts = []string{"open.example"}
	swap(t, s, secure, open)

	httpsPort := fmt.Sprint(s.HTTPSAddr().(*net.TCPAddr).Port)
	plainURL, tlsURL := "http://"+s.HTTPAddr().String(), "https://"+s.HTTPSAddr().String()
	plainClient := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		name     string
		client   *http.Client
		url      string
		header   map[string]string
		code     int
		body     string
		location string
		hsts     []string
	}{
		{"redirect", plainClient, plainURL + "/a/b%20c?x=1&y=%2F", map[string]string{"Host": "secure.example"},
			301, "", "https://secure.example:" + httpsPort + "/a/b%20c?x=1&y=%2F", nil},
		{"redirect drops the HTTP port", plainClient, plainURL + "/", map[string]string{"Host": "Secure.Example:80"},
			301, "", "https://secure.example:" + httpsPort + "/", nil},
		{"no redirect without the label", plainClient, plainURL + "/", map[string]string{"Host": "open.example"},
			200, "open http", "", []string{"max-age=1"}},
		{"hsts over TLS", httpsClient(t, "secure.example"), tlsURL + "/", map[string]string{"Host": "secure.example"},
			200, "secure https", "", []string{"max-age=15768000"}},
		{"client's proto replaced", httpsClient(t, "secure.example"), tlsURL + "/", map[string]string{"Host": "secure.example", "X-Forwarded-Proto": "http"},
			200, "secure https", "", []string{"max-age=15768000"}},
		{"backend's header without the label", httpsClient(t, "open.example"), tlsURL + "/", map[string]string{"Host": "open.example"},
			200, "open https", "", []string{"max-age=1"}},
		{"unrouted over TLS", httpsClient(t, "other.example"), tlsURL + "/", map[string]string{"Host": "other.example"},
			503, "503 Service Unavailable: no service routes this request\n", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, header := get(t, tc.client, tc.url, tc.header)
			if code != tc.code || body != tc.body {
				t.Errorf("= %d %q, want %d %q", code, body, tc.code, tc.body)
			}
			if got := header.Get("Location"); got != tc.location {
				t.Errorf("Location %q, want %q", got, tc.location)
			}
			if got := header.Values("Strict-Transport-Security"); !slices.Equal(got, tc.hsts) {
				t.Errorf("Strict-Transport-Security %q, want %q", got, tc.hsts)
			}
		})
	}
}

// TestDefaultCertificate: without a configured default certificate a self-signed one is
// served; one that does not load stops the server from starting.
func TestDefaultCertificate(t *testing.T) {
	s, _ := newTestServer(t)
	if got, want := peerCert(t, s.HTTPSAddr(), "any.example"), "Atoll load balancer (self-signed) []"; got != want {
		t.Errorf("served %q, want %q", got, want)
	}

	dir := t.TempDir()
	notPEM := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Logger = testLogger(t)
	cfg.HTTPAddr, cfg.HTTPSAddr, cfg.AppIDAddr = "", "127.0.0.1:0", ""
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.pem"), "lb: default certificate: open " + filepath.Join(dir, "missing.pem") + ": no such file or directory"},
		{notPEM, "lb: default certificate: " + notPEM + ": tls: failed to find any PEM data in certificate input"},
	} {
		cfg.DefaultCert = tc.path
		s, err := NewServer(cfg)
		if err == nil {
			s.Close()
			t.Errorf("NewServer with %s: no error, want %q", tc.path, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("NewServer with %s: %q, want %q", tc.path, err, tc.want)
		}
	}
}

package pki

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// TestIdentityOf: a certificate gives back the identity it was issued for, generation
// included, without the roles' server names among its DNS names.
func TestIdentityOf(t *testing.T) {
	ca := newTestCA(t, "cluster")
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []Identity{
		{Name: "a1", Roles: []Role{RoleAgent}},
		{Name: "m1", Roles: []Role{RoleMaster, RoleAgent, RoleLB}, IPs: []net.IP{net.IPv4(10, 0, 0, 1).To4()}, DNSNames: []string{"m1.example.com", "localhost"}, Generation: 7},
	} {
		cert, err := ca.Issue(key.Public(), id, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if got := IdentityOf(cert); !reflect.DeepEqual(got, id) {
			t.Errorf("IdentityOf(certificate of %+v) = %+v", id, got)
		}
	}
}

func FuzzCertGeneration(f *testing.F) {
	for _, s := range []string{"", "0", "1", "18446744073709551615", "18446744073709551616", "-1", "x", " 2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, attr string) {
		gen := CertGeneration(&x509.Certificate{Subject: pkix.Name{SerialNumber: attr}})
		if want, err := strconv.ParseUint(attr, 10, 64); err == nil && gen != want || err != nil && gen != 0 {
			t.Fatalf("CertGeneration(%q) = %d", attr, gen)
		}
		if back := CertGeneration(&x509.Certificate{Subject: pkix.Name{SerialNumber: generationAttr(gen)}}); back != gen {
			t.Fatalf("generation %d written and read back as %d", gen, back)
		}
	})
}

// TestRenewAt: a certificate is renewed once two thirds of its lifetime, counted from
// its issue (NotBefore is backdated by clockSkew), have passed.
func TestRenewAt(t *testing.T) {
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name                string
		notBefore, notAfter time.Time
		want                time.Time
	}{
		{"a year", issued.Add(-clockSkew), issued.Add(year), issued.Add(year * 2 / 3)},
		{"six seconds", issued.Add(-clockSkew), issued.Add(6 * time.Second), issued.Add(4 * time.Second)},
		{"shorter than the skew", issued, issued.Add(3 * time.Minute), issued.Add(2 * time.Minute)},
	} {
		if got := RenewAt(&x509.Certificate{NotBefore: tt.notBefore, NotAfter: tt.notAfter}); !got.Equal(tt.want) {
			t.Errorf("%s: RenewAt = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestCredentialsReplaced: the TLS configurations made before a certificate was
// replaced present the new one from their next handshake, both ways; Save writes the
// current certificate and gossip key.
func TestCredentialsReplaced(t *testing.T) {
	creds, err := NewCluster("prod", Identity{Name: "m1", Roles: []Role{RoleMaster}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	server, client := creds.ServerTLS(RoleMaster), creds.ClientTLS(RoleMaster)
	// Full handshakes: a resumed one carries the certificates of the first.
	client.ClientSessionCache = nil
	// What each side saw of the other.
	var seenByServer, seenByClient *x509.Certificate
	configFor := server.GetConfigForClient
	server.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		cfg, err := configFor(hello)
		if err != nil {
			return nil, err
		}
		cfg = cfg.Clone()
		check := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			seenByServer = cs.PeerCertificates[0]
			return check(cs)
		}
		return cfg, nil
	}
	client.VerifyConnection = func(cs tls.ConnectionState) error {
		seenByClient = cs.PeerCertificates[0]
		return nil
	}
	for i := range 2 {
		want := creds.CurrentCert().Leaf
		if serverErr, clientErr := handshake(t, server, client); serverErr != nil || clientErr != nil {
			t.Fatalf("handshake %d: server %v, client %v", i, serverErr, clientErr)
		}
		if seenByServer.SerialNumber.Cmp(want.SerialNumber) != 0 || seenByClient.SerialNumber.Cmp(want.SerialNumber) != 0 {
			t.Fatalf("handshake %d: the server saw serial %v, the client %v; want the current %v", i, seenByServer.SerialNumber, seenByClient.SerialNumber, want.SerialNumber)
		}
		renewed, err := creds.IssueOwn(IdentityOf(want), time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		creds.SetCert(renewed)
	}

	newKey, err := NewGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	creds.SetGossipKey(newKey)
	dir := filepath.Join(t.TempDir(), "pki")
	if err := creds.Save(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(loaded.Cert.Leaf.Raw, creds.CurrentCert().Leaf.Raw) || bytes.Equal(loaded.Cert.Leaf.Raw, creds.Cert.Leaf.Raw) ||
		!bytes.Equal(loaded.GossipKey, newKey) || bytes.Equal(creds.GossipKey, newKey) {
		t.Fatal("saved credentials: want the current certificate and gossip key, not the first ones")
	}
}

// renewServer is a master's TLS server that answers renewals with answer, given the
// request's certificate request and the certificate presented.
func renewServer(t testing.TB, master tls.Certificate, ca *CA, answer func(csr *x509.CertificateRequest, presented *x509.Certificate) (int, string)) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+RenewPath, func(w http.ResponseWriter, r *http.Request) {
		var req RenewRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		csr, err := ParseCSR([]byte(req.CSR))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		status, body := answer(csr, r.TLS.PeerCertificates[0])
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = ServerConfig(master, ca.Pool())
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestRenewChecksAnswer: Renew takes a certificate only when it is of the cluster CA, for
// the key it made, with the renewed certificate's name, roles and generation; and says
// who refused when a master refuses.
func TestRenewChecksAnswer(t *testing.T) {
	ca := newTestCA(t, "cluster")
	mitm := newTestCA(t, "mitm")
	master := validCert(t, ca, "m1", RoleMaster)
	node := validCert(t, ca, "a1", RoleAgent)
	creds := &Credentials{CA: ca, Cert: node}
	otherKey, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	signed := func(signer *CA, pub any, change func(*Identity)) func(*x509.CertificateRequest, *x509.Certificate) (int, string) {
		return func(csr *x509.CertificateRequest, presented *x509.Certificate) (int, string) {
			id := IdentityOf(presented)
			change(&id)
			if pub == nil {
				pub = csr.PublicKey
			}
			cert, err := signer.Issue(pub, id, time.Now(), time.Hour)
			if err != nil {
				return http.StatusInternalServerError, err.Error()
			}
			answer, _ := json.Marshal(RenewResponse{Certificate: string(CertPEM(cert))})
			return http.StatusOK, string(answer)
		}
	}
	same := func(*Identity) {}
	tests := []struct {
		name   string
		answer func(*x509.CertificateRequest, *x509.Certificate) (int, string)
		err    string
	}{
		{"renewed", signed(ca, nil, same), ""},
		{"for another key", signed(ca, otherKey.Public(), same), "the certificate is not for the new key"},
		{"of another name", signed(ca, nil, func(id *Identity) { id.Name = "a2" }),
			`the new certificate is of "a2" with roles agent, generation 0; want "a1" with roles agent, generation 0`},
		{"with another role", signed(ca, nil, func(id *Identity) { id.Roles = []Role{RoleMaster} }),
			`the new certificate is of "a1" with roles master, generation 0; want "a1" with roles agent, generation 0`},
		{"of another generation", signed(ca, nil, func(id *Identity) { id.Generation = 3 }),
			`the new certificate is of "a1" with roles agent, generation 3; want "a1" with roles agent, generation 0`},
		{"of another CA", signed(mitm, nil, same), `certificate of "a1": x509: certificate signed by unknown authority`},
		{"refused", func(*x509.CertificateRequest, *x509.Certificate) (int, string) {
			return http.StatusForbidden, "revoked\n"
		}, "refused"},
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: creds.ClientTLS(RoleMaster)}}
	t.Cleanup(client.CloseIdleConnections)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := renewServer(t, master, ca, tt.answer)
			cert, err := Renew(context.Background(), client, url, creds)
			want := ""
			switch tt.err {
			case "":
			case "refused":
				want = "renewal refused by " + url + ": 403 revoked"
			default:
				want = "renewal through " + url + ": " + tt.err
			}
			if errString(err) != want {
				t.Fatalf("Renew: %q\nwant %q", errString(err), want)
			}
			if err == nil && (cert.Leaf.Subject.CommonName != "a1" || cert.PrivateKey == nil) {
				t.Fatalf("renewed certificate of %q, key %v", cert.Leaf.Subject.CommonName, cert.PrivateKey != nil)
			}
			var refused *RefusedError
			if tt.err == "refused" && (!errors.As(err, &refused) || refused.Op != "renewal" || refused.Status != http.StatusForbidden) {
				t.Fatalf("Renew: %v, want a RefusedError of the renewal", err)
			}
		})
	}
}

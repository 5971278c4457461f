package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

// TestMutualTLS: between nodes, each side accepts only certificates of the cluster CA,
// valid now and holding the role it wants; the other side hears why it was refused.
func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t, "cluster")
	mitm := newTestCA(t, "mitm")
	master1 := validCert(t, ca, "m1", RoleMaster)
	master2 := validCert(t, ca, "m2", RoleMaster)
	agent := validCert(t, ca, "a1", RoleAgent, RoleLB)
	expired := issue(t, ca, "m3", []Role{RoleMaster}, time.Now().Add(-2*year), year)
	foreignMaster := validCert(t, mitm, "m1", RoleMaster)

	masterOnly := ServerConfig(master1, ca.Pool(), RoleMaster)
	optional := ServerConfig(master1, ca.Pool())
	tests := []struct {
		name      string
		server    *tls.Config
		client    *tls.Config
		serverErr string
		clientErr string
	}{
		{"masters", masterOnly, ClientConfig(&master2, ca.Pool(), RoleMaster), "", ""},
		{"agent dials a master-only server", masterOnly, ClientConfig(&agent, ca.Pool(), RoleMaster),
			`certificate of "a1" holds agent and lb, want master`, "remote error: tls: bad certificate"},
		{"expired client certificate", masterOnly, ClientConfig(&expired, ca.Pool(), RoleMaster),
			"expired", "remote error: tls: expired certificate"},
		{"client certificate of another CA", masterOnly, presenting(foreignMaster, ca.Pool()),
			"unknown authority", "remote error: tls: unknown certificate authority"},
		{"no client certificate", masterOnly, ClientConfig(nil, ca.Pool(), RoleMaster),
			"tls: client didn't provide a certificate", "remote error: tls: certificate required"},
		{"server of another CA", ServerConfig(foreignMaster, mitm.Pool()), ClientConfig(&master2, ca.Pool(), RoleMaster),
			"remote error: tls: bad certificate", "unknown authority"},
		{"server without the role", ServerConfig(agent, ca.Pool()), ClientConfig(&master2, ca.Pool(), RoleMaster),
			"remote error: tls: bad certificate", "tls: failed to verify certificate: x509: certificate is valid for agent.node.atoll, lb.node.atoll, localhost, not master.node.atoll"},
		{"expired server certificate", ServerConfig(expired, ca.Pool()), ClientConfig(nil, ca.Pool(), RoleMaster),
			"remote error: tls: bad certificate", "expired"},
		{"optional client certificate, none", optional, ClientConfig(nil, ca.Pool(), RoleMaster), "", ""},
		{"optional client certificate, an agent's", optional, ClientConfig(&agent, ca.Pool(), RoleMaster), "", ""},
		{"optional client certificate of another CA", optional, presenting(foreignMaster, ca.Pool()),
			"unknown authority", "remote error: tls: unknown certificate authority"},
		{"TLS 1.2 client", masterOnly, &tls.Config{MaxVersion: tls.VersionTLS12, RootCAs: ca.Pool(), ServerName: RoleMaster.ServerName(), Certificates: []tls.Certificate{master2}},
			"tls: client offered only unsupported versions: [303]", "remote error: tls: protocol version not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverErr, clientErr := handshake(t, tt.server, tt.client)
			if !matches(serverErr, tt.serverErr) || !matches(clientErr, tt.clientErr) {
				t.Fatalf("server: %v\nclient: %v\nwant server %q, client %q", serverErr, clientErr, tt.serverErr, tt.clientErr)
			}
		})
	}
}

// presenting is a master client that presents cert whatever CAs the server names (Go's
// client would otherwise present none not issued by them): what an impostor does.
func presenting(cert tls.Certificate, pool *x509.CertPool) *tls.Config {
	cfg := ClientConfig(nil, pool, RoleMaster)
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return cfg
}

// matches says whether err is as wanted: nil for "", else an error of the x509 kind
// named ("expired", "unknown authority") or with exactly that message.
func matches(err error, want string) bool {
	var invalid x509.CertificateInvalidError
	switch {
	case want == "":
		return err == nil
	case want == "expired":
		return errors.As(err, &invalid) && invalid.Reason == x509.Expired
	case want == "unknown authority":
		return errors.As(err, &x509.UnknownAuthorityError{})
	}
	return errString(err) == want
}

// TestMutualTLSRoleError: the server's refusal of a certificate without the role is a
// RoleError naming the holder, its roles and the roles wanted.
func TestMutualTLSRoleError(t *testing.T) {
	ca := newTestCA(t, "cluster")
	lb := validCert(t, ca, "lb1", RoleLB)
	serverErr, _ := handshake(t, ServerConfig(validCert(t, ca, "m1", RoleMaster), ca.Pool(), RoleMaster, RoleAgent), ClientConfig(&lb, ca.Pool(), RoleMaster))
	var roleErr *RoleError
	if !errors.As(serverErr, &roleErr) || roleErr.Name != "lb1" || len(roleErr.Held) != 1 || roleErr.Held[0] != RoleLB || roleErr.Error() != `certificate of "lb1" holds lb, want master or agent` {
		t.Fatalf("server error %v, want a RoleError for lb1", serverErr)
	}
}

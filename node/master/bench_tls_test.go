package master_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/pki"
)

// BenchmarkLaunchesSimulatedTLS is BenchmarkLaunchesSimulated with API tokens on, as a
// secure cluster runs, without and with TLS: with tls=true the framework calls the
// master's API over TLS 1.3 with the master's certificate of a cluster CA, and the
// agents' calls reach it over TLS too. The simulated agents speak plain HTTP, so in
// both runs they go through a loopback proxy, which forwards over TLS or not: the runs
// differ by TLS alone.
//
// The framework acknowledges each update in a call of its own, hundreds at once: its
// client and the proxy open at most maxConns connections to the master and queue the
// other calls. Without that bound (api.Client's default transport) every call beyond
// the idle connections dials, and over TLS pays a full handshake: thousands at once,
// some slower than the transport's 10 s handshake timeout on a loaded machine.
//
//	go test -run XXX -bench LaunchesSimulated -benchtime 10000x ./node/master
func BenchmarkLaunchesSimulatedTLS(b *testing.B) {
	for _, secure := range []bool{false, true} {
		b.Run(fmt.Sprint("tls=", secure), func(b *testing.B) { benchmarkSimulatedLaunchesTLS(b, secure) })
	}
}

// maxConns bounds the connections of each of the benchmark's clients to the master.
const maxConns = 64

func benchmarkSimulatedLaunchesTLS(b *testing.B, secure bool) {
	ts, clientOpts, agentToken := benchMaster(b, authOn)
	target := ts.URL
	var clientTLS *tls.Config
	if secure {
		creds, err := pki.NewCluster("bench", pki.Identity{Name: "m1", Roles: []pki.Role{pki.RoleMaster}, IPs: []net.IP{net.IPv4(127, 0, 0, 1).To4()}}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(ts.Handler())
		srv.TLS = creds.ServerTLS()
		// Connections cut when the benchmark ends are no news.
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.StartTLS()
		b.Cleanup(srv.Close)
		target = srv.URL
		clientTLS = creds.ClientTLS(pki.RoleMaster)
	}
	// The framework's and the proxy's connections, kept as api.Client's default
	// transport keeps them.
	transport := func() *http.Transport {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		t.MaxConnsPerHost = maxConns
		t.TLSClientConfig = clientTLS
		return t
	}
	clientOpts = append(clientOpts, api.WithHTTPClient(&http.Client{Transport: transport()}))
	agentURL := forwardingProxy(b, target, agentToken, transport())
	for i := range 10 {
		master.StartSimulatedAgent(b, agentURL, fmt.Sprintf("sim-%d", i), []api.Resource{
			{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 10000}},
			{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 1 << 22}},
		})
	}
	info := frameworkInfo("bench")
	info.Principal = "bench"
	f := subscribe(b, target, info, clientOpts...)
	driveSimulatedLaunches(b, f)
}

// forwardingProxy serves a reverse proxy to target over transport (nil: Go's default)
// that adds token to every request ("" adds none), and returns its URL.
func forwardingProxy(b *testing.B, target, token string, transport http.RoundTripper) string {
	b.Helper()
	u, err := url.Parse(target)
	if err != nil {
		b.Fatal(err)
	}
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			if token != "" {
				pr.Out.Header.Set("Authorization", "Bearer "+token)
			}
		},
		Transport:     transport,
		FlushInterval: -1,
		// Streams cut when the benchmark ends are no news.
		ErrorLog: log.New(io.Discard, "", 0),
	})
	b.Cleanup(proxy.Close)
	return proxy.URL
}

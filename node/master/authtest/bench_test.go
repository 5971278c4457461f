package authtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/pki"
)

// BenchmarkMarathonAPI measures the Marathon API's throughput without and with API
// tokens, from 16 concurrent clients: reads of every app with its tasks (GET
// /v2/apps?embed=apps.tasks, 20 apps of 2 running instances each) and writes (POST
// /v2/apps of an app of no instances: one Raft entry each, and an audit line with
// tokens). Logs are formatted and thrown away, as production pays for them.
//
//	go test -run XXX -bench MarathonAPI -benchtime 5s ./node/master/authtest
func BenchmarkMarathonAPI(b *testing.B) {
	for _, op := range []string{"read", "write"} {
		for _, auth := range []bool{false, true} {
			name := "op=" + op + "/auth=off"
			if auth {
				name = "op=" + op + "/auth=on"
			}
			b.Run(name, func(b *testing.B) { benchmarkMarathon(b, op, auth, false) })
		}
	}
}

// BenchmarkMarathonAPITLS is BenchmarkMarathonAPI with API tokens on, as a secure
// cluster runs, without and with TLS: with tls=true the clients reach the master's API
// over TLS 1.3 with a master certificate of a cluster CA, as they reach a secure master.
//
//	go test -run XXX -bench MarathonAPITLS -benchtime 5s ./node/master/authtest
func BenchmarkMarathonAPITLS(b *testing.B) {
	for _, op := range []string{"read", "write"} {
		for _, secure := range []bool{false, true} {
			b.Run(fmt.Sprintf("op=%s/tls=%t", op, secure), func(b *testing.B) { benchmarkMarathon(b, op, true, secure) })
		}
	}
}

func benchmarkMarathon(b *testing.B, op string, auth, secure bool) {
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	admins := make(chan string, 1)
	ts := master.NewTestServer(b, func(c *master.Config) {
		c.Logger = logger
		c.Auth = master.AuthConfig{Enabled: auth, AdminToken: func(token string) { admins <- token }}
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			services.Attach(m, services.Config{Logger: logger, TickInterval: 100 * time.Millisecond})
		})
	})
	var operatorToken, agentToken string
	if auth {
		admin := api.NewClient(ts.URL, api.WithToken(<-admins))
		operatorToken = createToken(b, admin, api.CreateTokenRequest{Role: api.RoleOperator, Principal: "bench"}).Token
		agentToken = createToken(b, admin, api.CreateTokenRequest{Role: api.RoleAgent, Principal: "sim"}).Token
	}
	master.StartSimulatedAgentWithToken(b, ts.URL, agentToken, "sim-0", []api.Resource{
		{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 64}},
		{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 65536}},
		{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31000, End: 32000}}}},
	})
	url, transport := ts.URL, &http.Transport{MaxIdleConnsPerHost: 64}
	if secure {
		url, transport.TLSClientConfig = serveTLS(b, ts.Handler())
	}
	client := &http.Client{Transport: transport}
	apps := marathon.NewClient(url, marathon.WithToken(operatorToken), marathon.WithHTTPClient(client))
	ctx := context.Background()
	for i := range 20 {
		if _, err := apps.CreateApp(ctx, fmt.Appendf(nil, `{"id":"/bench/app-%d","cmd":"sleep 600","cpus":0.1,"mem":16,"instances":2}`, i), false); err != nil {
			b.Fatal(err)
		}
	}
	eventually(b, "40 instances running", func() error {
		list, err := apps.ListApps(ctx)
		if err != nil {
			return err
		}
		running := 0
		for _, app := range list {
			if app.Value.TasksRunning != nil {
				running += *app.Value.TasksRunning
			}
		}
		if running != 40 {
			return fmt.Errorf("%d running", running)
		}
		return nil
	})
	var next atomic.Int64
	request := func() (*http.Request, error) {
		if op == "read" {
			return http.NewRequest(http.MethodGet, url+"/v2/apps?embed=apps.tasks", nil)
		}
		body := fmt.Sprintf(`{"id":"/written/app-%d","cmd":"sleep 600","cpus":0.1,"mem":16,"instances":0,"portDefinitions":[]}`, next.Add(1))
		req, err := http.NewRequest(http.MethodPost, url+"/v2/apps", strings.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	}
	want := http.StatusOK
	if op == "write" {
		want = http.StatusCreated
	}
	b.SetParallelism(8) // 16 clients on two cores
	b.ResetTimer()
	start, startCPU := time.Now(), processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := request()
			if err != nil {
				b.Error(err)
				return
			}
			if operatorToken != "" {
				req.Header.Set("Authorization", "Bearer "+operatorToken)
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				b.Errorf("%s %s: %s %s", req.Method, req.URL.Path, resp.Status, answer)
				return
			}
		}
	})
	elapsed, cpu := time.Since(start), processCPU(b)-startCPU
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
}

// serveTLS serves h over TLS with a master certificate of a new cluster CA, as a secure
// master serves its API, and returns its URL and the TLS configuration of a client that
// trusts that CA.
func serveTLS(b *testing.B, h http.Handler) (string, *tls.Config) {
	b.Helper()
	creds, err := pki.NewCluster("bench", pki.Identity{Name: "m1", Roles: []pki.Role{pki.RoleMaster}, IPs: []net.IP{net.IPv4(127, 0, 0, 1).To4()}}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = creds.ServerTLS()
	// Connections cut when the benchmark ends are no news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	b.Cleanup(srv.Close)
	return srv.URL, creds.ClientTLS(pki.RoleMaster)
}

// processCPU is the CPU time this process has used, the master and its clients together:
// a measure less at the mercy of other load on the machine than throughput.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

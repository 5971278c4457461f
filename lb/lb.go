// Package lb is Atoll's load balancer role: it builds a routing table from Marathon apps,
// their tasks and their marathon-lb HAPROXY_* labels (BuildTable), proxies TCP service
// ports and HTTP virtual hosts to the healthy tasks (Server, swapped to a new table without
// dropping a connection), serves marathon-lb's admin endpoints and Prometheus metrics
// (Server.AdminHandler), terminates TLS for the virtual hosts with certificates chosen by
// SNI, and keeps the table fresh from a master's /v2/apps and /v2/events
// (Watcher).
package lb

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Server.
type Config struct {
	// Logger receives the load balancer's logs.
	Logger *slog.Logger
	// Registerer receives the load balancer's metrics; nil registers none.
	Registerer prometheus.Registerer
	// HTTPAddr serves the virtual hosts (HAPROXY_{n}_VHOST); "" serves none.
	HTTPAddr string
	// HTTPSAddr serves the virtual hosts over TLS; "" serves none.
	HTTPSAddr string
	// DefaultCert is a PEM file holding the certificate chain and private key served on
	// HTTPSAddr to clients whose SNI names no virtual host with its own certificate
	// (HAPROXY_{n}_SSL_CERT); "" generates a self-signed one at start.
	DefaultCert string
	// AppIDAddr routes HTTP by the X-Marathon-App-Id header; "" serves none.
	AppIDAddr string
	// BindAddr is the address service ports are bound on when their app names none
	// (HAPROXY_{n}_BIND_ADDR); "" binds every address.
	BindAddr string
	// DialTimeout bounds a connection attempt to a backend.
	DialTimeout time.Duration
	// EjectFor is how long a backend that refused a connection gets no new ones.
	EjectFor time.Duration
	// Attempts is how many backends a connection or request tries before it fails.
	Attempts int
	// QueueTimeout is how long an HTTP request that found every backend refusing waits
	// for a newer table with a backend that answers.
	QueueTimeout time.Duration
	// MaxIdlePerBackend bounds the idle keep-alive connections kept to each backend.
	MaxIdlePerBackend int
	// MaxRequestsPerBackendConn is how many requests a keep-alive connection to a
	// backend carries before it is closed, and the next request opens a new one; 0
	// carries any number.
	MaxRequestsPerBackendConn int
	// IdleTimeout closes client and backend keep-alive connections idle this long.
	IdleTimeout time.Duration
	// HeaderTimeout bounds the time from a request's first byte to the end of its head,
	// and a TLS handshake.
	HeaderTimeout time.Duration
	// ClientTimeout ends a client connection silent this long while it sends a request
	// body or should be reading a response.
	ClientTimeout time.Duration
	// ServerTimeout answers 504 (or ends the response) when a backend is silent this long
	// while the proxy waits for its response.
	ServerTimeout time.Duration
	// Loops is how many event loops serve the service ports, as HAProxy's nbthread; 0
	// runs one per processor the Go runtime uses (GOMAXPROCS).
	Loops int
}

// DefaultConfig is the production preset: marathon-lb's ports.
func DefaultConfig() Config {
	return Config{
		Logger:   slog.Default(),
		HTTPAddr: ":80",
		// marathon-lb's HTTPS frontend.
		HTTPSAddr: ":443",
		// marathon-lb's port for routing by app id.
		AppIDAddr: ":9091",
		// Backends are on the same network: a backend that does not answer a SYN in a
		// second is as good as down, and another one is tried.
		DialTimeout: time.Second,
		// HAProxy marked a server down for a few check intervals (2 s each by default).
		EjectFor: 5 * time.Second,
		// The first choice and two more, as HAProxy's "retries 3" with redispatch.
		Attempts: 3,
		// A task killed just before the table learned of it: its replacement is usually in
		// the next table, tens of milliseconds later.
		QueueTimeout: 2 * time.Second,
		// Enough idle connections for a busy backend without one connect per request.
		MaxIdlePerBackend: 256,
		// nginx's for its own keep-alive connections to upstreams (keepalive_requests). A
		// backend's port is often served by several worker processes (nginx's, gunicorn's,
		// a Node cluster's), each with the connections it happened to accept, and the
		// pool keeps using the ones that answered last: in scripts/bench/lb.sh one of
		// nginx's two workers did 81-90 % of nginx's work in some runs, for the whole
		// run, and the latency tail grew past HAProxy's. A new connection goes to a
		// worker waiting for one, so renewing them spreads the work again (50-52 %), at
		// one connect per thousand requests.
		MaxRequestsPerBackendConn: 1000,
		// HAProxy's "timeout http-keep-alive" in marathon-lb's template was 1 s for clients;
		// a minute keeps benchmark and real keep-alive clients on one connection.
		IdleTimeout: 60 * time.Second,
		// net/http's usual ReadHeaderTimeout: a slow-loris client holds a connection no
		// longer than this.
		HeaderTimeout: 10 * time.Second,
		// marathon-lb's HAProxy "timeout client" and "timeout server".
		ClientTimeout: 30 * time.Second,
		ServerTimeout: 30 * time.Second,
	}
}

// DevConfig is the preset for `atoll up`: ports a non-root user can bind.
func DevConfig() Config {
	c := DefaultConfig()
	c.HTTPAddr = ":8081"
	c.HTTPSAddr = ":8443"
	return c
}

// Validate reports a config the Server cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.Logger == nil {
		errs = append(errs, errors.New("lb: Logger is nil"))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("lb: DialTimeout %v is not positive", c.DialTimeout))
	}
	if c.EjectFor < 0 {
		errs = append(errs, fmt.Errorf("lb: EjectFor %v is negative", c.EjectFor))
	}
	if c.Attempts < 1 {
		errs = append(errs, fmt.Errorf("lb: Attempts %d is less than 1", c.Attempts))
	}
	if c.QueueTimeout < 0 {
		errs = append(errs, fmt.Errorf("lb: QueueTimeout %v is negative", c.QueueTimeout))
	}
	if c.Loops < 0 {
		errs = append(errs, fmt.Errorf("lb: Loops %d is negative", c.Loops))
	}
	if c.MaxIdlePerBackend < 0 {
		errs = append(errs, fmt.Errorf("lb: MaxIdlePerBackend %d is negative", c.MaxIdlePerBackend))
	}
	if c.MaxRequestsPerBackendConn < 0 {
		errs = append(errs, fmt.Errorf("lb: MaxRequestsPerBackendConn %d is negative", c.MaxRequestsPerBackendConn))
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{{"IdleTimeout", c.IdleTimeout}, {"HeaderTimeout", c.HeaderTimeout}, {"ClientTimeout", c.ClientTimeout}, {"ServerTimeout", c.ServerTimeout}} {
		if d.value <= 0 {
			errs = append(errs, fmt.Errorf("lb: %s %v is not positive", d.name, d.value))
		}
	}
	return errors.Join(errs...)
}

package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll/atoll/lb"
	"github.com/atoll/atoll/lb/vrrp"
	"github.com/atoll/atoll/node/pki"
)

// lbRole is the load balancer role: the proxy, its admin server, and the watcher that
// keeps its table from the masters' Marathon API.
type lbRole struct {
	cfg     Config
	server  *lb.Server
	admin   *http.Server
	adminLn net.Listener
	// apiURL is this node's own master API, empty when it runs no master: then the
	// masters come from gossip.
	apiURL  string
	members *Membership
	// creds are a secure node's: the watcher calls the masters over mutual TLS with the
	// node's API token. nil without security.
	creds *pki.Credentials
}

// listenAddr is host:port for a port flag; -1 means no listener.
func listenAddr(host string, port int) string {
	if port < 0 {
		return ""
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// startLB opens the load balancer's listeners.
func startLB(cfg Config, apiURL string, members *Membership, registry *prometheus.Registry, creds *pki.Credentials) (*lbRole, error) {
	lc := lb.DefaultConfig()
	lc.Logger = cfg.Logger.With("component", "lb")
	lc.Registerer = registry
	lc.HTTPAddr = listenAddr(cfg.BindAddr, cfg.LBHTTPPort)
	lc.AppIDAddr = listenAddr(cfg.BindAddr, cfg.LBAppIDPort)
	lc.HTTPSAddr = listenAddr(cfg.BindAddr, cfg.LBHTTPSPort)
	lc.DefaultCert = cfg.LBDefaultCert
	lc.BindAddr = cfg.BindAddr
	server, err := lb.NewServer(lc)
	if err != nil {
		return nil, fmt.Errorf("lb: %w (choose other ports with --lb-http-port, --lb-https-port and --lb-app-id-port)", err)
	}
	r := &lbRole{cfg: cfg, server: server, apiURL: apiURL, members: members, creds: creds}
	if addr := listenAddr(cfg.BindAddr, cfg.LBAdminPort); addr != "" {
		if r.adminLn, err = net.Listen("tcp", addr); err != nil {
			server.Close()
			return nil, fmt.Errorf("lb admin listener: %w (choose another port with --lb-admin-port)", err)
		}
		r.admin = &http.Server{Handler: server.AdminHandler(registry), ReadHeaderTimeout: 10 * time.Second}
	}
	return r, nil
}

func (r *lbRole) httpAddr() string {
	if addr := r.server.HTTPAddr(); addr != nil {
		return addr.String()
	}
	return ""
}

func (r *lbRole) adminAddr() string {
	if r.adminLn != nil {
		return r.adminLn.Addr().String()
	}
	return ""
}

// run serves the admin endpoints and follows the masters until ctx ends.
func (r *lbRole) run(ctx context.Context) error {
	if r.admin != nil {
		go func() {
			if err := r.admin.Serve(r.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.cfg.Logger.Warn("lb admin server stopped", "err", err)
			}
		}()
	}
	var router *vrrp.Router
	if len(r.cfg.VIPs) > 0 {
		var err error
		if router, err = r.vrrpRouter(); err != nil {
			return err
		}
	}
	masters := []string{r.apiURL}
	if r.apiURL == "" {
		// A load balancer of its own finds the masters through gossip.
		for {
			if masters = r.members.MasterAPIs(); len(masters) > 0 {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	wc := lb.DefaultWatcherConfig()
	wc.Logger = r.cfg.Logger.With("component", "lb-watcher")
	wc.Masters = masters
	wc.Group = r.cfg.LBGroup
	if r.creds != nil {
		wc.Client = mastersClient(r.creds)
		wc.Token = r.creds.APIToken
	}
	w, err := lb.NewWatcher(wc, r.server.Swap)
	if err != nil {
		return err
	}
	if router != nil {
		// The VIP is claimed only once there is a table to serve it with: a node that
		// preempted with an empty table would answer 503 until its first one.
		go func() {
			for w.Tables() == 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
			if err := router.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				r.cfg.Logger.Error("vrrp stopped", "err", err)
			}
		}()
	}
	return w.Run(ctx)
}

// vrrpRouter is the VRRP instance holding the node's VIPs.
func (r *lbRole) vrrpRouter() (*vrrp.Router, error) {
	vc := vrrp.DefaultConfig()
	vc.Interface = r.cfg.VRRPInterface
	vc.VRID, vc.Priority = uint8(r.cfg.VRID), uint8(r.cfg.VRRPPriority)
	vc.AdvertInterval = r.cfg.AdvertInterval
	vc.Logger = r.cfg.Logger.With("component", "vrrp")
	for _, v := range r.cfg.VIPs {
		prefix, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("--vip %q: %w (want an address with its prefix length, like 198.18.1.10/24)", v, err)
		}
		vc.VIPs = append(vc.VIPs, prefix)
	}
	router, err := vrrp.New(vc)
	if err != nil {
		return nil, fmt.Errorf("vrrp: %w", err)
	}
	return router, nil
}

// close stops the proxy and the admin server.
func (r *lbRole) close() {
	if r.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.admin.Shutdown(ctx)
	}
	_ = r.server.Close()
}

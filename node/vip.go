package node

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll/atoll/dns"
	"github.com/atoll/atoll/lb/vipproxy"
)

// runVIPProxy balances the cluster's named VIPs on a node running an agent or a load
// balancer (as DC/OS balanced them on every agent), following the VIP table of the node's
// DNS server until ctx ends. When it cannot run — no root, no DNS server to follow — it
// says why once and the node runs on without it. Its metrics go to registry.
func runVIPProxy(ctx context.Context, cfg Config, dnsSrv *dns.Server, registry prometheus.Registerer, log *slog.Logger, wg *sync.WaitGroup) {
	if !cfg.VIPProxy || !cfg.Agent && !cfg.LB {
		return
	}
	if dnsSrv == nil {
		log.Warn("VIPs are not balanced on this node: the balancer follows the cluster through the node's DNS server, which --dns-port -1 turns off")
		return
	}
	addrs, err := vipproxy.NewDummy(cfg.VIPInterface)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			log.Warn("VIPs are not balanced on this node: putting their addresses on an interface needs root (CAP_NET_ADMIN); --vip-proxy=false turns the balancer off without this warning", "err", err)
		} else {
			log.Error("VIPs are not balanced on this node", "err", err)
		}
		return
	}
	pc := vipproxy.DefaultConfig()
	pc.Logger = cfg.Logger
	pc.Addresses = addrs
	pc.Registerer = registry
	// One table per interface: nodes with interfaces of their own (tests) do not share one.
	pc.NATTable = cfg.VIPInterface
	p, err := vipproxy.New(pc)
	if err != nil {
		log.Error("VIPs are not balanced on this node", "err", err)
		_ = addrs.Close()
		return
	}
	log.Info("balancing VIPs", "interface", cfg.VIPInterface, "nftables_table", pc.NATTable, "range", cfg.VIPRange)
	wg.Go(func() {
		if err := p.Run(ctx, dnsSrv.VIPs); err != nil {
			log.Warn("VIP balancer stopped", "err", err)
		}
	})
}

// Command lbfixture runs Atoll's load balancer (lb.Server) for scripts/bench/lb.sh with a
// fixed two-service table in front of one backend: an HTTP service (the L7 path) on
// -http-port and a TCP service (the L4 path) on -tcp-port, both balanced round robin to
// -backend, as HAProxy's frontends in the script are. It prints "ready" once both ports
// answer and serves until killed.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/atoll/atoll/lb"
)

func main() {
	backend := flag.String("backend", "127.0.0.1:18090", "host:port of the backend both services send to")
	httpPort := flag.Int("http-port", 18180, "port of the HTTP (L7) service")
	tcpPort := flag.Int("tcp-port", 18181, "port of the TCP (L4) service")
	backend2 := flag.String("backend2", "", "host:port of the backend a SIGHUP swaps in (and the next one out again)")
	loops := flag.Int("loops", 0, "event loops (0: GOMAXPROCS)")
	flag.Parse()
	if err := run(*backend, *backend2, *httpPort, *tcpPort, *loops); err != nil {
		fmt.Fprintln(os.Stderr, "lbfixture:", err)
		os.Exit(1)
	}
}

func run(backend, backend2 string, httpPort, tcpPort, loops int) error {
	cfg := lb.DefaultConfig()
	cfg.Loops = loops
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.HTTPAddr, cfg.HTTPSAddr, cfg.AppIDAddr = "", "", ""
	cfg.BindAddr = "127.0.0.1"
	s, err := lb.NewServer(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	table := func(addr string) *lb.Table {
		backends := []lb.Backend{{Addr: addr, App: "/bench", TaskID: "bench-task-" + addr}}
		return &lb.Table{Group: "external", Problems: []lb.Problem{}, Services: []lb.Service{
			{Name: "bench_web", AppID: "/bench/web", Port: httpPort, Mode: lb.ModeHTTP, Balance: lb.BalanceRoundRobin, Backends: backends},
			{Name: "bench_raw", AppID: "/bench/raw", Port: tcpPort, Mode: lb.ModeTCP, Balance: lb.BalanceRoundRobin, Backends: backends},
		}}
	}
	if err := s.Swap(table(backend)); err != nil {
		return err
	}
	for _, port := range []int{httpPort, tcpPort} {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("%s not listening: %w", addr, err)
		}
		c.Close()
	}
	fmt.Println("ready")
	stop, hup := make(chan os.Signal, 1), make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	signal.Notify(hup, syscall.SIGHUP)
	current, next := backend, backend2
	for {
		select {
		case <-stop:
			return nil
		case <-hup:
			if next == "" {
				continue
			}
			if err := s.Swap(table(next)); err != nil {
				return fmt.Errorf("swap to %s: %w", next, err)
			}
			current, next = next, current
			fmt.Println("swapped to", current)
		}
	}
}

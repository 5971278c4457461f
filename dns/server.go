// Package dns is the DNS server for the cluster domain that runs in every Atoll node: it
// follows the leading master's operator event stream, keeps Mesos-DNS's names (and PTR
// records, which Mesos-DNS never had) and DC/OS's named VIPs in an immutable answer table
// that each change replaces by copying only what it touched, forwards every other name to
// upstream resolvers, and serves Mesos-DNS's HTTP API. It also publishes the cluster's VIP
// table (Server.VIPs), which the node's VIP balancer follows.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/atoll/atoll/lb/vip"
)

// Server answers DNS queries for the cluster domain and the VIP zone from the records of
// the cluster, and forwards the rest. New binds its sockets; Run serves them.
type Server struct {
	cfg       Config
	log       *slog.Logger
	domain    string
	nsAddr    netip.Addr
	vipRange  netip.Prefix
	upstreams []string
	metrics   *metrics

	udp  []*net.UDPConn
	tcp  net.Listener
	addr netip.AddrPort

	table   atomic.Pointer[table]
	stale   atomic.Bool
	replies sync.Pool
	// forwards are the goroutines answering UDP queries from upstreams.
	forwards sync.WaitGroup

	// mu guards what the records are made from and the index that makes them, and
	// serializes updates.
	mu      sync.Mutex
	cluster *Cluster
	vips    []VIP
	serial  uint32
	index   *recordIndex
	// records is the whole record set for Records, made when first asked for after a
	// change.
	records *Records
	// vipTable is the VIP table last made; vipNext is closed when a newer one replaces it.
	vipTable *vip.Table
	vipNext  chan struct{}

	closeOnce sync.Once
}

// bindAttempts bounds the tries to find a port free for both UDP and TCP when Listen asks
// for any port.
const bindAttempts = 20

// New checks cfg, binds the UDP and TCP sockets and builds the first (empty) record set.
// The sockets stay bound until Run returns or Close is called.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "dns"),
		domain:  mdns.Fqdn(strings.ToLower(cfg.Domain)),
		cluster: NewCluster(nil, nil),
		vipNext: make(chan struct{}),
	}
	if cfg.NSAddr != "" {
		s.nsAddr = netip.MustParseAddr(cfg.NSAddr)
	}
	s.vipRange, _ = vip.ParseRange(cfg.VIPRange)
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("dns metrics: %w", err)
	}
	s.metrics = m
	s.stale.Store(cfg.Masters != nil)
	if cfg.Masters == nil {
		m.stale.Set(0)
	}
	s.replies.New = func() any { return &reply{buf: make([]byte, 0, 4096)} }
	if err := s.bind(); err != nil {
		return nil, err
	}
	if s.upstreams, err = cfg.upstreams(s.addr); err != nil {
		s.Close()
		return nil, err
	}
	s.mu.Lock()
	s.refreshLocked()
	s.mu.Unlock()
	return s, nil
}

// bind opens cfg.UDPSockets UDP sockets sharing one port and a TCP listener on it.
func (s *Server) bind() error {
	host, port, _ := net.SplitHostPort(s.cfg.Listen)
	var lastErr error
	for range bindAttempts {
		udp, tcp, err := bindPort(host, port, s.cfg.UDPSockets)
		if err == nil {
			s.udp, s.tcp = udp, tcp
			s.addr = tcp.Addr().(*net.TCPAddr).AddrPort()
			if err := spreadAtRandom(udp); err != nil {
				s.log.Warn("UDP queries spread over the sockets by client address and port", "err", err)
			}
			return nil
		}
		lastErr = err
		if port != "0" {
			break
		}
	}
	return fmt.Errorf("dns listen %s: %w", s.cfg.Listen, lastErr)
}

func bindPort(host, port string, sockets int) ([]*net.UDPConn, net.Listener, error) {
	ip, err := netip.ParseAddr(host)
	everyAddr := host == "" || err == nil && ip.IsUnspecified()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var optErr error
		err := c.Control(func(fd uintptr) {
			optErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			if everyAddr && optErr == nil {
				optErr = setPktinfo(int(fd))
			}
		})
		return errors.Join(err, optErr)
	}}
	var udp []*net.UDPConn
	closeAll := func() {
		for _, c := range udp {
			c.Close()
		}
	}
	for range sockets {
		pc, err := lc.ListenPacket(context.Background(), "udp", net.JoinHostPort(host, port))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		udp = append(udp, pc.(*net.UDPConn))
		port = fmt.Sprint(pc.LocalAddr().(*net.UDPAddr).Port)
	}
	// TCP without SO_REUSEPORT: a second server on the same port fails here instead of
	// silently sharing the UDP queries.
	tcp, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return udp, tcp, nil
}

// skfAdRandom is where a classic BPF program loads a random number from:
// SKF_AD_OFF + SKF_AD_RANDOM (linux/filter.h), as the uint32 an instruction holds.
const skfAdRandom = 1<<32 - 0x1000 + 56

// spreadAtRandom makes the kernel hand each UDP query to one of the port's sockets at
// random (a classic BPF program for the SO_REUSEPORT group), instead of by the hash of
// both ends' addresses and ports, which leaves sockets idle when a few clients send most
// queries (a resolver in front of the server, a load generator). Queries are
// independent and every socket answers from the same address and port, so no client
// needs all its queries on one socket.
func spreadAtRandom(udp []*net.UDPConn) error {
	if len(udp) < 2 {
		return nil
	}
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdRandom},
		{Code: unix.BPF_ALU | unix.BPF_MOD | unix.BPF_K, K: uint32(len(udp))},
		{Code: unix.BPF_RET | unix.BPF_A},
	}
	raw, err := udp[0].SyscallConn()
	if err != nil {
		return err
	}
	var optErr error
	err = raw.Control(func(fd uintptr) {
		optErr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	})
	return errors.Join(err, optErr)
}

// setPktinfo asks for the address each datagram was sent to, so a socket listening on
// every address answers from that one (see udpLoop). A socket is of one family, or
// dual-stack: it takes one of the options, or both.
func setPktinfo(fd int) error {
	err4 := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	err6 := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
	if err4 != nil && err6 != nil {
		return fmt.Errorf("ask for datagrams' destination addresses: %w", err4)
	}
	return nil
}

// Addr is the address the server answers on (UDP and TCP).
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Stale reports whether the server is not following a master's event stream right now,
// and so answers from the last records it knew (none before the first connection).
func (s *Server) Stale() bool { return s.stale.Load() }

// SetVIPs replaces the VIPs set by hand (those of the tasks' labels stay) and swaps in
// the records with them. Safe for concurrent use.
func (s *Server) SetVIPs(vips []VIP) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vips = append([]VIP(nil), vips...)
	s.index.setVIPs(s.vips)
	s.refreshLocked()
}

// Records returns the record set being served. It is made whole from the cluster state
// on the first call after a change (the answers themselves are kept current change by
// change), so it costs as much as the cluster is big; the HTTP API's /v1/enumerate uses it.
func (s *Server) Records() *Records {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.records == nil {
		s.records = BuildRecords(s.cluster, s.vips, s.zone())
	}
	return s.records
}

// zone is what the server's records are made with besides the cluster.
func (s *Server) zone() Zone {
	return Zone{Domain: s.domain, TTL: s.cfg.TTL, Serial: s.serial, NSAddr: s.nsAddr, VIPRange: s.vipRange}
}

// VIPs returns the VIP table of the tasks the server knows of (empty before it first
// follows a master), and a channel closed once a newer table replaces it: the L4
// balancers of the node follow it. Safe for concurrent use.
func (s *Server) VIPs() (*vip.Table, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vipTable, s.vipNext
}

// refreshLocked applies what changed in the cluster since the last call to the record
// index, and swaps in its table when any answer changed. A new cluster (SUBSCRIBED) gets
// a new index.
func (s *Server) refreshLocked() {
	start := time.Now()
	ch := s.cluster.takeChanges()
	fresh := s.index == nil || ch.all
	if fresh {
		s.index = newRecordIndex(s.cluster, s.vips, s.domain, s.cfg.TTL, s.nsAddr, s.vipRange)
	} else {
		s.index.update(s.cluster, ch)
	}
	if s.index.vipTable != s.vipTable {
		s.vipTable = s.index.vipTable
		close(s.vipNext)
		s.vipNext = make(chan struct{})
	}
	s.records = nil
	for _, msg := range s.index.takeSkipped() {
		s.log.Debug("record skipped", "why", msg)
	}
	if !fresh && !s.index.changed() {
		return
	}
	s.serial = max(s.serial+1, uint32(start.Unix()))
	s.table.Store(s.index.publish(s.serial))
	s.metrics.records.Set(float64(s.index.count))
	s.metrics.swaps.Inc()
	s.metrics.buildSeconds.Observe(time.Since(start).Seconds())
}

// maxQuerySize is the read buffer of a UDP query: a question with EDNS0 options is far
// smaller, and each UDP socket holds udpBatch of them.
const maxQuerySize = 4096

// Run serves queries until ctx ends, following the masters' event stream when
// Config.Masters is set, then closes the sockets. Each UDP socket is served by a
// udpLoop, TCP by miekg/dns's server.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tcp := &mdns.Server{Listener: s.tcp, Handler: s,
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }}
	errc := make(chan error, 1+len(s.udp))
	var serving sync.WaitGroup
	started := make(chan struct{})
	tcp.NotifyStartedFunc = func() { close(started) }
	serving.Go(func() {
		if err := tcp.ActivateAndServe(); err != nil {
			errc <- err
		}
	})
	select {
	case <-started:
	case err := <-errc:
		serving.Wait()
		return fmt.Errorf("dns serve: %w", err)
	}
	for _, pc := range s.udp {
		l, err := newUDPLoop(s, pc)
		if err != nil {
			errc <- err
			break
		}
		serving.Go(func() {
			if err := l.serve(ctx); err != nil {
				errc <- err
			}
		})
	}
	s.log.Info("dns serving", "addr", s.addr.String(), "domain", s.domain, "upstreams", s.upstreams)
	watched := make(chan struct{})
	if s.cfg.Masters != nil {
		go func() {
			defer close(watched)
			s.watch(ctx)
		}()
	} else {
		close(watched)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("dns serve: %w", err)
	}
	cancel()
	<-watched
	shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	_ = tcp.ShutdownContext(shutdownCtx)
	s.Close()
	serving.Wait()
	// The UDP exchanges with upstreams end with ctx.
	s.forwards.Wait()
	return err
}

// Close releases the sockets of a server that is not running (Run does it on return).
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		for _, pc := range s.udp {
			pc.Close()
		}
		if s.tcp != nil {
			s.tcp.Close()
		}
	})
}

// reply is an answer being made: its slices keep their capacity from query to query.
type reply struct {
	msg      mdns.Msg
	question [1]mdns.Question
	opt      mdns.OPT
	buf      []byte
}

// maxPooledBuf keeps a rare huge answer's buffer from staying in the pool.
const maxPooledBuf = 16 << 10

// ServeDNS answers one query (mdns.Handler); the server's TCP connections are served
// through it.
func (s *Server) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	_, tcp := w.LocalAddr().(*net.TCPAddr)
	r := s.replies.Get().(*reply)
	defer s.putReply(r)
	size := mdns.MaxMsgSize
	if !tcp {
		size = s.udpSize(req)
	}
	packed, out := s.answer(r, req, size, r.buf)
	if out == outForwarded {
		s.forward(context.Background(), w, req, tcp)
		return
	}
	if packed == nil {
		return
	}
	if cap(packed) <= maxPooledBuf {
		r.buf = packed[:0]
	}
	_, _ = w.Write(packed)
}

// answer makes the answer to req in r, cut to size bytes (with TC set when it had to
// be), and packs it into buf (grown when too small). It returns outForwarded, and no
// answer, when req is for an upstream; nil when the answer cannot be packed.
func (s *Server) answer(r *reply, req *mdns.Msg, size int, buf []byte) ([]byte, outcome) {
	out := s.respond(r, req)
	if out == outForwarded {
		return nil, out
	}
	s.metrics.queries[out].Inc()
	msg := &r.msg
	if msg.Len() > size {
		msg.Truncate(size)
		if msg.Truncated {
			s.metrics.truncated.Inc()
		}
	}
	packed, err := msg.PackBuffer(buf[:cap(buf)])
	if err != nil {
		s.log.Warn("pack answer", "question", req.Question, "err", err)
		return nil, out
	}
	return packed, out
}

func (s *Server) putReply(r *reply) {
	r.reset()
	s.replies.Put(r)
}

// reset empties r's sections, dropping their references so a reply kept for the next
// query holds no old tables.
func (r *reply) reset() {
	r.msg.Answer = clear0(r.msg.Answer)
	r.msg.Ns = clear0(r.msg.Ns)
	r.msg.Extra = clear0(r.msg.Extra)
}

// clear0 empties rrs, dropping its references.
func clear0(rrs []mdns.RR) []mdns.RR {
	clear(rrs)
	return rrs[:0]
}

// udpSize is the largest UDP answer req's sender takes: 512 without EDNS0, else what it
// advertised, within 512..Config.UDPSize.
func (s *Server) udpSize(req *mdns.Msg) int {
	if opt := req.IsEdns0(); opt != nil {
		return int(min(max(opt.UDPSize(), mdns.MinMsgSize), s.cfg.UDPSize))
	}
	return mdns.MinMsgSize
}

// respond fills r with the answer to req, or returns outForwarded when req is for an
// upstream.
func (s *Server) respond(r *reply, req *mdns.Msg) outcome {
	msg := &r.msg
	// Uncompressed unless it does not fit (see ServeDNS): compression costs a map per answer.
	*msg = mdns.Msg{Answer: msg.Answer, Ns: msg.Ns, Extra: msg.Extra}
	msg.Id = req.Id
	msg.Response = true
	msg.Opcode = req.Opcode
	msg.RecursionDesired = req.RecursionDesired
	msg.CheckingDisabled = req.CheckingDisabled
	msg.RecursionAvailable = len(s.upstreams) > 0
	if len(req.Question) == 1 {
		r.question[0] = req.Question[0]
		msg.Question = r.question[:]
	}
	if opt := req.IsEdns0(); opt != nil {
		r.opt = mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT, Class: s.cfg.UDPSize}}
		r.opt.SetDo(opt.Do())
		defer func() { msg.Extra = append(msg.Extra, &r.opt) }()
		if opt.Version() != 0 {
			msg.Rcode = mdns.RcodeBadVers
			return outBadVers
		}
	}
	switch {
	case req.Opcode != mdns.OpcodeQuery:
		msg.Rcode = mdns.RcodeNotImplemented
		return outNotImp
	case len(req.Question) != 1:
		msg.Rcode = mdns.RcodeFormatError
		return outFormErr
	}
	q := req.Question[0]
	if q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY {
		msg.Rcode = mdns.RcodeRefused
		return outRefused
	}
	name := strings.ToLower(q.Name)
	t := s.table.Load()
	set := t.lookup(name)
	z := t.zoneOf(name)
	if z == nil {
		// Reverse names of cluster addresses are ours; everything else is upstream's.
		if set != nil && (q.Qtype == mdns.TypePTR || q.Qtype == mdns.TypeANY) {
			if ptr := set.records(mdns.TypePTR); len(ptr) > 0 {
				msg.Authoritative = true
				s.fill(msg, ptr, nil)
				return outAnswer
			}
		}
		if len(s.upstreams) == 0 {
			msg.Rcode = mdns.RcodeRefused
			return outRefused
		}
		return outForwarded
	}
	msg.Authoritative = true
	if q.Qtype == mdns.TypeAXFR || q.Qtype == mdns.TypeIXFR {
		msg.Rcode = mdns.RcodeRefused
		return outRefused
	}
	if set == nil {
		msg.Rcode = mdns.RcodeNameError
		msg.Ns = append(msg.Ns, z.negative)
		return outNXDomain
	}
	answer, extra := set.lookup(q.Qtype)
	if len(answer) == 0 {
		msg.Ns = append(msg.Ns, z.negative)
		return outNoData
	}
	s.fill(msg, answer, extra)
	return outAnswer
}

// fill puts answer, shuffled, and extra into msg.
func (s *Server) fill(msg *mdns.Msg, answer, extra []mdns.RR) {
	start := len(msg.Answer)
	msg.Answer = append(msg.Answer, answer...)
	shuffled := msg.Answer[start:]
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	msg.Extra = append(msg.Extra, extra...)
}

// msgWriter sends one answer to the client that asked.
type msgWriter interface {
	WriteMsg(*mdns.Msg) error
}

// forward sends req to the upstreams in turn and relays the first answer; SERVFAIL when
// none answers in time. It gives up without an answer when ctx ends.
func (s *Server) forward(ctx context.Context, w msgWriter, req *mdns.Msg, tcp bool) {
	client := &mdns.Client{Net: "udp", Timeout: s.cfg.UpstreamTimeout}
	if tcp {
		client.Net = "tcp"
	}
	for _, upstream := range s.upstreams {
		resp, _, err := client.ExchangeContext(ctx, req, upstream)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.metrics.upstreamErrs.Inc()
			s.log.Debug("upstream failed", "upstream", upstream, "name", req.Question[0].Name, "err", err)
			continue
		}
		resp.Id = req.Id
		if !tcp {
			resp.Truncate(s.udpSize(req))
		}
		s.metrics.queries[outForwarded].Inc()
		_ = w.WriteMsg(resp)
		return
	}
	s.metrics.queries[outServFail].Inc()
	fail := new(mdns.Msg)
	fail.SetRcode(req, mdns.RcodeServerFailure)
	fail.RecursionAvailable = true
	_ = w.WriteMsg(fail)
}

var (
	_ mdns.Handler = (*Server)(nil)
	_ msgWriter    = (*udpWriter)(nil)
)

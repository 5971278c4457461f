package node

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/atoll/atoll/api"
)

// Tag keys every node sets on its gossip member (api.MemberTag*, which clients read);
// nodes find each other's roles and addresses through them.
const (
	// TagRole lists the node's roles, comma-separated: master, agent, lb.
	TagRole = api.MemberTagRole
	// TagAPI is a master's API base URL (http://ip:port, https:// when secure).
	TagAPI = api.MemberTagAPI
	// TagRaft is a master's Raft transport address (ip:port).
	TagRaft = api.MemberTagRaft
	// TagAgentHTTP is an agent's HTTP address (ip:port).
	TagAgentHTTP = api.MemberTagAgentHTTP
	// TagVersion is the node's Atoll version.
	TagVersion = api.MemberTagVersion
	// TagID is the node's stable id, kept across restarts.
	TagID = api.MemberTagID
)

// Roles listed in TagRole.
const (
	RoleMaster = "master"
	RoleAgent  = "agent"
	RoleLB     = "lb"
)

// DefaultGossipPort is serf's customary port, used for join addresses given without one.
const DefaultGossipPort = 7946

// Errors callers branch on.
var (
	// ErrNameConflict means another node at another address already uses this node's name
	// (alive, or failed less than memberlist's gossip-to-the-dead time ago, 30 s on a LAN);
	// the join is abandoned rather than retried.
	ErrNameConflict = errors.New("node name already in use")
	// ErrShutdown means the membership was shut down while waiting.
	ErrShutdown = errors.New("membership shut down")
)

const (
	// Join retries start fast so a cluster started all at once forms quickly, and back off to
	// a pace that does not flood the log while a seed is down for a long time.
	joinBackoffMin = time.Second
	joinBackoffMax = 30 * time.Second
	// progressInterval spaces WaitForMasters' progress lines.
	progressInterval = 5 * time.Second
	// eventBuffer absorbs bursts (a whole cluster joining) and the few events serf may still
	// send while it shuts down, so serf never blocks on a dispatcher that has stopped.
	eventBuffer = 1024
	// maxNodeNameLength and the name alphabet are serf's (ValidateNodeNames) rules.
	maxNodeNameLength = 128
)

// MembershipConfig configures a node's gossip membership.
type MembershipConfig struct {
	// Name is the node's gossip name, unique in the cluster: letters, digits, '-' and '.',
	// at most 128 bytes.
	Name string
	// BindAddr is the IP the gossip listeners (TCP and UDP) bind to.
	BindAddr string
	// AdvertiseAddr is the IP other nodes reach this one at; empty lets memberlist choose
	// (BindAddr, or the first private IP when BindAddr is 0.0.0.0).
	AdvertiseAddr string
	// Port is the gossip port (TCP and UDP); 0 picks a free one, for tests.
	Port int
	// Join lists existing nodes as host or host:port (port DefaultGossipPort when omitted).
	// Empty means this is the first node.
	Join []string
	// Tags are the node's initial tags (Tag* keys).
	Tags map[string]string
	// Dev selects tight timings for nodes on loopback (`atoll up`, tests); otherwise the
	// LAN timings, which tolerate real network delays.
	Dev bool
	// Logger receives the membership's logs, serf's and memberlist's included.
	Logger *slog.Logger
	// SnapshotPath, when set, is a file where serf records the members it knows, so a
	// restarted node rejoins them by itself. Its directory is created if missing.
	SnapshotPath string
	// ReconnectTimeout is how long failed and left members are kept (failed ones are retried
	// meanwhile) before they are reaped; 0 means 24h, or 1m with Dev.
	ReconnectTimeout time.Duration
	// GossipKey, when set, encrypts and authenticates all gossip (AES-GCM; 16, 24 or 32
	// bytes): nodes without the key can neither join nor read or forge messages. Empty
	// gossips in the clear.
	GossipKey []byte
}

// DefaultMembershipConfig is the production preset.
func DefaultMembershipConfig() MembershipConfig {
	host, _ := os.Hostname()
	return MembershipConfig{
		Name:     host,
		BindAddr: "0.0.0.0",
		// Serf's well-known port, so firewall rules and join addresses need no port.
		Port: DefaultGossipPort,
		// A day rides out a long maintenance window without losing track of a node; the
		// operator sees it as failed meanwhile.
		ReconnectTimeout: 24 * time.Hour,
		Logger:           slog.Default(),
	}
}

// Validate reports the first thing wrong with c, naming the field.
func (c MembershipConfig) Validate() error {
	if err := validateNodeName(c.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if net.ParseIP(c.BindAddr) == nil {
		return fmt.Errorf("bind-addr: %q is not an IP address", c.BindAddr)
	}
	if c.AdvertiseAddr != "" {
		ip := net.ParseIP(c.AdvertiseAddr)
		if ip == nil || ip.IsUnspecified() {
			return fmt.Errorf("advertise-addr: %q is not a reachable IP address", c.AdvertiseAddr)
		}
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("gossip-port: %d is not a port", c.Port)
	}
	for i, addr := range c.Join {
		if _, err := joinAddr(addr); err != nil {
			return fmt.Errorf("join[%d]: %w", i, err)
		}
	}
	if c.Logger == nil {
		return errors.New("logger: nil")
	}
	if c.ReconnectTimeout < 0 {
		return fmt.Errorf("reconnect-timeout: %v, want >= 0", c.ReconnectTimeout)
	}
	switch len(c.GossipKey) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("gossip key: %d bytes, want 16, 24 or 32", len(c.GossipKey))
	}
	return nil
}

func validateNodeName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if len(name) > maxNodeNameLength {
		return fmt.Errorf("%d bytes, at most %d allowed", len(name), maxNodeNameLength)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("%q: only letters, digits, '-' and '.' allowed", name)
		}
	}
	return nil
}

// joinAddr turns a join address (host, host:port, IPv6 with or without brackets) into
// host:port, adding DefaultGossipPort when none is given.
func joinAddr(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty address")
	}
	if addr, err := netip.ParseAddr(s); err == nil {
		if err := validateZone(addr); err != nil {
			return "", fmt.Errorf("%q: %w", s, err)
		}
		return net.JoinHostPort(addr.String(), strconv.Itoa(DefaultGossipPort)), nil
	}
	if inner, ok := strings.CutPrefix(s, "["); ok {
		if inner, ok := strings.CutSuffix(inner, "]"); ok {
			addr, err := netip.ParseAddr(inner)
			if err != nil || !addr.Is6() {
				return "", fmt.Errorf("%q: brackets hold no IPv6 address", s)
			}
			if err := validateZone(addr); err != nil {
				return "", fmt.Errorf("%q: %w", s, err)
			}
			return net.JoinHostPort(addr.String(), strconv.Itoa(DefaultGossipPort)), nil
		}
	}
	if !strings.Contains(s, ":") {
		if err := validateHostname(s); err != nil {
			return "", fmt.Errorf("%q: %w", s, err)
		}
		return net.JoinHostPort(s, strconv.Itoa(DefaultGossipPort)), nil
	}
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%q: %w", s, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return "", fmt.Errorf("%q: port %q is not a number in 1-65535", s, portText)
	}
	if strings.HasPrefix(s, "[") {
		addr, err := netip.ParseAddr(host)
		if err != nil || !addr.Is6() {
			return "", fmt.Errorf("%q: brackets hold no IPv6 address", s)
		}
		if err := validateZone(addr); err != nil {
			return "", fmt.Errorf("%q: %w", s, err)
		}
		host = addr.String()
	} else if addr, err := netip.ParseAddr(host); err == nil && addr.Is4() {
		host = addr.String()
	} else if err := validateHostname(host); err != nil {
		return "", fmt.Errorf("%q: %w", s, err)
	}
	return net.JoinHostPort(host, strconv.FormatUint(port, 10)), nil
}

func validateHostname(host string) error {
	if host == "" {
		return errors.New("empty host")
	}
	if len(host) > 253 {
		return fmt.Errorf("host is %d bytes, at most 253 allowed", len(host))
	}
	if !isNameText(host) {
		return errors.New("host may hold only letters, digits, '-', '_' and '.'")
	}
	return nil
}

// validateZone keeps IPv6 zones to interface-name characters, so the address survives
// being written as [ip%zone]:port and read back.
func validateZone(addr netip.Addr) error {
	if zone := addr.Zone(); zone != "" && !isNameText(zone) {
		return fmt.Errorf("IPv6 zone %q may hold only letters, digits, '-', '_' and '.'", zone)
	}
	return nil
}

func isNameText(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// MemberEventType names a membership change.
type MemberEventType string

// Membership changes reported to Subscribe callbacks.
const (
	MemberJoin   MemberEventType = "join"
	MemberLeave  MemberEventType = "leave"
	MemberFailed MemberEventType = "failed"
	MemberUpdate MemberEventType = "update"
	MemberReap   MemberEventType = "reap"
)

var memberEventTypes = map[serf.EventType]MemberEventType{
	serf.EventMemberJoin:   MemberJoin,
	serf.EventMemberLeave:  MemberLeave,
	serf.EventMemberFailed: MemberFailed,
	serf.EventMemberUpdate: MemberUpdate,
	serf.EventMemberReap:   MemberReap,
}

// MemberEvent is one membership change of one member, as it is after the change.
type MemberEvent struct {
	Type   MemberEventType
	Member api.Member
}

// Membership is a node's view of the cluster through serf gossip. Its methods are safe for
// concurrent use.
type Membership struct {
	serf   *serf.Serf
	name   string
	logger *slog.Logger
	events chan serf.Event

	// keyring is the gossip keyring memberlist made of GossipKey, nil without one.
	keyring *memberlist.Keyring

	// local is this node's gossip address, set once serf is up; the name guard compares
	// peers claiming this node's name against it.
	local atomic.Pointer[netip.AddrPort]
	// conflictMu guards conflict, the last name conflict the name guard rejected; the join
	// loop clears it before each attempt and reads it after a failure.
	conflictMu sync.Mutex
	conflict   error

	cancelJoin context.CancelFunc
	joined     chan struct{} // closed when the join succeeded or was abandoned
	joinErr    error         // why the join was abandoned; read after joined is closed

	subsMu sync.Mutex
	subs   []*subscription

	stopped        chan struct{} // closed once serf is shut down
	dispatcherDone chan struct{}
	shutdownOnce   sync.Once
	shutdownErr    error
}

type subscription struct {
	fn        func(MemberEvent)
	cancelled atomic.Bool
}

// NewMembership starts serf on the configured address and returns at once; when cfg.Join is
// set it joins in the background, retrying with backoff until one address answers (see
// WaitJoined).
func NewMembership(cfg MembershipConfig) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("membership config: %w", err)
	}
	joins := make([]string, len(cfg.Join))
	for i, addr := range cfg.Join {
		joins[i], _ = joinAddr(addr) // Validate accepted every address
	}
	if cfg.SnapshotPath != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.SnapshotPath), 0o700); err != nil {
			return nil, fmt.Errorf("gossip snapshot dir: %w", err)
		}
	}

	m := &Membership{
		name:           cfg.Name,
		logger:         cfg.Logger,
		events:         make(chan serf.Event, eventBuffer),
		joined:         make(chan struct{}),
		stopped:        make(chan struct{}),
		dispatcherDone: make(chan struct{}),
	}
	conf := m.serfConfig(cfg)
	s, err := serf.Create(conf)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.Port)), err)
	}
	m.serf, m.keyring = s, conf.MemberlistConfig.Keyring
	local := s.Memberlist().LocalNode()
	if ip, ok := netip.AddrFromSlice(local.Addr); ok {
		addrPort := netip.AddrPortFrom(ip.Unmap(), local.Port)
		m.local.Store(&addrPort)
	}
	go m.dispatch()

	if len(joins) == 0 {
		close(m.joined)
		return m, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancelJoin = cancel
	go m.joinLoop(ctx, joins)
	return m, nil
}

func (m *Membership) serfConfig(cfg MembershipConfig) *serf.Config {
	std := log.New(slogWriter{logger: cfg.Logger}, "", 0)

	ml := memberlist.DefaultLANConfig()
	if cfg.Dev {
		ml = memberlist.DefaultLocalConfig()
		// A gossiped change that a loaded machine drops (a tag update, say) reaches
		// everyone at the next full state exchange: every few seconds on loopback, not
		// every 15.
		ml.PushPullInterval = 3 * time.Second
	}
	ml.BindAddr = cfg.BindAddr
	ml.BindPort = cfg.Port
	ml.AdvertiseAddr = cfg.AdvertiseAddr
	ml.AdvertisePort = cfg.Port
	ml.Logger = std
	// memberlist makes its keyring of this one key; with it, it refuses messages that
	// are not encrypted with it, both ways.
	ml.SecretKey = slices.Clone(cfg.GossipKey)

	conf := serf.DefaultConfig()
	conf.NodeName = cfg.Name
	conf.Tags = maps.Clone(cfg.Tags)
	conf.EventCh = m.events
	conf.Logger = std
	conf.MemberlistConfig = ml
	conf.Merge = nameGuard{m: m}
	conf.ValidateNodeNames = true
	// Atoll places nothing by network distance, so the coordinate pings would be wasted.
	conf.DisableCoordinates = true
	conf.SnapshotPath = cfg.SnapshotPath
	timeout := cfg.ReconnectTimeout
	if timeout == 0 {
		timeout = 24 * time.Hour
		if cfg.Dev {
			// A dev cluster's nodes come and go with the process; a minute is long enough
			// to see a failure and short enough not to clutter `atoll members`.
			timeout = time.Minute
		}
	}
	conf.ReconnectTimeout = timeout
	conf.TombstoneTimeout = timeout
	if cfg.Dev {
		// Reap and reconnect on a loopback cluster's time scale rather than a LAN's.
		conf.ReapInterval = time.Second
		conf.ReconnectInterval = 5 * time.Second
	}
	return conf
}

// nameGuard is serf's merge delegate: it refuses any peer list or alive message that shows
// another node under this node's name, which makes a joining impostor's join fail.
type nameGuard struct {
	m *Membership
}

func (g nameGuard) NotifyMerge(members []*serf.Member) error {
	local := g.m.local.Load()
	if local == nil {
		return nil // serf is still starting; the only alive message is our own
	}
	for _, peer := range members {
		if peer.Name != g.m.name || peer.Status == serf.StatusLeft {
			continue
		}
		ip, _ := netip.AddrFromSlice(peer.Addr)
		if ip.Unmap() == local.Addr() && peer.Port == local.Port() {
			continue
		}
		err := fmt.Errorf("%w: %q is held by %s", ErrNameConflict, peer.Name,
			net.JoinHostPort(peer.Addr.String(), strconv.Itoa(int(peer.Port))))
		g.m.conflictMu.Lock()
		g.m.conflict = err
		g.m.conflictMu.Unlock()
		return err
	}
	return nil
}

func (m *Membership) takeConflict() error {
	m.conflictMu.Lock()
	defer m.conflictMu.Unlock()
	err := m.conflict
	m.conflict = nil
	return err
}

func (m *Membership) joinLoop(ctx context.Context, addrs []string) {
	backoff := joinBackoffMin
	for {
		m.takeConflict()
		n, err := m.serf.Join(addrs, true)
		if ctx.Err() != nil {
			return
		}
		if n > 0 {
			m.logger.Info("joined cluster", "contacted", n, "members", m.serf.NumNodes())
			close(m.joined)
			return
		}
		if conflict := m.takeConflict(); conflict != nil {
			m.joinErr = fmt.Errorf("join %s: %w", strings.Join(addrs, ","), conflict)
			m.logger.Error("cannot join cluster", "err", m.joinErr)
			close(m.joined)
			return
		}
		m.logger.Warn("waiting to join", "err", joinFailure(err), "retry_in", backoff)
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		backoff = min(2*backoff, joinBackoffMax)
	}
}

// joinFailure flattens memberlist's multi-error ("1 error occurred:\n\t* …") to one line.
func joinFailure(err error) string {
	var multi interface{ WrappedErrors() []error }
	if !errors.As(err, &multi) {
		return err.Error()
	}
	reasons := make([]string, 0, len(multi.WrappedErrors()))
	for _, e := range multi.WrappedErrors() {
		reasons = append(reasons, e.Error())
	}
	return strings.Join(reasons, "; ")
}

// WaitJoined blocks until the background join succeeded (at once when there is no join
// list) and returns nil, or returns why it was abandoned (ErrNameConflict), ctx.Err(), or
// ErrShutdown.
func (m *Membership) WaitJoined(ctx context.Context) error {
	select {
	case <-m.joined:
		return m.joinErr
	default:
	}
	select {
	case <-m.joined:
		return m.joinErr
	case <-ctx.Done():
		return ctx.Err()
	case <-m.stopped:
		return ErrShutdown
	}
}

// Addr is the gossip address (host:port) other nodes join.
func (m *Membership) Addr() string {
	local := m.serf.Memberlist().LocalNode()
	return net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))
}

// Members lists every member this node knows, itself included, sorted by name.
func (m *Membership) Members() []api.Member {
	members := m.serf.Members()
	out := make([]api.Member, 0, len(members))
	for _, member := range members {
		out = append(out, toAPIMember(member))
	}
	slices.SortFunc(out, func(a, b api.Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Masters lists the alive members with the master role, sorted by name.
func (m *Membership) Masters() []api.Member {
	return slices.DeleteFunc(m.Members(), func(member api.Member) bool {
		return member.Status != serf.StatusAlive.String() || !HasRole(member, RoleMaster)
	})
}

// MasterAPIs lists the API URLs of the alive masters, sorted; agents and clients try them
// to find the leader.
func (m *Membership) MasterAPIs() []string {
	var urls []string
	for _, master := range m.Masters() {
		if url := master.Tags[TagAPI]; url != "" {
			urls = append(urls, url)
		}
	}
	slices.Sort(urls)
	return urls
}

// SetTags replaces this node's tags and gossips them to the cluster.
func (m *Membership) SetTags(tags map[string]string) error {
	if err := m.serf.SetTags(maps.Clone(tags)); err != nil {
		return fmt.Errorf("set gossip tags: %w", err)
	}
	return nil
}

// Subscribe calls fn for every membership change, from one goroutine, in the order serf
// reports them. fn must return quickly (gossip stalls while events back up) and must not
// call Leave or Shutdown. cancel stops further calls; a call already running may finish
// after cancel returns.
func (m *Membership) Subscribe(fn func(MemberEvent)) (cancel func()) {
	sub := &subscription{fn: fn}
	m.subsMu.Lock()
	m.subs = append(m.subs, sub)
	m.subsMu.Unlock()
	return func() {
		sub.cancelled.Store(true)
		m.subsMu.Lock()
		m.subs = slices.DeleteFunc(m.subs, func(s *subscription) bool { return s == sub })
		m.subsMu.Unlock()
	}
}

func (m *Membership) dispatch() {
	defer close(m.dispatcherDone)
	for {
		select {
		case <-m.stopped:
			return
		case e := <-m.events:
			memberEvent, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			typ, ok := memberEventTypes[memberEvent.Type]
			if !ok {
				continue
			}
			m.subsMu.Lock()
			subs := slices.Clone(m.subs)
			m.subsMu.Unlock()
			for _, member := range memberEvent.Members {
				event := MemberEvent{Type: typ, Member: toAPIMember(member)}
				for _, sub := range subs {
					if !sub.cancelled.Load() {
						sub.fn(event)
					}
				}
			}
		}
	}
}

// WaitForMasters blocks until at least n alive masters are known (bootstrap-expect) and
// returns them, logging progress every few seconds. It returns ctx.Err() when ctx ends,
// the join's error when the join was abandoned, and ErrShutdown after Shutdown.
func (m *Membership) WaitForMasters(ctx context.Context, n int) ([]api.Member, error) {
	wake := make(chan struct{}, 1)
	cancel := m.Subscribe(func(MemberEvent) {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer cancel()
	progress := time.NewTicker(progressInterval)
	defer progress.Stop()

	joined := m.joined
	logged := false
	for {
		masters := m.Masters()
		if len(masters) >= n {
			return masters, nil
		}
		if !logged {
			m.logMasterProgress(n, masters)
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-m.stopped:
			return nil, ErrShutdown
		case <-joined:
			if m.joinErr != nil {
				return nil, m.joinErr
			}
			joined = nil
		case <-wake:
		case <-progress.C:
			m.logMasterProgress(n, masters)
		}
	}
}

func (m *Membership) logMasterProgress(n int, masters []api.Member) {
	names := make([]string, len(masters))
	for i, master := range masters {
		names[i] = master.Name
	}
	m.logger.Info(fmt.Sprintf("waiting for %d masters, have %d (%s)", n, len(masters), strings.Join(names, ",")))
}

// Leave tells the cluster this node is leaving on purpose (others see it "left", not
// "failed"), then shuts down.
func (m *Membership) Leave() error {
	leaveErr := m.serf.Leave()
	if leaveErr != nil {
		leaveErr = fmt.Errorf("leave gossip: %w", leaveErr)
	}
	return errors.Join(leaveErr, m.Shutdown())
}

// Shutdown stops gossip without telling the cluster (others see this node fail) and stops
// the event callbacks; no callback runs once it returns. A join attempt still dialing
// finishes within memberlist's TCP timeout and then exits without effect, so Shutdown does
// not wait for it. Safe to call more than once.
func (m *Membership) Shutdown() error {
	m.shutdownOnce.Do(func() {
		if m.cancelJoin != nil {
			m.cancelJoin()
		}
		if err := m.serf.Shutdown(); err != nil {
			m.shutdownErr = fmt.Errorf("shut down gossip: %w", err)
		}
		close(m.stopped)
		<-m.dispatcherDone
	})
	return m.shutdownErr
}

// HasRole reports whether member's TagRole lists role.
func HasRole(member api.Member, role string) bool {
	for r := range strings.SplitSeq(member.Tags[TagRole], ",") {
		if strings.TrimSpace(r) == role {
			return true
		}
	}
	return false
}

func toAPIMember(member serf.Member) api.Member {
	tags := make(map[string]string, len(member.Tags))
	maps.Copy(tags, member.Tags)
	return api.Member{
		Name:   member.Name,
		Addr:   member.Addr.String(),
		Port:   int(member.Port),
		Status: member.Status.String(),
		Tags:   tags,
	}
}

// slogWriter carries serf's and memberlist's log.Logger output into slog.
type slogWriter struct {
	logger *slog.Logger
}

func (w slogWriter) Write(p []byte) (int, error) {
	level, msg := parseLogLine(strings.TrimRight(string(p), "\r\n"))
	w.logger.Log(context.Background(), level, msg)
	return len(p), nil
}

var logLevels = map[string]slog.Level{
	"TRACE": slog.LevelDebug,
	"DEBUG": slog.LevelDebug,
	"INFO":  slog.LevelInfo,
	"WARN":  slog.LevelWarn,
	"ERR":   slog.LevelError,
	"ERROR": slog.LevelError,
}

// parseLogLine splits a "[LEVEL] text" line as serf and memberlist write them. Lines without
// a known level are kept whole at info. memberlist's info lines are routine chatter and go
// to debug.
func parseLogLine(line string) (slog.Level, string) {
	level, msg := slog.LevelInfo, line
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if tag, text, ok := strings.Cut(rest, "]"); ok {
			if l, known := logLevels[tag]; known {
				level, msg = l, strings.TrimSpace(text)
			}
		}
	}
	if level == slog.LevelInfo && strings.HasPrefix(msg, "memberlist:") {
		level = slog.LevelDebug
	}
	return level, msg
}

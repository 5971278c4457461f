package network

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The chains of the table. Hooked chains hold only the fixed rules that Open (re)writes;
// portsChain holds one DNAT rule per port mapping, each tagged with its container.
const (
	portsChain = "ports"
	// preroutingChain sends traffic arriving for one of the host's addresses to portsChain.
	preroutingChain = "prerouting"
	// outputChain does the same for traffic the host itself sends to its own addresses.
	outputChain = "output"
	// postroutingChain masquerades: tasks' traffic leaving the bridge, traffic from
	// 127.0.0.0/8 that a DNAT sent to a task, and hairpin traffic from a task to another
	// task's (or its own) mapped port.
	postroutingChain = "postrouting"
	// forwardChain accepts what is routed to and from the bridge.
	forwardChain = "forward"
	// guardChain drops packets from tasks addressed to 127.0.0.0/8, which route_localnet on
	// the bridge would otherwise let tasks send to the host's loopback services.
	guardChain = "guard"
)

// commentPrefix starts the comment that tags a port mapping rule with its container.
const commentPrefix = "container "

// ruleset builds the table's rules for one configuration.
type ruleset struct {
	table  *nftables.Table
	bridge string
	subnet netip.Prefix
}

func newRuleset(table, bridge string, subnet netip.Prefix) ruleset {
	return ruleset{
		table:  &nftables.Table{Name: table, Family: nftables.TableFamilyIPv4},
		bridge: bridge,
		subnet: subnet.Masked(),
	}
}

func (r ruleset) chain(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: r.table}
}

// hooked is the table's base chains with their hooks.
func (r ruleset) hooked() []*nftables.Chain {
	accept := nftables.ChainPolicyAccept
	base := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: r.table, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept}
	}
	return []*nftables.Chain{
		base(guardChain, nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityRaw),
		base(preroutingChain, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest),
		base(outputChain, nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest),
		base(postroutingChain, nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource),
		base(forwardChain, nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter),
	}
}

// install creates the table and its chains if missing and rewrites the fixed rules of the
// hooked chains, in one transaction; the port mapping rules stay.
func (r ruleset) install() error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	conn.AddTable(r.table)
	conn.AddChain(r.chain(portsChain))
	for _, c := range r.hooked() {
		conn.AddChain(c)
		conn.FlushChain(c)
	}
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	toLocal := []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: portsChain},
	}
	rules := map[string][][]expr.Any{
		guardChain: {
			concat(ifname(unix.NFT_META_IIFNAME, expr.CmpOpEq, r.bridge), ipIn(16, loopback), verdict(expr.VerdictDrop)),
		},
		preroutingChain: {toLocal},
		outputChain:     {toLocal},
		postroutingChain: {
			concat(ipIn(12, r.subnet), ifname(unix.NFT_META_OIFNAME, expr.CmpOpNeq, r.bridge), masquerade()),
			concat(ifname(unix.NFT_META_OIFNAME, expr.CmpOpEq, r.bridge), ipIn(12, loopback), masquerade()),
			concat(ifname(unix.NFT_META_OIFNAME, expr.CmpOpEq, r.bridge), ipIn(12, r.subnet), dnatted(), masquerade()),
		},
		forwardChain: {
			concat(ifname(unix.NFT_META_IIFNAME, expr.CmpOpEq, r.bridge), verdict(expr.VerdictAccept)),
			concat(ifname(unix.NFT_META_OIFNAME, expr.CmpOpEq, r.bridge), verdict(expr.VerdictAccept)),
		},
	}
	for _, c := range r.hooked() {
		for _, exprs := range rules[c.Name] {
			conn.AddRule(&nftables.Rule{Table: r.table, Chain: c, Exprs: exprs})
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", r.table.Name, err)
	}
	return nil
}

// remove deletes the table; a missing table is not an error.
func (r ruleset) remove() error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	conn.DelTable(r.table)
	if err := conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete nftables table %s: %w", r.table.Name, err)
	}
	return nil
}

// setMappings replaces the port mapping rules of container with ones forwarding to ip, in
// one transaction; no mappings only removes them. A missing table counts as no rules.
func (r ruleset) setMappings(container string, ip netip.Addr, mappings []PortMapping) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	ports := r.chain(portsChain)
	existing, err := r.rules(conn, ports)
	if err != nil {
		return err
	}
	if len(mappings) == 0 && !r.anyOf(existing, container) {
		return nil
	}
	for _, rule := range existing {
		if ruleContainer(rule) == container {
			if err := conn.DelRule(rule); err != nil {
				return fmt.Errorf("delete port mapping rule: %w", err)
			}
		}
	}
	tag := userdata.AppendString(nil, userdata.TypeComment, commentPrefix+container)
	for _, m := range mappings {
		conn.AddRule(&nftables.Rule{Table: r.table, Chain: ports, Exprs: dnat(ip, m), UserData: tag})
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("port mappings of %s: %w", container, err)
	}
	return nil
}

// rules lists a chain's rules; a missing table has none.
func (r ruleset) rules(conn *nftables.Conn, c *nftables.Chain) ([]*nftables.Rule, error) {
	tables, err := conn.ListTablesOfFamily(r.table.Family)
	if err != nil {
		return nil, fmt.Errorf("list nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == r.table.Name {
			rules, err := conn.GetRules(r.table, c)
			if err != nil {
				return nil, fmt.Errorf("list rules of chain %s: %w", c.Name, err)
			}
			return rules, nil
		}
	}
	return nil, nil
}

func (r ruleset) anyOf(rules []*nftables.Rule, container string) bool {
	for _, rule := range rules {
		if ruleContainer(rule) == container {
			return true
		}
	}
	return false
}

// mappedPorts lists which container maps each host port and protocol, from the rules.
func (r ruleset) mappedPorts() (map[PortMapping]string, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	rules, err := r.rules(conn, r.chain(portsChain))
	if err != nil {
		return nil, err
	}
	out := make(map[PortMapping]string, len(rules))
	for _, rule := range rules {
		if key, ok := mappedPort(rule); ok {
			out[key] = ruleContainer(rule)
		}
	}
	return out, nil
}

// ruleContainer is the container a rule's comment names, or "".
func ruleContainer(rule *nftables.Rule) string {
	comment, _ := userdata.GetString(rule.UserData, userdata.TypeComment)
	id, ok := strings.CutPrefix(comment, commentPrefix)
	if !ok {
		return ""
	}
	return id
}

// mappedPort reads the host port and protocol a dnat rule matches.
func mappedPort(rule *nftables.Rule) (PortMapping, bool) {
	var key PortMapping
	var cmps []*expr.Cmp
	for _, e := range rule.Exprs {
		if c, ok := e.(*expr.Cmp); ok {
			cmps = append(cmps, c)
		}
	}
	if len(cmps) != 2 || len(cmps[0].Data) != 1 || len(cmps[1].Data) != 2 {
		return key, false
	}
	switch cmps[0].Data[0] {
	case TCP.number():
		key.Protocol = TCP
	case UDP.number():
		key.Protocol = UDP
	default:
		return key, false
	}
	key.HostPort = binaryutil.BigEndian.Uint16(cmps[1].Data)
	return key, true
}

// dnat is "meta l4proto P th dport H dnat to IP:C".
func dnat(ip netip.Addr, m PortMapping) []expr.Any {
	addr := ip.As4()
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{m.Protocol.number()}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(m.HostPort)},
		&expr.Immediate{Register: 1, Data: addr[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(m.ContainerPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

// ifname is "iifname/oifname op name".
func ifname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	data := make([]byte, unix.IFNAMSIZ)
	copy(data, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: data},
	}
}

// ipIn is "ip saddr/daddr p" for the IPv4 header field at offset (12 source, 16 destination).
func ipIn(offset uint32, p netip.Prefix) []expr.Any {
	addr := p.Masked().Addr().As4()
	mask := netip.PrefixFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), p.Bits()).Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask[:], Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr[:]},
	}
}

// dnatted is "ct status dnat".
func dnatted() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// ipsDstNAT is conntrack's IPS_DST_NAT status bit.
const ipsDstNAT = 1 << 5

func masquerade() []expr.Any { return []expr.Any{&expr.Masq{}} }

func verdict(kind expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: kind}} }

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

package vipproxy

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// natTable sends the connections to each VIP port to the port of the VIP's address the
// proxy listens on instead, with DNAT rules in an nftables table (family ip) of the
// proxy's own. The VIP ports themselves are then never listened on, so a process
// listening on the same port on all the node's addresses (a task with host networking,
// the lb role's :80) does not clash with a VIP, as it did not with DC/OS's IPVS.
// Connections already made keep their translation (conntrack holds it) whatever the
// table becomes.
type natTable struct {
	table *nftables.Table
}

// The table's chains, both holding the same DNAT rules: output for the connections the
// node makes itself, prerouting for those it routes from its containers.
const (
	natOutputChain     = "output"
	natPreroutingChain = "prerouting"
)

// tcpProtocol is TCP's IANA number, as nftables matches it.
const tcpProtocol = 6

// openNAT makes the table name, empty; one a node that did not stop cleanly left is
// emptied.
func openNAT(name string) (*natTable, error) {
	n := &natTable{table: &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}}
	if err := n.set(nil); err != nil {
		return nil, err
	}
	return n, nil
}

// set makes the table hold one DNAT rule per VIP port of redirects, to the port of the
// same address it maps to, and nothing else: it deletes the table and makes it again in
// one transaction, so that no connection sees it half done.
func (n *natTable) set(redirects map[netip.AddrPort]uint16) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	// Adding the table first makes deleting it succeed when it does not exist.
	conn.AddTable(n.table)
	conn.DelTable(n.table)
	conn.AddTable(n.table)
	accept := nftables.ChainPolicyAccept
	chains := []*nftables.Chain{
		{Name: natOutputChain, Table: n.table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept},
		{Name: natPreroutingChain, Table: n.table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept},
	}
	for _, c := range chains {
		conn.AddChain(c)
		for _, vipPort := range slices.SortedFunc(maps.Keys(redirects), netip.AddrPort.Compare) {
			conn.AddRule(&nftables.Rule{Table: n.table, Chain: c, Exprs: dnatRule(vipPort, redirects[vipPort])})
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", n.table.Name, err)
	}
	return nil
}

// close deletes the table; a table already gone is fine.
func (n *natTable) close() error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	conn.DelTable(n.table)
	if err := conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete nftables table %s: %w", n.table.Name, err)
	}
	return nil
}

// dnatRule is "ip daddr A meta l4proto tcp tcp dport P dnat to A:port" for the VIP port A:P.
func dnatRule(vipPort netip.AddrPort, port uint16) []expr.Any {
	ip := vipPort.Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip[:]},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{tcpProtocol}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(vipPort.Port())},
		&expr.Immediate{Register: 1, Data: ip[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

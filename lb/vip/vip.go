// Package vip owns DC/OS's named virtual IPs: it reads the VIP_<n> labels of the ports
// tasks publish in their DiscoveryInfo ("/myapp:80", or an address, "198.18.1.200:80"),
// names them as DC/OS did (myapp.marathon.l4lb.thisdcos.directory), gives every name an
// address that each node computes alike from the set of names alone (Allocate), and
// keeps the table of every VIP port's backends (Set, Table) that the DNS servers answer
// from and the L4 balancers balance with.
package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Zone is the DNS zone of the named VIPs: <name>.<framework>.l4lb.thisdcos.directory.
const Zone = "l4lb.thisdcos.directory"

// DefaultRange is where named VIPs get their addresses: DC/OS's range, which is not
// routed on the internet's side of any cluster that matters here and is out of the way
// of the private ranges clusters run on.
const DefaultRange = "11.0.0.0/8"

// LabelPrefix starts the key of a port label that declares a VIP (VIP_0, VIP_1, …).
const LabelPrefix = "VIP_"

// maxLabel is the longest DNS label (RFC 1035); maxName the longest name, without its
// final dot.
const (
	maxLabel = 63
	maxName  = 253
)

// Label is the value of a VIP_<n> label.
type Label struct {
	// Name is a named VIP's name as DNS labels, lowercase, without the slashes
	// ("/grp/web" → "grpweb", "/api.hdfs" → "api.hdfs"); "" for an address VIP.
	Name string
	// Addr is an address VIP's address; invalid for a named VIP.
	Addr netip.Addr
	// Port is the VIP's port, the one clients connect to.
	Port uint16
}

// ParseLabel reads a VIP_<n> label's value: "/name:port" (the slash is optional) or
// "IPv4:port".
func ParseLabel(value string) (Label, error) {
	i := strings.LastIndexByte(value, ':')
	if i < 0 {
		return Label{}, fmt.Errorf("VIP %q: want /name:port or address:port", value)
	}
	host, portText := value[:i], value[i+1:]
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return Label{}, fmt.Errorf("VIP %q: port %q is not 1-65535", value, portText)
	}
	if addr, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		if !addr.Is4() {
			return Label{}, fmt.Errorf("VIP %q: only IPv4 addresses are VIPs", value)
		}
		return Label{Addr: addr, Port: uint16(port)}, nil
	}
	name, err := NormalName(host)
	if err != nil {
		return Label{}, fmt.Errorf("VIP %q: %w", value, err)
	}
	return Label{Name: name, Port: uint16(port)}, nil
}

// NormalName makes a VIP name DNS labels: slashes dropped (as DC/OS did), each
// dot-separated part lowercase with anything but letters and digits as '-', empty parts
// dropped ("/grp/web" → "grpweb", "/API.hdfs" → "api.hdfs").
func NormalName(name string) (string, error) {
	var labels []string
	for part := range strings.SplitSeq(strings.ReplaceAll(name, "/", ""), ".") {
		if l := dnsLabel(part); l != "" {
			labels = append(labels, l)
		}
	}
	if len(labels) == 0 {
		return "", errors.New("the name has no letters or digits")
	}
	return strings.Join(labels, "."), nil
}

// dnsLabel turns s into an RFC 1123 label: lowercase, every character other than an
// ASCII letter or digit a '-', no '-' at either end, at most maxLabel characters.
func dnsLabel(s string) string {
	b := make([]byte, 0, min(len(s), maxLabel))
	for _, r := range s {
		if len(b) == maxLabel {
			break
		}
		c := byte('-')
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			c = byte(r)
		case r >= 'A' && r <= 'Z':
			c = byte(r) + 'a' - 'A'
		}
		if c == '-' && len(b) == 0 {
			continue
		}
		b = append(b, c)
	}
	return strings.TrimRight(string(b), "-")
}

// Name is the name a named VIP is allocated and served under, without the zone: the
// label's name and the framework's name as a label ("grpweb.marathon"). It fails when the
// framework's name has no letters or digits or the whole name, zone included, is too
// long for DNS.
func Name(labelName, framework string) (string, error) {
	fw := dnsLabel(framework)
	if fw == "" {
		return "", fmt.Errorf("framework name %q has no letters or digits", framework)
	}
	name := labelName + "." + fw
	if len(name)+1+len(Zone) > maxName {
		return "", fmt.Errorf("%s.%s is longer than %d characters", name, Zone, maxName)
	}
	return name, nil
}

// FQDN is the fully qualified DNS name of a VIP named name (see Name).
func FQDN(name string) string { return name + "." + Zone + "." }

// ParseRange reads the range named VIPs get their addresses from: an IPv4 prefix of at
// least 4 addresses (its network and broadcast addresses are never given out).
func ParseRange(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("VIP range %q: %w", s, err)
	}
	if !p.Addr().Is4() || p.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("VIP range %q: want an IPv4 prefix of /30 or larger, like %s", s, DefaultRange)
	}
	return p.Masked(), nil
}

package lb

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Problem is a label (or app) the load balancer could not honour: it is reported on the
// admin server and in the log, and never stops the other apps from being served.
type Problem struct {
	// App is the Marathon app id.
	App string `json:"app"`
	// Label is the label's key, or "" for a problem of the app as a whole.
	Label string `json:"label,omitempty"`
	// Why says what is wrong and what the load balancer did about it.
	Why string `json:"why"`
}

func (p Problem) String() string {
	if p.Label == "" {
		return p.App + ": " + p.Why
	}
	return p.App + ": " + p.Label + ": " + p.Why
}

// Modes of a service.
const (
	ModeTCP  = "tcp"
	ModeHTTP = "http"
)

// Balance algorithms.
const (
	BalanceRoundRobin = "roundrobin"
	BalanceLeastConn  = "leastconn"
	BalanceSource     = "source"
)

// Auth is HTTP basic authentication as marathon-lb's HAPROXY_{n}_AUTH gives it:
// "realm:user:password-hash", the hash in crypt(3)'s SHA-256 ($5$) or SHA-512 ($6$) form,
// as HAProxy's userlist took it.
type Auth struct {
	Realm        string `json:"realm"`
	User         string `json:"user"`
	PasswordHash string `json:"passwordHash"`
}

// appLabels are an app's HAPROXY_* labels, parsed.
type appLabels struct {
	groups          []string // HAPROXY_GROUP
	deploymentGroup string
	altPort         int
	colour          string
	targetInstances int
	startedAt       string
	ports           map[int]*portLabels
}

// portLabels are the HAPROXY_{n}_* labels of one port; nil fields were not given.
type portLabels struct {
	groups          []string
	mode            string
	port            int
	vhosts          []string
	path            string
	balance         string
	sticky          *bool
	weight          int
	auth            *Auth
	bindAddr        string
	enabled         *bool
	redirectToHTTPS *bool
	sslCerts        []string
	useHSTS         *bool
	allowedNets     []netip.Prefix
	// broken is set when a label of the port is malformed: the port is not served rather
	// than served differently from what its labels ask (an AUTH that does not parse must
	// not leave the app open).
	broken bool
}

// labelPrefix starts every label the load balancer reads.
const labelPrefix = "HAPROXY_"

// unsupportedPortLabels are marathon-lb's per-port labels that shaped HAProxy's
// configuration text; Atoll has no HAProxy configuration, so they are reported.
var unsupportedPortLabels = map[string]string{
	"BACKEND_HEALTHCHECK_PORT_INDEX": "the load balancer runs no health checks of its own: Marathon's health results and passive ejection decide",
	"SSL_CERT_VERIFY":                "TLS towards backends is not supported",
	"HTTP_BACKEND_PROXYPASS_PATH":    "path rewriting is not supported",
	"HTTP_BACKEND_REVPROXY_PATH":     "path rewriting is not supported",
	"HTTP_BACKEND_REDIR":             "backend redirects are not supported",
}

// parseLabels reads an app's HAPROXY_* labels for an app with nports ports. Problems name
// the label; a malformed per-port label marks its port broken.
func parseLabels(appID string, labels map[string]string, nports int) (appLabels, []Problem) {
	out := appLabels{ports: map[int]*portLabels{}}
	var problems []Problem
	report := func(key, format string, args ...any) {
		problems = append(problems, Problem{App: appID, Label: key, Why: fmt.Sprintf(format, args...)})
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		if strings.HasPrefix(k, labelPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, key := range keys {
		value := labels[key]
		name := strings.TrimPrefix(key, labelPrefix)
		switch name {
		case "GROUP":
			out.groups = splitList(value)
			continue
		case "DEPLOYMENT_GROUP":
			out.deploymentGroup = value
			continue
		case "DEPLOYMENT_ALT_PORT":
			p, err := parsePort(value)
			if err != nil {
				report(key, "%v; ignored", err)
			}
			out.altPort = p
			continue
		case "DEPLOYMENT_COLOUR":
			out.colour = value
			continue
		case "DEPLOYMENT_TARGET_INSTANCES":
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 {
				report(key, "%q is not a number of instances; ignored", value)
				n = 0
			}
			out.targetInstances = n
			continue
		case "DEPLOYMENT_STARTED_AT":
			out.startedAt = value
			continue
		case "APP_ID":
			// marathon-lb's zdd script names the original app with it; nothing to route.
			continue
		}
		index, field, ok := splitPortLabel(name)
		if !ok {
			report(key, "unknown or unsupported label; ignored")
			continue
		}
		if index >= nports {
			report(key, "the app has %d ports, so port index %d does not exist; ignored", nports, index)
			continue
		}
		pl := out.ports[index]
		if pl == nil {
			pl = &portLabels{}
			out.ports[index] = pl
		}
		if why, ok := unsupportedPortLabels[field]; ok {
			report(key, "unsupported: %s; ignored", why)
			continue
		}
		if err := pl.set(field, value); err != nil {
			if err == errUnknownLabel {
				report(key, "unknown or unsupported label; ignored")
				continue
			}
			pl.broken = true
			report(key, "%v; port %d is not served", err, index)
		}
	}
	return out, problems
}

// errUnknownLabel is set's answer for a field it does not know.
var errUnknownLabel = fmt.Errorf("unknown label")

// set applies one HAPROXY_{n}_<field> label.
func (pl *portLabels) set(field, value string) error {
	var err error
	switch field {
	case "GROUP":
		pl.groups = splitList(value)
	case "MODE":
		switch m := strings.ToLower(strings.TrimSpace(value)); m {
		case ModeTCP, ModeHTTP:
			pl.mode = m
		default:
			return fmt.Errorf("mode %q is neither tcp nor http", value)
		}
	case "PORT":
		pl.port, err = parsePort(value)
	case "VHOST":
		pl.vhosts, err = parseVHosts(value)
	case "PATH":
		if !strings.HasPrefix(value, "/") || strings.ContainsAny(value, " \t\r\n?#") {
			return fmt.Errorf("path %q is not an absolute URL path", value)
		}
		pl.path = value
	case "BALANCE":
		switch b := strings.ToLower(strings.TrimSpace(value)); b {
		case BalanceRoundRobin, BalanceLeastConn, BalanceSource:
			pl.balance = b
		default:
			return fmt.Errorf("balance %q is not roundrobin, leastconn or source", value)
		}
	case "STICKY":
		pl.sticky, err = parseBool(value)
	case "BACKEND_WEIGHT":
		pl.weight, err = strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("weight %q is not an integer", value)
		}
	case "AUTH":
		pl.auth, err = parseAuth(value)
	case "BIND_ADDR":
		addr, perr := netip.ParseAddr(strings.TrimSpace(value))
		if perr != nil {
			return fmt.Errorf("bind address %q is not an IP address", value)
		}
		pl.bindAddr = addr.String()
	case "ENABLED":
		pl.enabled, err = parseBool(value)
	case "REDIRECT_TO_HTTPS":
		pl.redirectToHTTPS, err = parseBool(value)
	case "SSL_CERT":
		pl.sslCerts = splitList(value)
	case "USE_HSTS":
		pl.useHSTS, err = parseBool(value)
	case "BACKEND_NETWORK_ALLOWED_ACL":
		for _, s := range strings.Fields(strings.ReplaceAll(value, ",", " ")) {
			prefix, perr := parsePrefix(s)
			if perr != nil {
				return perr
			}
			pl.allowedNets = append(pl.allowedNets, prefix)
		}
		if len(pl.allowedNets) == 0 {
			return fmt.Errorf("no network in %q", value)
		}
	default:
		return errUnknownLabel
	}
	return err
}

// splitPortLabel splits "3_VHOST" into 3 and "VHOST".
func splitPortLabel(name string) (int, string, bool) {
	num, field, ok := strings.Cut(name, "_")
	if !ok || num == "" || field == "" || len(num) > 4 {
		return 0, "", false
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, "", false
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0, "", false
	}
	return n, field, true
}

func splitList(value string) []string {
	var out []string
	for s := range strings.SplitSeq(value, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parsePort(value string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSpace(value))
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %q is not in 1-65535", value)
	}
	return p, nil
}

// parseBool reads a boolean as marathon-lb did: true/false, yes/no, 1/0, t/f, y/n in any case.
func parseBool(value string) (*bool, error) {
	var b bool
	switch strings.ToLower(strings.TrimSpace(value)) {
	case "true", "t", "yes", "y", "1":
		b = true
	case "false", "f", "no", "n", "0":
		b = false
	default:
		return nil, fmt.Errorf("%q is not a boolean", value)
	}
	return &b, nil
}

// parseVHosts reads a comma list of host names, lower-cased.
func parseVHosts(value string) ([]string, error) {
	hosts := splitList(value)
	if len(hosts) == 0 {
		return nil, fmt.Errorf("no host name in %q", value)
	}
	for i, h := range hosts {
		h = strings.ToLower(h)
		if !validHostname(h) {
			return nil, fmt.Errorf("virtual host %q is not a host name", hosts[i])
		}
		hosts[i] = h
	}
	return hosts, nil
}

func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// parseAuth reads "realm:user:hash"; the realm may not contain ':' and the hash is a
// crypt(3) SHA-256 or SHA-512 hash.
func parseAuth(value string) (*Auth, error) {
	realm, rest, ok1 := strings.Cut(value, ":")
	user, hash, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || realm == "" || user == "" || hash == "" {
		return nil, fmt.Errorf("auth is not realm:user:password-hash")
	}
	if strings.ContainsAny(realm, "\"\r\n") {
		return nil, fmt.Errorf("auth realm %q may not hold quotes or line breaks", realm)
	}
	if _, err := parseShaCrypt(hash); err != nil {
		return nil, fmt.Errorf("auth password hash: %w", err)
	}
	return &Auth{Realm: realm, User: user, PasswordHash: hash}, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("network %q is not a CIDR", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("network %q is not a CIDR or address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// hostOnly strips a port from a Host header and lower-cases it.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

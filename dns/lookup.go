package dns

import (
	"context"
	"fmt"

	mdns "github.com/miekg/dns"
)

// Lookup asks the DNS server at server (host:port) for name's records of type qtype, over
// UDP with EDNS0 and again over TCP when the answer was truncated, as a stub resolver
// does. ctx bounds the whole exchange.
func Lookup(ctx context.Context, server, name string, qtype uint16) (*mdns.Msg, error) {
	req := new(mdns.Msg)
	req.SetQuestion(mdns.Fqdn(name), qtype)
	req.SetEdns0(defaultUDPSize, false)
	resp, _, err := (&mdns.Client{Net: "udp"}).ExchangeContext(ctx, req, server)
	if err == nil && resp.Truncated {
		resp, _, err = (&mdns.Client{Net: "tcp"}).ExchangeContext(ctx, req, server)
	}
	if err != nil {
		return nil, fmt.Errorf("ask %s for %s %s: %w", server, req.Question[0].Name, mdns.TypeToString[qtype], err)
	}
	return resp, nil
}

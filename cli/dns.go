package cli

import (
	"context"
	"fmt"
	"net"
	"strings"

	mdns "github.com/miekg/dns"
	"github.com/spf13/cobra"

	"github.com/atoll/atoll/dns"
)

// defaultDNSServer is where `atoll up` answers DNS.
const defaultDNSServer = "127.0.0.1:8053"

func (a *app) dnsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Query the cluster's DNS",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
	cmd.AddCommand(a.dnsLookupCmd())
	return cmd
}

// dnsRecord is one answer as `atoll dns lookup -o json` prints it.
type dnsRecord struct {
	Name string `json:"name"`
	Type string `json:"type"`
	TTL  uint32 `json:"ttl"`
	Data string `json:"data"`
}

func (a *app) dnsLookupCmd() *cobra.Command {
	var server, qtype string
	cmd := &cobra.Command{
		Use:   "lookup NAME",
		Short: "Ask a node's DNS server for a name's records",
		Long: "Ask a node's DNS server for a name's records, as a resolver would (UDP, then TCP when the\n" +
			"answer was truncated), e.g. 'atoll dns lookup web.marathon.mesos' or\n" +
			"'atoll dns lookup --type SRV _web._tcp.marathon.mesos'; an IP address asks for its PTR record.\n" +
			"A name that does not exist, or any answer other than NOERROR, exits 1.",
		Args: oneArg("name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			rrtype, ok := mdns.StringToType[strings.ToUpper(qtype)]
			if !ok {
				return usagef("--type %q: not a DNS record type", qtype)
			}
			name := args[0]
			if net.ParseIP(name) != nil {
				// An address asks for its name: the PTR record of its reverse name.
				name, _ = mdns.ReverseAddr(name)
				if !cmd.Flags().Changed("type") {
					rrtype = mdns.TypePTR
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			resp, err := dns.Lookup(ctx, server, name, rrtype)
			if err != nil {
				return err
			}
			records := []dnsRecord{}
			for _, rr := range resp.Answer {
				h := rr.Header()
				records = append(records, dnsRecord{Name: h.Name, Type: mdns.TypeToString[h.Rrtype], TTL: h.Ttl,
					Data: strings.TrimPrefix(rr.String(), h.String())})
			}
			if err := a.printDNS(records); err != nil {
				return err
			}
			if resp.Rcode != mdns.RcodeSuccess {
				return fmt.Errorf("%s %s: %s", mdns.Fqdn(name), mdns.TypeToString[rrtype], mdns.RcodeToString[resp.Rcode])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&server, "server", defaultDNSServer, "DNS server to ask (host:port)")
	cmd.Flags().StringVarP(&qtype, "type", "t", "A", "record type: A, AAAA, SRV, PTR, SOA, NS, …")
	return cmd
}

func (a *app) printDNS(records []dnsRecord) error {
	if a.output == "json" {
		return a.printJSON(records)
	}
	if len(records) == 0 {
		fmt.Fprintln(a.stdout, "no records")
		return nil
	}
	tw := a.table("NAME", "TTL", "TYPE", "DATA")
	for _, r := range records {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Name, r.TTL, r.Type, r.Data)
	}
	return tw.Flush()
}

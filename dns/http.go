package dns

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"
)

// Handler serves Mesos-DNS's HTTP API from the records being answered:
//
//	GET /v1/version            {"Service","URL","Version"}
//	GET /v1/config             the configuration, with Mesos-DNS's field names
//	GET /v1/hosts/{host}       [{"host","ip"}]: the A and AAAA records of host
//	GET /v1/services/{service} [{"service","host","ip","port"}]: the SRV records of service
//	GET /v1/enumerate          {"frameworks":[{"frameworkname","tasks":[{"name","id","records"}]}]}
//
// Names are case-insensitive and may omit the final dot. An unknown name gives [].
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/version", s.httpVersion)
	mux.HandleFunc("GET /v1/config", s.httpConfig)
	mux.HandleFunc("GET /v1/hosts/{host}", s.httpHosts)
	mux.HandleFunc("GET /v1/services/{service}", s.httpServices)
	mux.HandleFunc("GET /v1/enumerate", s.httpEnumerate)
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// VersionInfo answers /v1/version.
type VersionInfo struct {
	Service string `json:"Service"`
	URL     string `json:"URL"`
	Version string `json:"Version"`
}

func (s *Server) httpVersion(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, VersionInfo{Service: "atoll-dns", URL: "/v1", Version: s.cfg.Version})
}

// ConfigInfo answers /v1/config, with Mesos-DNS's field names. RefreshSeconds is 0:
// records follow the masters' event stream instead of a poll.
type ConfigInfo struct {
	Domain         string   `json:"Domain"`
	TTL            uint32   `json:"TTL"`
	Listener       string   `json:"Listener"`
	Port           uint16   `json:"Port"`
	Resolvers      []string `json:"Resolvers"`
	Timeout        int      `json:"Timeout"`
	RecurseOn      bool     `json:"RecurseOn"`
	RefreshSeconds int      `json:"RefreshSeconds"`
	IPSources      []string `json:"IPSources"`
	SOAMname       string   `json:"SOAMname"`
	SOARname       string   `json:"SOARname"`
	SOARefresh     uint32   `json:"SOARefresh"`
	SOARetry       uint32   `json:"SOARetry"`
	SOAExpire      uint32   `json:"SOAExpire"`
	SOAMinttl      uint32   `json:"SOAMinttl"`
	// Stale is set while no master's events are followed (an Atoll addition).
	Stale bool `json:"Stale"`
}

func (s *Server) httpConfig(w http.ResponseWriter, _ *http.Request) {
	resolvers := s.upstreams
	if resolvers == nil {
		resolvers = []string{}
	}
	writeJSON(w, ConfigInfo{
		Domain:     strings.TrimSuffix(s.domain, "."),
		TTL:        s.cfg.TTL,
		Listener:   s.addr.Addr().String(),
		Port:       s.addr.Port(),
		Resolvers:  resolvers,
		Timeout:    int(s.cfg.UpstreamTimeout.Seconds()),
		RecurseOn:  len(s.upstreams) > 0,
		IPSources:  []string{"netinfo", "host"},
		SOAMname:   "ns1." + s.domain,
		SOARname:   "root.ns1." + s.domain,
		SOARefresh: soaRefresh, SOARetry: soaRetry, SOAExpire: soaExpire, SOAMinttl: soaMinTTL,
		Stale: s.Stale(),
	})
}

// HostRecord is one address of a host (/v1/hosts).
type HostRecord struct {
	Host string `json:"host"`
	IP   string `json:"ip"`
}

func (s *Server) httpHosts(w http.ResponseWriter, r *http.Request) {
	t := s.table.Load()
	host := mdns.Fqdn(strings.ToLower(r.PathValue("host")))
	out := []HostRecord{}
	if set := t.lookup(host); set != nil {
		for _, rr := range set.addrs() {
			out = append(out, HostRecord{Host: host, IP: addrOf(rr)})
		}
	}
	writeJSON(w, out)
}

// ServiceRecord is one instance of a service (/v1/services); Port is a string, as in
// Mesos-DNS.
type ServiceRecord struct {
	Service string `json:"service"`
	Host    string `json:"host"`
	IP      string `json:"ip"`
	Port    string `json:"port"`
}

func (s *Server) httpServices(w http.ResponseWriter, r *http.Request) {
	t := s.table.Load()
	service := mdns.Fqdn(strings.ToLower(r.PathValue("service")))
	out := []ServiceRecord{}
	if set := t.lookup(service); set != nil {
		for _, rr := range set.records(mdns.TypeSRV) {
			srv := rr.(*mdns.SRV)
			port := strconv.Itoa(int(srv.Port))
			var addrs []mdns.RR
			if target := t.lookup(srv.Target); target != nil {
				addrs = target.addrs()
			}
			if len(addrs) == 0 {
				out = append(out, ServiceRecord{Service: service, Host: srv.Target, Port: port})
			}
			for _, a := range addrs {
				out = append(out, ServiceRecord{Service: service, Host: srv.Target, IP: addrOf(a), Port: port})
			}
		}
	}
	writeJSON(w, out)
}

// Enumeration answers /v1/enumerate: every published task's records by framework.
type Enumeration struct {
	Frameworks []EnumFramework `json:"frameworks"`
}

// EnumFramework is one framework's tasks.
type EnumFramework struct {
	Name  string     `json:"frameworkname"`
	Tasks []EnumTask `json:"tasks"`
}

// EnumTask is one task's records.
type EnumTask struct {
	Name    string       `json:"name"`
	ID      string       `json:"id"`
	Records []EnumRecord `json:"records"`
}

// EnumRecord is one record: Host is the address (A, AAAA), "target:port" (SRV) or the
// name pointed to (PTR).
type EnumRecord struct {
	Name  string `json:"name"`
	Host  string `json:"host"`
	RType string `json:"rtype"`
}

func (s *Server) httpEnumerate(w http.ResponseWriter, _ *http.Request) {
	out := Enumeration{Frameworks: []EnumFramework{}}
	for _, tr := range s.Records().Tasks {
		if n := len(out.Frameworks); n == 0 || out.Frameworks[n-1].Name != tr.Framework {
			out.Frameworks = append(out.Frameworks, EnumFramework{Name: tr.Framework, Tasks: []EnumTask{}})
		}
		task := EnumTask{Name: tr.Name, ID: tr.ID, Records: []EnumRecord{}}
		for _, rr := range tr.RRs {
			h := rr.Header()
			task.Records = append(task.Records, EnumRecord{Name: h.Name, Host: rdata(rr), RType: mdns.TypeToString[h.Rrtype]})
		}
		fw := &out.Frameworks[len(out.Frameworks)-1]
		fw.Tasks = append(fw.Tasks, task)
	}
	writeJSON(w, out)
}

func addrOf(rr mdns.RR) string {
	switch rr := rr.(type) {
	case *mdns.A:
		return rr.A.String()
	case *mdns.AAAA:
		return rr.AAAA.String()
	}
	return ""
}

func rdata(rr mdns.RR) string {
	switch rr := rr.(type) {
	case *mdns.SRV:
		return rr.Target + ":" + strconv.Itoa(int(rr.Port))
	case *mdns.PTR:
		return rr.Ptr
	}
	return addrOf(rr)
}

package lb

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// csvColumns are the first columns of HAProxy's "show stat" CSV, in its order, so that
// dashboards reading marathon-lb's /haproxy?stats;csv read Atoll's.
var csvColumns = []string{
	"pxname", "svname", "qcur", "qmax", "scur", "smax", "slim", "stot", "bin", "bout",
	"dreq", "dresp", "ereq", "econ", "eresp", "wretr", "wredis", "status", "weight", "act",
	"bck", "chkfail", "chkdown", "lastchg", "downtime", "qlimit", "pid", "iid", "sid", "throttle",
	"lbtot", "tracked", "type", "rate", "rate_lim", "rate_max", "check_status", "check_code", "check_duration", "hrsp_1xx",
	"hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other", "hanafail", "req_rate", "req_rate_max", "req_tot", "cli_abrt",
	"srv_abrt",
}

// AdminHandler serves marathon-lb's admin endpoints (its port 9090):
//
//	/_haproxy_health_check   200 while the server runs
//	/haproxy?stats           statistics as HTML; /haproxy?stats;csv as HAProxy's CSV
//	/_haproxy_getvhostmap    "vhost backend" lines
//	/_haproxy_getappmap      "app-id backend" lines (what port 9091 routes)
//	/_haproxy_getconfig      the routing table as JSON
//	/_atoll_problems         labels and apps that could not be honoured, as JSON
//	/metrics                 Prometheus metrics from gatherer (when not nil)
func (s *Server) AdminHandler(gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_haproxy_health_check", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body><h1>200 OK</h1>\nService ready.\n</body></html>\n")
	})
	mux.HandleFunc("GET /haproxy", s.serveStats)
	mux.HandleFunc("GET /_haproxy_getvhostmap", func(w http.ResponseWriter, r *http.Request) {
		var lines []string
		for _, svc := range s.routes.Load().services {
			if svc.def.Mode != ModeHTTP {
				continue
			}
			for _, h := range svc.def.VHosts {
				lines = append(lines, h+svc.def.Path+" "+svc.def.Name)
			}
		}
		writeLines(w, lines)
	})
	mux.HandleFunc("GET /_haproxy_getappmap", func(w http.ResponseWriter, r *http.Request) {
		var lines []string
		for id, svc := range s.routes.Load().appIDs {
			lines = append(lines, id+" "+svc.def.Name)
		}
		writeLines(w, lines)
	})
	mux.HandleFunc("GET /_haproxy_getconfig", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.Table())
	})
	mux.HandleFunc("GET /_atoll_problems", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.Problems())
	})
	if gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}

func writeLines(w http.ResponseWriter, lines []string) {
	slices.Sort(lines)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// statsRows are the stats in HAProxy's shape: per service a FRONTEND row, a row per
// server (backend task) and a BACKEND row.
func (s *Server) statsRows() []map[string]string {
	var rows []map[string]string
	now := time.Now().UnixNano()
	for iid, svc := range s.routes.Load().services {
		st := svc.stats
		base := func(svname, typ string) map[string]string {
			return map[string]string{"pxname": svc.def.Name, "svname": svname, "pid": "1", "iid": strconv.Itoa(iid + 1), "type": typ}
		}
		counts := func(row map[string]string, active int64, sessions, in, out uint64, responses *[6]atomic.Uint64) {
			row["scur"] = strconv.FormatInt(active, 10)
			row["stot"] = strconv.FormatUint(sessions, 10)
			row["bin"] = strconv.FormatUint(in, 10)
			row["bout"] = strconv.FormatUint(out, 10)
			if svc.def.Mode == ModeHTTP {
				for i, col := range []string{"hrsp_other", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx"} {
					row[col] = strconv.FormatUint(responses[i].Load(), 10)
				}
			}
		}
		fe := base("FRONTEND", "0")
		counts(fe, st.active.Load(), st.sessions.Load(), st.bytesIn.Load(), st.bytesOut.Load(), &st.responses)
		fe["status"] = "OPEN"
		fe["dreq"] = strconv.FormatUint(st.denied.Load(), 10)
		fe["ereq"] = "0"
		if svc.def.Mode == ModeHTTP {
			fe["req_tot"] = fe["stot"]
		}
		rows = append(rows, fe)
		up := 0
		var lbtot, econ uint64
		for sid, b := range svc.backends {
			row := base(strings.NewReplacer(".", "_", ":", "_").Replace(b.addr), "2")
			counts(row, b.active.Load(), b.sessions.Load(), b.bytesIn.Load(), b.bytesOut.Load(), &b.responses)
			row["sid"] = strconv.Itoa(sid + 1)
			row["econ"] = strconv.FormatUint(b.failures.Load(), 10)
			row["lbtot"] = row["stot"]
			row["status"], row["weight"], row["act"], row["bck"] = "UP", "1", "1", "0"
			if b.ejected(now) {
				row["status"] = "DOWN"
			} else {
				up++
			}
			lbtot += b.sessions.Load()
			econ += b.failures.Load()
			rows = append(rows, row)
		}
		be := base("BACKEND", "1")
		counts(be, st.active.Load(), st.sessions.Load(), st.bytesIn.Load(), st.bytesOut.Load(), &st.responses)
		be["status"] = "UP"
		if up == 0 {
			be["status"] = "DOWN"
		}
		be["weight"], be["act"], be["bck"] = strconv.Itoa(up), strconv.Itoa(up), "0"
		be["lbtot"] = strconv.FormatUint(lbtot, 10)
		be["econ"] = strconv.FormatUint(econ, 10)
		be["dreq"] = fe["dreq"]
		rows = append(rows, be)
	}
	return rows
}

// statsPageHead opens the HTML stats page; writeStatsPage fills in the rest. The page is
// written out rather than through html/template: a template executed anywhere in the
// binary keeps every exported method of every type in it (the linker cannot tell which a
// template will call), about a sixth of the binary's size.
const statsPageHead = `<!DOCTYPE html>
<html><head><title>Statistics Report for Atoll lb</title>
<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}th{background:#ddd}tr.DOWN{background:#f99}</style>
</head><body><h1>Statistics Report for Atoll lb</h1>`

// writeStatsPage writes the HTML stats page of group's rows, every text escaped.
func writeStatsPage(sb *strings.Builder, group string, rows []map[string]string) {
	sb.WriteString(statsPageHead)
	sb.WriteString("<p>group " + html.EscapeString(group) + "</p>\n<table><tr>")
	for _, col := range csvColumns {
		sb.WriteString("<th>" + html.EscapeString(col) + "</th>")
	}
	sb.WriteString("</tr>\n")
	for _, row := range rows {
		sb.WriteString(`<tr class="` + html.EscapeString(row["status"]) + `">`)
		for _, col := range csvColumns {
			sb.WriteString("<td>" + html.EscapeString(row[col]) + "</td>")
		}
		sb.WriteString("</tr>\n")
	}
	sb.WriteString("</table></body></html>\n")
}

// serveStats serves /haproxy?stats (HTML) and /haproxy?stats;csv.
func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.RawQuery
	if !strings.HasPrefix(q, "stats") {
		http.NotFound(w, r)
		return
	}
	rows := s.statsRows()
	if strings.HasPrefix(q, "stats;csv") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		var sb strings.Builder
		sb.WriteString("# " + strings.Join(csvColumns, ",") + ",\n")
		for _, row := range rows {
			for _, col := range csvColumns {
				sb.WriteString(row[col])
				sb.WriteByte(',')
			}
			sb.WriteByte('\n')
		}
		_, _ = w.Write([]byte(sb.String()))
		return
	}
	var sb strings.Builder
	writeStatsPage(&sb, s.Table().Group, rows)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(sb.String()))
}

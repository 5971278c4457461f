# shellcheck shell=sh disable=SC2154 # work and pids are the sourcing script's
# What the load balancer benchmarks (lb.sh, lbswap.sh) set up alike, sourced by them: the
# nginx backend and HAProxy's L7 service, so that both compare Atoll with the same peer.

# bench_nginx PORT...: Debian's nginx serving $work/www on each loopback PORT, with its own
# config in $work: 2 workers, no access log, keep-alive connections that last. www gets a
# 612-byte index.html beside what the caller put there. Sets nginx_pid and adds it to pids.
bench_nginx() {
	chmod 755 "$work"
	mkdir -p "$work/www" "$work/nginx"
	head -c 612 /dev/zero | tr '\0' 'a' >"$work/www/index.html"
	chmod -R a+rX "$work/www"
	listen=""
	for port in "$@"; do
		listen="$listen	listen 127.0.0.1:$port;
	"
	done
	cat >"$work/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $work/nginx;
	proxy_temp_path $work/nginx;
	fastcgi_temp_path $work/nginx;
	uwsgi_temp_path $work/nginx;
	scgi_temp_path $work/nginx;
	keepalive_requests 100000;
	keepalive_timeout 75s;
	server {
	$listen	root $work/www;
	}
}
CONF
	nginx -c "$work/nginx.conf" -e "$work/nginx-error.log" &
	nginx_pid=$!
	pids="$pids $nginx_pid"
}

# haproxy_l7 PORT [LINE]: HAProxy's config, on stdout, with the L7 service on $haproxy_http
# sending to nginx on PORT (option forwardfor, as marathon-lb's; http-reuse always),
# HAPROXY_THREADS threads (default: the core count) and LINE added to its global section.
haproxy_l7() {
	cat <<CONF
global
	nbthread ${HAPROXY_THREADS:-$(nproc)}
	maxconn 8000
CONF
	[ -z "${2:-}" ] || printf '\t%s\n' "$2"
	cat <<CONF
defaults
	timeout connect 5s
	timeout client 30s
	timeout server 30s
	timeout http-keep-alive 60s
frontend l7
	mode http
	bind 127.0.0.1:$haproxy_http
	default_backend web
backend web
	mode http
	option forwardfor
	http-reuse always
	server nginx 127.0.0.1:$1
CONF
}

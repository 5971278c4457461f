package pki

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSplitTLS: one port serves HTTPS and plain HTTP, each to its own server; closing
// one side closes the port.
func TestSplitTLS(t *testing.T) {
	ca := newTestCA(t, "cluster")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsLn, plainLn := SplitTLS(ln)
	serve := func(ln net.Listener, body string) chan error {
		done := make(chan error, 1)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, body+" "+r.URL.Path)
		}), ReadHeaderTimeout: 10 * time.Second}
		go func() { done <- srv.Serve(ln) }()
		return done
	}
	tlsDone := serve(tls.NewListener(tlsLn, ServerConfig(validCert(t, ca, "m1", RoleMaster), ca.Pool())), "tls")
	plainDone := serve(plainLn, "plain")

	addr := ln.Addr().String()
	secure := &http.Client{Transport: &http.Transport{TLSClientConfig: ClientConfig(nil, ca.Pool(), RoleMaster)}}
	defer secure.CloseIdleConnections()
	for _, tt := range []struct {
		client *http.Client
		url    string
		want   string
	}{
		{secure, "https://" + addr + "/a", "tls /a"},
		{http.DefaultClient, "http://" + addr + "/install.sh", "plain /install.sh"},
		{secure, "https://" + addr + "/b", "tls /b"},
	} {
		resp, err := tt.client.Get(tt.url)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tt.want {
			t.Fatalf("GET %s: %q, want %q", tt.url, body, tt.want)
		}
	}

	// A connection that closes before its first byte goes to neither server.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()

	if err := tlsLn.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for name, done := range map[string]chan error{"tls": tlsDone, "plain": plainDone} {
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("%s server: %v, want net.ErrClosed", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s server still serving after close", name)
		}
	}
	if _, err := net.Dial("tcp", addr); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("dial after close: %v, want connection refused", err)
	}
}

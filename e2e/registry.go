package e2e

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// StartRegistry serves an in-memory OCI registry (go-containerregistry's) from the test
// process on the bridge address, where every host reaches it, and makes StartAgents give
// the agents it starts from then on --insecure-registry with its address, so that they
// pull from it over plain HTTP. It returns that address (BRIDGE-IP:port), the registry
// part of the references PushImage uploads to. The registry stops when the test ends.
func (c *Cluster) StartRegistry() string {
	c.t.Helper()
	if err := c.ensureBridge(); err != nil {
		c.t.Fatalf("e2e: registry: %v", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(c.BridgeIP(), "0"))
	if err != nil {
		c.t.Fatalf("e2e: registry: %v", err)
	}
	srv := &http.Server{
		Handler:           registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c.t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			c.t.Errorf("e2e: stop the registry: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			c.t.Errorf("e2e: registry: %v", err)
		}
	})
	addr := ln.Addr().String()
	// StartAgents reads the options on the test's goroutine, as this runs.
	c.opts.agentArgs = append(c.opts.agentArgs, "--insecure-registry", addr)
	return addr
}

// ensureBridge makes the cluster's bridge unless its first host did already.
func (c *Cluster) ensureBridge() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("cluster closed")
	}
	if c.bridge != "" {
		return nil
	}
	return c.createBridge()
}

// PushImage uploads img as ref (REGISTRY/repository:tag) over plain HTTP, as to the
// registry of StartRegistry.
func PushImage(t testing.TB, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("e2e: push %s: %v", ref, err)
	}
	// A transport of its own: no proxy from the environment between the test and its bridge.
	if err := remote.Write(r, img, remote.WithTransport(&http.Transport{})); err != nil {
		t.Fatalf("e2e: push %s: %v", ref, err)
	}
}

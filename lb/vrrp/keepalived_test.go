package vrrp

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// keepalived is Debian's keepalived running one VRRPv3 instance in a lab host.
type keepalived struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// keepalivedConfig is what differs between the keepalived peers of the tests.
type keepalivedConfig struct {
	vrid      uint8
	priority  uint8
	advertInt time.Duration
	vips      []netip.Prefix
}

// startKeepalived runs keepalived in h's namespace; stop (or the test's end) sends it
// SIGTERM, on which it resigns with priority 0 and removes its addresses.
func startKeepalived(t testing.TB, h *labHost, c keepalivedConfig) *keepalived {
	t.Helper()
	path, err := exec.LookPath("keepalived")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("keepalived is not installed (apt-get install keepalived), and CI=true")
		}
		t.Skip("keepalived is not installed (apt-get install keepalived)")
	}
	dir := t.TempDir()
	var vips bytes.Buffer
	for _, p := range c.vips {
		fmt.Fprintf(&vips, "        %s dev eth0\n", p)
	}
	conf := fmt.Sprintf(`global_defs {
    router_id %s
    vrrp_version 3
}
vrrp_instance test {
    state BACKUP
    interface eth0
    virtual_router_id %d
    priority %d
    advert_int %.2f
    virtual_ipaddress {
%s    }
}
`, h.name, c.vrid, c.priority, c.advertInt.Seconds(), vips.String())
	confPath := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	k := &keepalived{t: t, out: &syncBuffer{}, done: make(chan struct{})}
	k.cmd = exec.Command("ip", "netns", "exec", h.ns, path,
		"--dont-fork", "--log-console", "--no-syslog", "--log-detail", "--vrrp",
		"--use-file", confPath,
		"--pid", filepath.Join(dir, "keepalived.pid"),
		"--vrrp_pid", filepath.Join(dir, "vrrp.pid"))
	k.cmd.Stdout, k.cmd.Stderr = k.out, k.out
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("start keepalived: %v", err)
	}
	go func() {
		k.cmd.Wait()
		close(k.done)
	}()
	t.Cleanup(func() {
		k.stop()
		t.Logf("keepalived on %s:\n%s", h.name, k.out.String())
	})
	return k
}

// stop sends keepalived SIGTERM and waits for it to exit.
func (k *keepalived) stop() {
	k.t.Helper()
	select {
	case <-k.done:
		return
	default:
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(15 * time.Second):
		k.cmd.Process.Kill()
		<-k.done
		k.t.Errorf("keepalived did not exit on SIGTERM")
	}
}

// syncBuffer is a bytes.Buffer two goroutines may use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

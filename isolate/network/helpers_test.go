package network

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/atoll/atoll/isolate/network/nettest"
)

// requireRoot skips a test that needs root, or fails it under CI=true, where every test
// must run.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		for _, tool := range []string{"ip", "nft", "nsenter"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Fatalf("%s is needed to inspect the network state (iproute2, nftables, util-linux): %v", tool, err)
			}
		}
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root for network namespaces, links and nftables, and CI=true: privileged tests must run")
	}
	t.Skip("needs root: network namespaces, links and nftables")
}

// testConfig is a config with a bridge and table of its own on a locked test subnet.
func testConfig(t testing.TB) Config {
	t.Helper()
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Bridge = "at" + hex.EncodeToString(suffix)
	cfg.Table = "atoll-test-" + hex.EncodeToString(suffix)
	cfg.Subnet = nettest.Subnet(t)
	cfg.StateDir = t.TempDir()
	cfg.IPForward = false // the host's forwarding is not the tests' to change
	return cfg
}

// testLogger writes to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// openBridge opens a bridge on cfg. Its cleanup tears it down and checks that the
// bridge, the table, every veth and every namespace mount are gone.
func openBridge(t testing.TB, cfg Config) *Bridge {
	t.Helper()
	b, err := Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Teardown(context.Background()); err != nil {
			t.Errorf("teardown: %v", err)
		}
		if links := run(t, "ip", "-o", "link", "show"); strings.Contains(links, cfg.Bridge) {
			t.Errorf("bridge %s is still there:\n%s", cfg.Bridge, links)
		}
		if tables := run(t, "nft", "list", "tables"); strings.Contains(tables, cfg.Table) {
			t.Errorf("table %s is still there:\n%s", cfg.Table, tables)
		}
		if mounts := mountsUnder(t, cfg.StateDir); len(mounts) > 0 {
			t.Errorf("mounts left under the state dir: %v", mounts)
		}
	})
	return b
}

// run runs a command and returns its output, failing the test if it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// linkExists asks ip whether the root namespace has a link called name.
func linkExists(t testing.TB, name string) bool {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show", "dev", name).CombinedOutput()
	if err == nil {
		return true
	}
	if strings.Contains(string(out), "does not exist") {
		return false
	}
	t.Fatalf("ip link show dev %s: %v\n%s", name, err, out)
	return false
}

// mountsUnder lists the mount points at or below dir, from /proc/self/mountinfo.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// inNetNS runs fn on a thread in the namespace at path ("" for the test's own); sockets fn
// opens stay in that namespace afterwards, whichever thread uses them.
func inNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			done <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			done <- err
			return
		}
		fnErr := fn()
		if err := netns.Set(orig); err != nil {
			// The thread stays locked and dies with the goroutine rather than run other
			// goroutines in the wrong namespace.
			done <- errors.Join(fnErr, err)
			return
		}
		runtime.UnlockOSThread()
		done <- fnErr
	}()
	return <-done
}

// listenTCP starts an echo server in a namespace ("" for the test's own): it answers each line with name, ": "
// and the line.
func listenTCP(t testing.TB, nsPath, addr, name string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := inNetNS(nsPath, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				sc := bufio.NewScanner(conn)
				for sc.Scan() {
					if _, err := fmt.Fprintf(conn, "%s: %s\n", name, sc.Text()); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln
}

// listenUDP starts a UDP echo server in a namespace that answers name, ": " and the packet.
func listenUDP(t testing.TB, nsPath, addr, name string) {
	t.Helper()
	var pc net.PacketConn
	err := inNetNS(nsPath, func() (err error) {
		pc, err = net.ListenPacket("udp4", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if _, err := pc.WriteTo([]byte(name+": "+string(buf[:n])), from); err != nil {
				return
			}
		}
	}()
}

// dialTCP connects to addr from a namespace ("" for the test's own), sends line and
// returns the answer line.
func dialTCP(nsPath, addr, line string) (string, error) {
	var conn net.Conn
	dial := func() (err error) {
		conn, err = net.DialTimeout("tcp4", addr, 10*time.Second)
		return err
	}
	if err := inNetNS(nsPath, dial); err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintln(conn, line); err != nil {
		return "", err
	}
	answer, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSuffix(answer, "\n"), err
}

// exchangeUDP sends payload to addr from the test's namespace and returns the answer.
func exchangeUDP(addr, payload string) (string, error) {
	conn, err := net.Dial("udp4", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return "", err
	}
	if _, err := conn.Write([]byte(payload)); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	return string(buf[:n]), err
}

// ping sends one ICMP echo request from a namespace to dst and waits for the reply.
func ping(nsPath string, dst netip.Addr) error {
	var conn *icmp.PacketConn
	err := inNetNS(nsPath, func() (err error) {
		conn, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	const id, seq = 0x4154, 1
	request, err := (&icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("atoll")}}).Marshal(nil)
	if err != nil {
		return err
	}
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	if _, err := conn.WriteTo(request, &net.IPAddr{IP: net.IP(dst.AsSlice())}); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no echo reply from %s: %w", dst, err)
		}
		msg, err := icmp.ParseMessage(1, buf[:n])
		if err != nil {
			return err
		}
		if echo, ok := msg.Body.(*icmp.Echo); ok && msg.Type == ipv4.ICMPTypeEchoReply && echo.ID == id && echo.Seq == seq && from.String() == dst.String() {
			return nil
		}
	}
}

// freePort is a port nothing listens on at the moment on 127.0.0.1, for a host port.
func freePort(t testing.TB) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp4", ln.Addr().String())
	if err != nil {
		return freePort(t) // taken for UDP: try another
	}
	defer pc.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// hostPort is addr:port as a dial string.
func hostPort(addr netip.Addr, port uint16) string {
	return netip.AddrPortFrom(addr, port).String()
}

// inNS runs a command in a namespace through nsenter and returns its output.
func inNS(t testing.TB, nsPath string, args ...string) string {
	t.Helper()
	return run(t, "nsenter", append([]string{"--net=" + nsPath}, args...)...)
}

// sendRawUDP sends one UDP packet from a task's eth0 as a hand-made Ethernet frame to the
// gateway's MAC, whatever its addresses: a task's root can do this, and the routing in
// its namespace cannot stop it.
func sendRawUDP(ep *Endpoint, dst netip.AddrPort, payload string) error {
	frame := make([]byte, 14+20+8+len(payload))
	copy(frame[0:6], macOf(ep.Gateway))
	copy(frame[6:12], macOf(ep.IP))
	binary.BigEndian.PutUint16(frame[12:14], unix.ETH_P_IP)
	ip := frame[14:34]
	ip[0] = 0x45 // version 4, 20-byte header
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+8+len(payload)))
	ip[8] = 64 // TTL
	ip[9] = unix.IPPROTO_UDP
	src, to := ep.IP.As4(), dst.Addr().As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], to[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i : i+2]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:12], ^uint16(sum))
	udp := frame[34:42]
	binary.BigEndian.PutUint16(udp[0:2], 40000)
	binary.BigEndian.PutUint16(udp[2:4], dst.Port())
	binary.BigEndian.PutUint16(udp[4:6], uint16(8+len(payload))) // checksum 0: none
	copy(frame[42:], payload)
	return inNetNS(ep.NetNSPath, func() error {
		iface, err := net.InterfaceByName(ep.Interface)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: iface.Index, Protocol: htons(unix.ETH_P_IP)})
	})
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// listenHostUDP listens on addr in the test's namespace.
func listenHostUDP(t testing.TB, addr string) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// readNow reads a packet that is already queued on pc, without waiting for one.
func readNow(t testing.TB, pc net.PacketConn, buf []byte) (int, error) {
	t.Helper()
	raw, err := pc.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var readErr error
	if err := raw.Read(func(fd uintptr) bool {
		n, _, readErr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return n, readErr
}

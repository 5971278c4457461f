package vrrp

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	src4 = netip.MustParseAddr("198.18.0.11")
	vip4 = netip.MustParseAddr("198.18.1.10")
	src6 = netip.MustParseAddr("fe80::1")
	vip6 = netip.MustParseAddr("2001:db8::10")

	// golden4 is VRID 51, priority 150, 1 s, 198.18.1.10 from 198.18.0.11 to 224.0.0.18;
	// its checksum (over the IPv4 pseudo-header) was worked out by hand, and keepalived
	// accepts packets so made (TestKeepalivedInterop).
	golden4 = []byte{0x31, 0x33, 0x96, 0x01, 0x00, 0x64, 0xca, 0x9d, 0xc6, 0x12, 0x01, 0x0a}
	golden6 = []byte{0x31, 0x33, 0x96, 0x01, 0x00, 0x64, 0x0c, 0x7f,
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
)

func TestMarshalGolden(t *testing.T) {
	tests := []struct {
		name     string
		adv      Advertisement
		src, dst netip.Addr
		want     []byte
	}{
		{"ipv4", Advertisement{VRID: 51, Priority: 150, MaxAdvertInterval: 100, Addrs: []netip.Addr{vip4}}, src4, GroupIPv4, golden4},
		{"ipv6", Advertisement{VRID: 51, Priority: 150, MaxAdvertInterval: 100, Addrs: []netip.Addr{vip6}}, src6, GroupIPv6, golden6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.adv, tt.src, tt.dst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("Marshal = %#v, want %#v", got, tt.want)
			}
			back, err := Parse(got, tt.src, tt.dst)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tt.adv) {
				t.Fatalf("Parse(Marshal) = %+v, want %+v", back, tt.adv)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(golden4)) }
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		want     error
	}{
		{"empty", nil, src4, GroupIPv4, ErrTruncated},
		{"header cut", golden4[:7], src4, GroupIPv4, ErrTruncated},
		{"address cut", golden4[:11], src4, GroupIPv4, ErrTruncated},
		{"trailing byte", append(bytes.Clone(golden4), 0), src4, GroupIPv4, ErrTruncated},
		{"count too high", with(func(b []byte) []byte { b[3] = 2; return b }), src4, GroupIPv4, ErrTruncated},
		{"version 2", with(func(b []byte) []byte { b[0] = 0x21; return b }), src4, GroupIPv4, ErrVersion},
		{"type 2", with(func(b []byte) []byte { b[0] = 0x32; return b }), src4, GroupIPv4, ErrType},
		{"checksum", with(func(b []byte) []byte { b[7]++; return b }), src4, GroupIPv4, ErrChecksum},
		{"other source", golden4, netip.MustParseAddr("198.18.0.12"), GroupIPv4, ErrChecksum},
		{"mixed families", golden4, src4, GroupIPv6, ErrFamily},
		{"ipv6 as ipv4", golden6, src4, GroupIPv4, ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.b, tt.src, tt.dst)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMarshalRejects(t *testing.T) {
	many := make([]netip.Addr, 256)
	for i := range many {
		many[i] = vip4
	}
	tests := []struct {
		name string
		adv  Advertisement
		dst  netip.Addr
		want string
	}{
		{"interval", Advertisement{VRID: 1, Priority: 1, MaxAdvertInterval: 4096}, GroupIPv4, "interval 4096 cs exceeds 4095"},
		{"too many addresses", Advertisement{VRID: 1, Priority: 1, MaxAdvertInterval: 1, Addrs: many}, GroupIPv4, "256 addresses"},
		{"ipv6 address in ipv4", Advertisement{VRID: 1, Priority: 1, MaxAdvertInterval: 1, Addrs: []netip.Addr{vip6}}, GroupIPv4, "not of the packet's family"},
		{"families", Advertisement{VRID: 1, Priority: 1, MaxAdvertInterval: 1}, GroupIPv6, "not one address family"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Marshal(tt.adv, src4, tt.dst)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Marshal error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// FuzzParse: Parse never panics, and whatever it accepts marshals back to the same
// bytes, save the reserved bits it ignores, and parses again.
func FuzzParse(f *testing.F) {
	f.Add(golden4, true)
	f.Add(golden6, false)
	f.Add([]byte{0x31, 0, 0, 0, 0, 0, 0, 0}, true)
	f.Add([]byte{0x31, 1, 1, 0xff}, false)
	f.Fuzz(func(t *testing.T, b []byte, is4 bool) {
		src, dst := src4, GroupIPv4
		if !is4 {
			src, dst = src6, GroupIPv6
		}
		adv, err := Parse(b, src, dst)
		if err != nil {
			return
		}
		again, err := Marshal(adv, src, dst)
		if err != nil {
			t.Fatalf("Marshal of a parsed packet: %v", err)
		}
		// The checksum may differ only as one's complement's two zeros (0x0000, 0xffff).
		if b[4]&0xf0 == 0 && (!bytes.Equal(again[:6], b[:6]) || !bytes.Equal(again[8:], b[8:])) {
			t.Fatalf("Marshal(Parse(%x)) = %x", b, again)
		}
		if _, err := Parse(again, src, dst); err != nil {
			t.Fatalf("Parse(Marshal(Parse(%x))): %v", b, err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.Interface, c.VRID, c.VIPs = "eth0", 51, []netip.Prefix{netip.MustParsePrefix("198.18.1.10/32")}
		return c
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"owner", func(c *Config) { c.Priority = 255 }, ""},
		{"100ms", func(c *Config) { c.AdvertInterval = 100 * time.Millisecond }, ""},
		{"no interface", func(c *Config) { c.Interface = "" }, "interface is empty"},
		{"vrid 0", func(c *Config) { c.VRID = 0 }, "vrid 0 is reserved"},
		{"priority 0", func(c *Config) { c.Priority = 0 }, "priority 0 is reserved"},
		{"no vips", func(c *Config) { c.VIPs = nil }, "no virtual addresses"},
		{"ipv6 vip", func(c *Config) { c.VIPs = []netip.Prefix{netip.MustParsePrefix("2001:db8::1/128")} }, "only IPv4"},
		{"sub-centisecond", func(c *Config) { c.AdvertInterval = 15 * time.Millisecond }, "whole centiseconds"},
		{"zero interval", func(c *Config) { c.AdvertInterval = 0 }, "whole centiseconds"},
		{"interval too long", func(c *Config) { c.AdvertInterval = 41 * time.Second }, "whole centiseconds"},
		{"negative preempt delay", func(c *Config) { c.PreemptDelay = -time.Second }, "preempt delay"},
		{"ipv6 peer", func(c *Config) { c.UnicastPeers = []netip.Addr{src6} }, "unicast peer"},
		{"negative garp", func(c *Config) { c.GARPRepeat = -1 }, "garp repeat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestTimers: RFC 5798 §6.1's Skew_Time and Master_Down_Interval.
func TestTimers(t *testing.T) {
	tests := []struct {
		priority   uint8
		interval   time.Duration
		skew, down time.Duration
	}{
		{100, time.Second, 609375 * time.Microsecond, 3609375 * time.Microsecond},
		{255, time.Second, 3906250 * time.Nanosecond, 3003906250 * time.Nanosecond},
		{1, time.Second, 996093750 * time.Nanosecond, 3996093750 * time.Nanosecond},
		{100, 100 * time.Millisecond, 60937500 * time.Nanosecond, 360937500 * time.Nanosecond},
	}
	for _, tt := range tests {
		if got := SkewTime(tt.priority, tt.interval); got != tt.skew {
			t.Errorf("SkewTime(%d, %v) = %v, want %v", tt.priority, tt.interval, got, tt.skew)
		}
		if got := MasterDownInterval(tt.priority, tt.interval); got != tt.down {
			t.Errorf("MasterDownInterval(%d, %v) = %v, want %v", tt.priority, tt.interval, got, tt.down)
		}
	}
}

package network

import (
	"errors"
	"reflect"
	"testing"

	"github.com/atoll/atoll/api"
)

func TestPortMappingsFromAPI(t *testing.T) {
	tests := []struct {
		name    string
		in      []api.PortMapping
		want    []PortMapping
		wantErr string
	}{
		{name: "none", in: nil, want: []PortMapping{}},
		{
			name: "protocols",
			in: []api.PortMapping{
				{HostPort: 31000, ContainerPort: 80},
				{HostPort: 31001, ContainerPort: 53, Protocol: "udp"},
				{HostPort: 31002, ContainerPort: 8080, Protocol: "tcp"},
				{HostPort: 31003, ContainerPort: 9000, Protocol: "tcp,udp"},
				{HostPort: 31004, ContainerPort: 9001, Protocol: "udp,tcp"},
			},
			want: []PortMapping{
				{HostPort: 31000, ContainerPort: 80, Protocol: TCP},
				{HostPort: 31001, ContainerPort: 53, Protocol: UDP},
				{HostPort: 31002, ContainerPort: 8080, Protocol: TCP},
				{HostPort: 31003, ContainerPort: 9000, Protocol: TCP},
				{HostPort: 31003, ContainerPort: 9000, Protocol: UDP},
				{HostPort: 31004, ContainerPort: 9001, Protocol: UDP},
				{HostPort: 31004, ContainerPort: 9001, Protocol: TCP},
			},
		},
		{
			name: "same host port for tcp and udp, same container port twice",
			in: []api.PortMapping{
				{HostPort: 31000, ContainerPort: 80, Protocol: "tcp"},
				{HostPort: 31000, ContainerPort: 80, Protocol: "udp"},
				{HostPort: 31001, ContainerPort: 80, Protocol: "tcp"},
			},
			want: []PortMapping{
				{HostPort: 31000, ContainerPort: 80, Protocol: TCP},
				{HostPort: 31000, ContainerPort: 80, Protocol: UDP},
				{HostPort: 31001, ContainerPort: 80, Protocol: TCP},
			},
		},
		{
			name:    "host port zero",
			in:      []api.PortMapping{{HostPort: 31000, ContainerPort: 80}, {HostPort: 0, ContainerPort: 80}},
			wantErr: `invalid port mapping 1 (host port 0, container port 80, protocol ""): host port 0 is out of range 1-65535`,
		},
		{
			name:    "host port too big",
			in:      []api.PortMapping{{HostPort: 65536, ContainerPort: 80, Protocol: "udp"}},
			wantErr: `invalid port mapping 0 (host port 65536, container port 80, protocol "udp"): host port 65536 is out of range 1-65535`,
		},
		{
			name:    "container port zero",
			in:      []api.PortMapping{{HostPort: 31000, ContainerPort: 0}},
			wantErr: `invalid port mapping 0 (host port 31000, container port 0, protocol ""): container port 0 is out of range 1-65535`,
		},
		{
			name:    "container port too big",
			in:      []api.PortMapping{{HostPort: 31000, ContainerPort: 70000}},
			wantErr: `invalid port mapping 0 (host port 31000, container port 70000, protocol ""): container port 70000 is out of range 1-65535`,
		},
		{
			name:    "unknown protocol",
			in:      []api.PortMapping{{HostPort: 31000, ContainerPort: 80, Protocol: "sctp"}},
			wantErr: `invalid port mapping 0 (host port 31000, container port 80, protocol "sctp"): unknown protocol, want tcp, udp or tcp,udp`,
		},
		{
			name:    "upper case protocol",
			in:      []api.PortMapping{{HostPort: 31000, ContainerPort: 80, Protocol: "TCP"}},
			wantErr: `invalid port mapping 0 (host port 31000, container port 80, protocol "TCP"): unknown protocol, want tcp, udp or tcp,udp`,
		},
		{
			name: "duplicate host port",
			in: []api.PortMapping{
				{HostPort: 31000, ContainerPort: 80},
				{HostPort: 31001, ContainerPort: 81},
				{HostPort: 31000, ContainerPort: 82, Protocol: "tcp"},
			},
			wantErr: `invalid port mapping 2 (host port 31000, container port 82, protocol "tcp"): host port 31000/tcp is already mapped by mapping 0`,
		},
		{
			name: "duplicate through tcp,udp",
			in: []api.PortMapping{
				{HostPort: 31000, ContainerPort: 53, Protocol: "udp"},
				{HostPort: 31000, ContainerPort: 53, Protocol: "tcp,udp"},
			},
			wantErr: `invalid port mapping 1 (host port 31000, container port 53, protocol "tcp,udp"): host port 31000/udp is already mapped by mapping 0`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PortMappingsFromAPI(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %s", err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidPortMapping) {
					t.Errorf("error %v does not wrap ErrInvalidPortMapping", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("mappings = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestValidatePortMappings(t *testing.T) {
	tests := []struct {
		name    string
		in      []PortMapping
		wantErr string
	}{
		{name: "none"},
		{name: "valid", in: []PortMapping{{HostPort: 1, ContainerPort: 65535, Protocol: TCP}, {HostPort: 1, ContainerPort: 2, Protocol: UDP}}},
		{
			name:    "host port zero",
			in:      []PortMapping{{HostPort: 0, ContainerPort: 80, Protocol: TCP}},
			wantErr: "invalid port mapping 0 (host port 0 to container port 80/tcp): host port 0 is out of range 1-65535",
		},
		{
			name:    "container port zero",
			in:      []PortMapping{{HostPort: 8080, ContainerPort: 0, Protocol: UDP}},
			wantErr: "invalid port mapping 0 (host port 8080 to container port 0/udp): container port 0 is out of range 1-65535",
		},
		{
			name:    "empty protocol",
			in:      []PortMapping{{HostPort: 8080, ContainerPort: 80}},
			wantErr: `invalid port mapping 0 (host port 8080 to container port 80/): unknown protocol "", want tcp or udp`,
		},
		{
			name:    "duplicate",
			in:      []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: UDP}, {HostPort: 8080, ContainerPort: 81, Protocol: UDP}},
			wantErr: "invalid port mapping 1 (host port 8080 to container port 81/udp): host port 8080/udp is already mapped by mapping 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidatePortMappings(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrInvalidPortMapping) {
				t.Fatalf("error = %v, want %s wrapping ErrInvalidPortMapping", err, tt.wantErr)
			}
		})
	}
}

// FuzzPortMappingsFromAPI: whatever comes in, the result is either an error naming an
// invalid mapping or mappings that pass ValidatePortMappings, one or two per input.
func FuzzPortMappingsFromAPI(f *testing.F) {
	f.Add(uint32(31000), uint32(80), "", uint32(31001), uint32(53), "udp")
	f.Add(uint32(31000), uint32(80), "tcp,udp", uint32(31000), uint32(80), "udp")
	f.Add(uint32(0), uint32(65536), "sctp", uint32(1), uint32(1), "tcp")
	f.Fuzz(func(t *testing.T, h1, c1 uint32, p1 string, h2, c2 uint32, p2 string) {
		in := []api.PortMapping{{HostPort: h1, ContainerPort: c1, Protocol: p1}, {HostPort: h2, ContainerPort: c2, Protocol: p2}}
		got, err := PortMappingsFromAPI(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidPortMapping) {
				t.Fatalf("error %v does not wrap ErrInvalidPortMapping", err)
			}
			return
		}
		if err := ValidatePortMappings(got); err != nil {
			t.Fatalf("PortMappingsFromAPI(%+v) = %+v, which ValidatePortMappings refuses: %v", in, got, err)
		}
		if len(got) < 2 || len(got) > 4 {
			t.Fatalf("PortMappingsFromAPI(%+v) = %d mappings, want 2 to 4", in, len(got))
		}
		for _, m := range got {
			if (uint32(m.HostPort) != h1 || uint32(m.ContainerPort) != c1) && (uint32(m.HostPort) != h2 || uint32(m.ContainerPort) != c2) {
				t.Fatalf("mapping %+v matches no input of %+v", m, in)
			}
		}
	})
}

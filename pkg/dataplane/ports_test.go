package dataplane

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in   string
		want PortRange
		err  string
	}{
		{"61000-65535", PortRange{61000, 65535}, ""},
		{" 1024 - 2047 ", PortRange{1024, 2047}, ""},
		{"8080", PortRange{8080, 8080}, ""},
		{"32768\t60999\n", PortRange{32768, 60999}, ""}, // ip_local_port_range
		{"1-65535", PortRange{1, 65535}, ""},
		{"", PortRange{}, "want FIRST-LAST"},
		{"1 2 3", PortRange{}, "want FIRST-LAST"},
		{"0-10", PortRange{}, `"0" is not a port from 1 to 65535`},
		{"1000-65536", PortRange{}, `"65536" is not a port from 1 to 65535`},
		{"a-b", PortRange{}, `"a" is not a port`},
		{"2000-1000", PortRange{}, "the first port is above the last"},
		{"-5", PortRange{}, `"" is not a port`},
	}
	for _, tc := range tests {
		got, err := ParsePortRange(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParsePortRange(%q): %v", tc.in, err)
		case tc.err != "" && (err == nil || !errors.Is(err, ErrInvalidPortRange) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParsePortRange(%q) error %v, want ErrInvalidPortRange saying %q", tc.in, err, tc.err)
		case got != tc.want:
			t.Errorf("ParsePortRange(%q) = %v, want %v", tc.in, got, tc.want)
		}
		if err == nil && got.String() != strings.Join(strings.Fields(strings.ReplaceAll(tc.in, "-", " ")), "-") && got.First != got.Last {
			t.Errorf("%v.String() = %q does not read back as %q", got, got.String(), tc.in)
		}
	}
}

func TestPortRangeOps(t *testing.T) {
	r := PortRange{100, 199}
	if r.Len() != 100 || !r.Contains(100) || !r.Contains(199) || r.Contains(99) || r.Contains(200) {
		t.Errorf("%v: Len %d, Contains 100/199/99/200 %v/%v/%v/%v", r, r.Len(), r.Contains(100), r.Contains(199), r.Contains(99), r.Contains(200))
	}
	if (PortRange{}).Len() != 0 || (PortRange{}).Contains(0) {
		t.Error("the zero range is not empty")
	}
	if got := r.Overlap(PortRange{150, 300}); got != (PortRange{150, 199}) {
		t.Errorf("Overlap = %v", got)
	}
	if got := r.Overlap(PortRange{200, 300}); !got.IsZero() {
		t.Errorf("Overlap of adjacent ranges = %v, want none", got)
	}
	if got := r.hull(PortRange{300, 400}); got != (PortRange{100, 400}) {
		t.Errorf("hull = %v", got)
	}
}

// TestDefaultSNATPortsMissDefaultKernel: the default range must not
// overlap Linux's default ephemeral range, whatever address it is on.
func TestDefaultSNATPortsMissDefaultKernel(t *testing.T) {
	linux := Ephemeral{Range: PortRange{32768, 60999}}
	if err := CheckSNATPorts(netip.Addr{}, DefaultSNATPorts, linux, true); err != nil {
		t.Errorf("default SNAT ports on a default kernel: %v", err)
	}
}

// TestCheckSNATPorts is the overlap check over range pairs.
func TestCheckSNATPorts(t *testing.T) {
	host := netip.MustParseAddr("203.0.113.1")
	linux := PortRange{32768, 60999}
	tests := []struct {
		name     string
		ports    PortRange
		eph      Ephemeral
		local    bool
		refused  bool
		narrowTo string // the sysctl value the error proposes
	}{
		{"default ranges", DefaultSNATPorts, Ephemeral{Range: linux}, true, false, ""},
		{"below the kernel's", PortRange{1024, 32767}, Ephemeral{Range: linux}, true, false, ""},
		{"touching from above", PortRange{61000, 61000}, Ephemeral{Range: linux}, true, false, ""},
		{"touching from below", PortRange{20000, 32767}, Ephemeral{Range: PortRange{32768, 60999}}, true, false, ""},
		{"old weir range", PortRange{40000, 59999}, Ephemeral{Range: linux}, true, true, "32768 39999"},
		{"overlapping the top", PortRange{60000, 65535}, Ephemeral{Range: linux}, true, true, "32768 59999"},
		{"overlapping the bottom", PortRange{30000, 33000}, Ephemeral{Range: linux}, true, true, "33001 60999"},
		{"one port shared", PortRange{60999, 61100}, Ephemeral{Range: linux}, true, true, "32768 60998"},
		{"the kernel's inside", PortRange{1024, 65535}, Ephemeral{Range: linux}, true, true, ""},
		{"widened kernel", DefaultSNATPorts, Ephemeral{Range: PortRange{1024, 65535}}, true, true, "1024 60999"},
		{"narrowed kernel", PortRange{40000, 59999}, Ephemeral{Range: PortRange{32768, 39999}}, true, false, ""},
		{"dedicated address", PortRange{1024, 65535}, Ephemeral{Range: linux}, false, false, ""},
		{"overlap all reserved", PortRange{50000, 65535}, Ephemeral{Range: linux,
			Reserved: []PortRange{{8080, 8080}, {50000, 55000}, {55001, 60999}}}, true, false, ""},
		{"overlap partly reserved", PortRange{50000, 65535}, Ephemeral{Range: linux,
			Reserved: []PortRange{{50000, 60998}}}, true, true, "32768 49999"},
		{"kernel default address", PortRange{40000, 59999}, Ephemeral{Range: linux}, true, true, "32768 39999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := host
			if tc.name == "kernel default address" {
				addr = netip.Addr{}
			}
			err := CheckSNATPorts(addr, tc.ports, tc.eph, tc.local)
			if !tc.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrSNATPortsInUse) {
				t.Fatalf("error %v, want ErrSNATPortsInUse", err)
			}
			msg := err.Error()
			for _, want := range []string{
				"ephemeral ports: " + tc.ports.String() + " on ",
				"ip_local_port_range " + tc.eph.Range.String(),
				"share " + tc.ports.Overlap(tc.eph.Range).String(),
				"net.ipv4.ip_local_reserved_ports=" + tc.ports.String(),
				"dedicated SNAT address",
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
			narrow := `net.ipv4.ip_local_port_range="` + tc.narrowTo + `"`
			if tc.narrowTo == "" {
				narrow = "narrow the kernel's range to ports outside " + tc.ports.String()
			}
			if !strings.Contains(msg, narrow) {
				t.Errorf("error %q lacks %q", msg, narrow)
			}
			if addr.IsValid() != strings.Contains(msg, addr.String()+", an address this host's sockets may use") {
				t.Errorf("error %q does not say which address", msg)
			}
		})
	}
}

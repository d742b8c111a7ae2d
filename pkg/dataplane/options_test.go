package dataplane

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestOptionsWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Options
		want Options
		err  error
	}{
		{
			name: "zero value",
			want: Options{PinPath: DefaultPinPath, MaxServices: 16, MaxBackends: 256, TableSize: 65537, MaxFlows: 262144,
				FlowCacheTTL: time.Second, ClosedFlowTimeout: 2 * time.Second, TCPIdleTimeout: 124 * time.Minute,
				UDPIdleTimeout: 2 * time.Minute},
		},
		{
			name: "explicit",
			in: Options{PinPath: "/run/weir/bpf", MaxServices: 2, MaxBackends: 3, TableSize: 7, MaxFlows: 9,
				FlowCacheTTL: time.Minute, ClosedFlowTimeout: 5 * time.Second, TCPIdleTimeout: time.Hour,
				UDPIdleTimeout: 30 * time.Second},
			want: Options{PinPath: "/run/weir/bpf", MaxServices: 2, MaxBackends: 3, TableSize: 7, MaxFlows: 9,
				FlowCacheTTL: time.Minute, ClosedFlowTimeout: 5 * time.Second, TCPIdleTimeout: time.Hour,
				UDPIdleTimeout: 30 * time.Second},
		},
		{name: "relative pin path", in: Options{PinPath: "weir"}, err: ErrInvalidOptions},
		{name: "unclean pin path", in: Options{PinPath: "/sys/fs/bpf/../weir"}, err: ErrInvalidOptions},
		{name: "pin path at the root", in: Options{PinPath: "/weir"}, err: ErrInvalidOptions},
		{name: "too many services", in: Options{MaxServices: 1<<16 + 1}, err: ErrInvalidOptions},
		{name: "too many backends", in: Options{MaxBackends: 1<<16 + 1}, err: ErrInvalidOptions},
		{name: "table too large", in: Options{TableSize: 1<<24 + 1}, err: ErrInvalidOptions},
		{name: "too many flows", in: Options{MaxFlows: 1<<26 + 1}, err: ErrInvalidOptions},
		{name: "flow cache TTL below a millisecond", in: Options{FlowCacheTTL: time.Microsecond}, err: ErrInvalidOptions},
		{name: "negative flow cache TTL", in: Options{FlowCacheTTL: -time.Second}, err: ErrInvalidOptions},
		{name: "flow cache TTL above an hour", in: Options{FlowCacheTTL: 2 * time.Hour}, err: ErrInvalidOptions},
		{name: "closed flow timeout below two seconds", in: Options{ClosedFlowTimeout: time.Second}, err: ErrInvalidOptions},
		{name: "negative TCP idle timeout", in: Options{TCPIdleTimeout: -time.Hour}, err: ErrInvalidOptions},
		{name: "TCP idle timeout above a day", in: Options{TCPIdleTimeout: 25 * time.Hour}, err: ErrInvalidOptions},
		{name: "UDP idle timeout below two seconds", in: Options{UDPIdleTimeout: time.Second}, err: ErrInvalidOptions},
		{name: "closed flow timeout above TCP idle timeout",
			in: Options{ClosedFlowTimeout: time.Hour, TCPIdleTimeout: time.Minute}, err: ErrInvalidOptions},
		{name: "table map too large", in: Options{MaxServices: 1 << 16, TableSize: 1 << 16}, err: ErrInvalidOptions},
		{name: "backend map too large", in: Options{MaxServices: 1 << 16, MaxBackends: 1 << 16}, err: ErrInvalidOptions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.withDefaults()
			if !errors.Is(err, tc.err) {
				t.Fatalf("withDefaults() error %v, want %v", err, tc.err)
			}
			if err == nil && got != tc.want {
				t.Errorf("withDefaults() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNormalizedService(t *testing.T) {
	opts := Options{MaxServices: 4}
	mapped := netip.MustParseAddrPort("[::ffff:192.0.2.10]:80")
	tests := []struct {
		name string
		in   Service
		want Service
		err  error
	}{
		{
			name: "IPv4",
			in:   Service{ID: 3, VIP: mapped, Proto: ProtoTCP, SNAT: netip.MustParseAddr("::ffff:203.0.113.1")},
			want: Service{ID: 3, VIP: netip.MustParseAddrPort("192.0.2.10:80"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1"), SNATPorts: DefaultSNATPorts},
		},
		{
			name: "IPv6",
			in:   Service{VIP: netip.MustParseAddrPort("[2001:db8::10]:53"), Proto: ProtoUDP, SNAT: netip.MustParseAddr("2001:db8::1")},
			want: Service{VIP: netip.MustParseAddrPort("[2001:db8::10]:53"), Proto: ProtoUDP, SNAT: netip.MustParseAddr("2001:db8::1"), SNATPorts: DefaultSNATPorts},
		},
		{
			name: "SNAT ports",
			in:   Service{VIP: mapped, Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1"), SNATPorts: PortRange{First: 1024, Last: 1024}},
			want: Service{VIP: netip.MustParseAddrPort("192.0.2.10:80"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1"), SNATPorts: PortRange{First: 1024, Last: 1024}},
		},
		{name: "id", in: Service{ID: 4, VIP: mapped, Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1")}, err: ErrInvalidService},
		{name: "no VIP", in: Service{Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1")}, err: ErrInvalidService},
		{name: "port 0", in: Service{VIP: netip.MustParseAddrPort("192.0.2.10:0"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1")}, err: ErrInvalidService},
		{name: "unspecified VIP", in: Service{VIP: netip.MustParseAddrPort("0.0.0.0:80"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1")}, err: ErrInvalidService},
		{name: "multicast VIP", in: Service{VIP: netip.MustParseAddrPort("224.0.0.1:80"), Proto: ProtoUDP, SNAT: netip.MustParseAddr("203.0.113.1")}, err: ErrInvalidService},
		{name: "zoned VIP", in: Service{VIP: netip.MustParseAddrPort("[fe80::1%eth0]:80"), Proto: ProtoTCP, SNAT: netip.MustParseAddr("fe80::2")}, err: ErrInvalidService},
		{name: "ICMP", in: Service{VIP: mapped, Proto: 1, SNAT: netip.MustParseAddr("203.0.113.1")}, err: ErrInvalidService},
		{name: "no SNAT", in: Service{VIP: mapped, Proto: ProtoTCP}, err: ErrInvalidService},
		{name: "SNAT port 0", in: Service{VIP: mapped, Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1"), SNATPorts: PortRange{First: 0, Last: 10}}, err: ErrInvalidService},
		{name: "SNAT ports backwards", in: Service{VIP: mapped, Proto: ProtoTCP, SNAT: netip.MustParseAddr("203.0.113.1"), SNATPorts: PortRange{First: 2000, Last: 1000}}, err: ErrInvalidService},
		{name: "SNAT family", in: Service{VIP: mapped, Proto: ProtoTCP, SNAT: netip.MustParseAddr("2001:db8::1")}, err: ErrInvalidService},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := opts.normalizedService(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err == nil && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNormalizedBackends(t *testing.T) {
	opts := Options{MaxBackends: 2}
	svc := Service{VIP: netip.MustParseAddrPort("192.0.2.10:80")}
	b1 := netip.MustParseAddrPort("203.0.113.11:80")
	b2 := netip.MustParseAddrPort("203.0.113.12:80")
	tests := []struct {
		name string
		in   []netip.AddrPort
		want []netip.AddrPort
		err  error
	}{
		{name: "none", in: nil, want: []netip.AddrPort{}},
		{name: "unmapped", in: []netip.AddrPort{netip.MustParseAddrPort("[::ffff:203.0.113.11]:80"), b2}, want: []netip.AddrPort{b1, b2}},
		{name: "too many", in: []netip.AddrPort{b1, b2, netip.MustParseAddrPort("203.0.113.13:80")}, err: ErrInvalidBackend},
		{name: "duplicate after unmapping", in: []netip.AddrPort{b1, netip.MustParseAddrPort("[::ffff:203.0.113.11]:80")}, err: ErrInvalidBackend},
		{name: "port 0", in: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.11:0")}, err: ErrInvalidBackend},
		{name: "family", in: []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::11]:80")}, err: ErrInvalidBackend},
		{name: "invalid", in: []netip.AddrPort{{}}, err: ErrInvalidBackend},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := opts.normalizedBackends(svc, tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err == nil && !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestValidateTable(t *testing.T) {
	opts := Options{TableSize: 5}
	tests := []struct {
		name  string
		table []uint32
		n     int
		err   error
	}{
		{name: "valid", table: []uint32{0, 1, 2, 0, 1}, n: 3},
		{name: "no backends, no table", n: 0},
		{name: "no backends, a table", table: []uint32{0, 0, 0, 0, 0}, n: 0, err: ErrInvalidTable},
		{name: "short", table: []uint32{0, 1, 2, 0}, n: 3, err: ErrInvalidTable},
		{name: "long", table: []uint32{0, 1, 2, 0, 1, 2}, n: 3, err: ErrInvalidTable},
		{name: "index out of range", table: []uint32{0, 1, 3, 0, 1}, n: 3, err: ErrInvalidTable},
		{name: "missing", table: nil, n: 3, err: ErrInvalidTable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := opts.validateTable(7, tc.table, tc.n); !errors.Is(err, tc.err) {
				t.Errorf("validateTable() = %v, want %v", err, tc.err)
			}
		})
	}
}

func TestAssignSlots(t *testing.T) {
	a := netip.MustParseAddrPort("203.0.113.1:80")
	b := netip.MustParseAddrPort("203.0.113.2:80")
	c := netip.MustParseAddrPort("203.0.113.3:80")
	d := netip.MustParseAddrPort("203.0.113.4:80")
	tests := []struct {
		name      string
		live      map[netip.AddrPort]uint32
		next      []netip.AddrPort
		capacity  uint32
		wantSlots []uint32
		wantFresh []uint32
		err       error
	}{
		{name: "all new", next: []netip.AddrPort{a, b}, capacity: 4, wantSlots: []uint32{0, 1}, wantFresh: []uint32{0, 1}},
		{
			name: "kept backends keep slots, new ones fill gaps",
			live: map[netip.AddrPort]uint32{a: 0, b: 2}, next: []netip.AddrPort{c, b, d}, capacity: 4,
			wantSlots: []uint32{1, 2, 3}, wantFresh: []uint32{1, 3},
		},
		{
			name: "slots of leaving backends are not reused while they are live",
			live: map[netip.AddrPort]uint32{a: 0, b: 1}, next: []netip.AddrPort{c, d}, capacity: 4,
			wantSlots: []uint32{2, 3}, wantFresh: []uint32{2, 3},
		},
		{
			name: "full", live: map[netip.AddrPort]uint32{a: 0, b: 1}, next: []netip.AddrPort{c}, capacity: 2,
			err: ErrInvalidBackend,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			slots, fresh, err := assignSlots(tc.live, tc.next, tc.capacity)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if !slices.Equal(slots, tc.wantSlots) || !slices.Equal(fresh, tc.wantFresh) {
				t.Errorf("assignSlots() = %v, %v; want %v, %v", slots, fresh, tc.wantSlots, tc.wantFresh)
			}
		})
	}
}

func TestNextGeneration(t *testing.T) {
	tests := []struct{ cur, want uint32 }{
		{0, 1}, {1, 2}, {2, 3}, {0xfffffffe, 0xffffffff},
		{0xffffffff, 2}, // skips 0 ("no service") and keeps alternating halves
	}
	for _, tc := range tests {
		got := nextGeneration(tc.cur)
		if got != tc.want {
			t.Errorf("nextGeneration(%#x) = %#x, want %#x", tc.cur, got, tc.want)
		}
		if got&1 == tc.cur&1 {
			t.Errorf("nextGeneration(%#x) = %#x stays in the same half", tc.cur, got)
		}
	}
}

func TestAddr16RoundTrip(t *testing.T) {
	for _, s := range []string{"192.0.2.1", "2001:db8::1", "::1"} {
		a := netip.MustParseAddr(s)
		b := addr16(a)
		if got := addrFrom16(b, ipVersion(a)); got != a {
			t.Errorf("addrFrom16(addr16(%s)) = %s", a, got)
		}
	}
	if b := addr16(netip.MustParseAddr("192.0.2.1")); b != [16]byte{192, 0, 2, 1} {
		t.Errorf("addr16(192.0.2.1) = %v, want the address in the first four bytes", b)
	}
}

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/weir-lb/weir/bpf"
	"github.com/weir-lb/weir/internal/testenv"
)

// outsidePorts is a SNAT range away from the default one, as a service
// on a dedicated address might have.
var outsidePorts = PortRange{First: 20000, Last: 20099}

// TestSNATPortsInConfiguredRange: a service's new flows get SNAT ports from
// its own range, replies to them are translated back, and a reply-shaped
// packet to a port outside every range passes untouched even when a
// reverse entry for it exists (one left by an earlier range, say).
func TestSNATPortsInConfiguredRange(t *testing.T) {
	needBPF(t)
	tests := []struct {
		name     string
		svc      Service
		backends []netip.AddrPort
		packet   testPacket
		reply    testPacket // src, dst filled in by the test
	}{
		{
			name:     "IPv4 TCP",
			svc:      Service{ID: 1, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4, SNATPorts: outsidePorts},
			backends: backends4,
			packet:   testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN},
			reply:    testPacket{proto: ProtoTCP, tcpFlags: tcpSYN | tcpACK},
		},
		{
			name:     "IPv4 UDP",
			svc:      Service{ID: 2, VIP: vip4UDP, Proto: ProtoUDP, SNAT: snat4, SNATPorts: outsidePorts},
			backends: backends4,
			packet:   testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("query")},
			reply:    testPacket{proto: ProtoUDP, payload: []byte("answer")},
		},
		{
			name:     "IPv6 TCP",
			svc:      Service{ID: 3, VIP: vip6TCP, Proto: ProtoTCP, SNAT: snat6, SNATPorts: outsidePorts},
			backends: backends6,
			packet:   testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpSYN},
			reply:    testPacket{proto: ProtoTCP, tcpFlags: tcpSYN | tcpACK},
		},
		{
			name:     "IPv6 UDP, one port",
			svc:      Service{ID: 0, VIP: vip6UDP, Proto: ProtoUDP, SNAT: snat6, SNATPorts: PortRange{First: 65535, Last: 65535}},
			backends: backends6,
			packet:   testPacket{src: client6, dst: vip6UDP, proto: ProtoUDP, payload: []byte("query6")},
			reply:    testPacket{proto: ProtoUDP, payload: []byte("answer6")},
		},
	}
	forHooks(t, func(t *testing.T, h hook) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, h)
				table := sequentialTable(f.d.opts.TableSize, len(tc.backends))
				f.setService(tc.svc, tc.backends, table)
				if got, err := f.d.ReplyPorts(); err != nil || got != tc.svc.SNATPorts {
					t.Fatalf("ReplyPorts() = %s, %v; want %s", got, err, tc.svc.SNATPorts)
				}

				be := tc.backends[expectedBackend(table, tc.packet.src, tc.packet.dst, tc.packet.proto)]
				port := snatProbeIn(tc.svc.SNATPorts, tc.packet.src, tc.packet.dst, tc.packet.proto, 0)
				if !tc.svc.SNATPorts.Contains(port) {
					t.Fatalf("the first probe, port %d, is outside %s", port, tc.svc.SNATPorts)
				}
				want := tc.packet
				want.src, want.dst = netip.AddrPortFrom(tc.svc.SNAT, port), be
				ret, out := f.run(tc.packet.build())
				expectFrame(t, "client to VIP", ret, out, f.verdict(tcActOK), want.build())

				reply := tc.reply
				reply.src, reply.dst = be, netip.AddrPortFrom(tc.svc.SNAT, port)
				want = reply
				want.src, want.dst = tc.packet.dst, tc.packet.src
				ret, out = f.run(reply.build())
				expectFrame(t, "backend reply in the range", ret, out, f.verdict(tcActOK), want.build())

				// The same reverse entry, moved to a port of the default
				// range: the program must not even look.
				var rev bpf.WeirCtEntry
				if err := f.d.objs.WeirV1Rnat.Lookup(snatKeyAt(tc.svc.SNAT, be, port, tc.packet.proto), &rev); err != nil {
					t.Fatalf("reverse entry of port %d: %v", port, err)
				}
				outside := DefaultSNATPorts.First
				if err := f.d.objs.WeirV1Rnat.Put(snatKeyAt(tc.svc.SNAT, be, outside, tc.packet.proto), rev); err != nil {
					t.Fatal(err)
				}
				stray := tc.reply
				stray.src, stray.dst = be, netip.AddrPortFrom(tc.svc.SNAT, outside)
				frame := stray.build()
				ret, out = f.run(frame)
				if ret != f.verdict(tcActOK) || !bytes.Equal(out[:len(frame)], frame) {
					t.Errorf("packet to port %d outside %s: verdict %d, frame\n got %x\nwant %x (untouched)",
						outside, tc.svc.SNATPorts, ret, out[:len(frame)], frame)
				}
				if st := serviceState(t, f.d, tc.svc.ID); st.Stats.Packets != 2 || st.Stats.NewFlows != 1 {
					t.Errorf("service counters %+v, want 2 packets and 1 new flow", st.Stats)
				}
			})
		}
	})
}

// snatKeyAt is the reverse-NAT key of a reply from be to snat:port.
func snatKeyAt(snat netip.Addr, be netip.AddrPort, port uint16, proto uint8) bpf.WeirFlow {
	return bpf.WeirFlow{Src: addr16(be.Addr()), Dst: addr16(snat), Sport: be.Port(), Dport: port,
		Proto: proto, IpVersion: ipVersion(be.Addr())}
}

// TestSNATPortsExhaustedWithinRange: a range of one port carries one flow
// per backend; the next flow to that backend is dropped rather than given
// a port outside the range.
func TestSNATPortsExhaustedWithinRange(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newFixture(t, h)
		one := PortRange{First: 20000, Last: 20000}
		svc := Service{ID: 1, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4, SNATPorts: one}
		f.setService(svc, backends4[:1], constantTable(f.d.opts.TableSize, 0))
		first := testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN}
		want := first
		want.src, want.dst = netip.AddrPortFrom(snat4, one.First), backends4[0]
		ret, out := f.run(first.build())
		expectFrame(t, "first flow", ret, out, f.verdict(tcActOK), want.build())

		second := first
		second.src = netip.AddrPortFrom(client4.Addr(), client4.Port()+1)
		if ret, _ := f.run(second.build()); ret != f.verdict(tcActShot) {
			t.Errorf("second flow: verdict %d, want drop (no port left in %s)", ret, one)
		}
		if st := serviceState(t, f.d, svc.ID); st.Stats.Drops[DropSNATExhausted] != 1 {
			t.Errorf("drops %v, want %s 1", st.Stats.Drops, DropSNATExhausted)
		}
	})
}

// TestReplyPortsFollowServices: weir_v1_reply_ports is the hull of every
// half's range. A range change keeps the previous range until the
// service's next change; a deleted service keeps its last one.
func TestReplyPortsFollowServices(t *testing.T) {
	f := newFixture(t, tcHook)
	low := PortRange{First: 10000, Last: 10999}
	high := PortRange{First: 62000, Last: 62999}
	mid := PortRange{First: 30000, Last: 30999}
	table := constantTable(f.d.opts.TableSize, 0)
	steps := []struct {
		name string
		do   func()
		want PortRange
	}{
		{"no service", func() {}, PortRange{}},
		{"one service", func() {
			f.setService(Service{ID: 1, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4, SNATPorts: low}, backends4, table)
		}, low},
		{"a second service", func() {
			f.setService(Service{ID: 2, VIP: vip4UDP, Proto: ProtoUDP, SNAT: snat4, SNATPorts: high}, backends4, table)
		}, PortRange{First: low.First, Last: high.Last}},
		{"the first moves to mid, low still in its other half", func() {
			f.setService(Service{ID: 1, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4, SNATPorts: mid}, backends4, table)
		}, PortRange{First: low.First, Last: high.Last}},
		{"the first changes again, low is gone", func() {
			f.setService(Service{ID: 1, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4, SNATPorts: mid}, backends4[:1], table)
		}, PortRange{First: mid.First, Last: high.Last}},
		{"the second is deleted and keeps its range", func() {
			if err := f.d.DeleteService(2); err != nil {
				t.Fatal(err)
			}
		}, PortRange{First: mid.First, Last: high.Last}},
	}
	for _, s := range steps {
		s.do()
		if got, err := f.d.ReplyPorts(); err != nil || got != s.want {
			t.Fatalf("%s: ReplyPorts() = %s, %v; want %s", s.name, got, err, s.want)
		}
	}
	// A new Dataplane on the same maps (the next weir) reads the halves'
	// ranges back instead of starting from nothing.
	again := openAt(t, f.d.opts)
	if err := again.DeleteService(1); err != nil {
		t.Fatal(err)
	}
	if got, err := again.ReplyPorts(); err != nil || got != (PortRange{First: mid.First, Last: high.Last}) {
		t.Errorf("after reopening and deleting the first: ReplyPorts() = %s, %v; want %s-%d", got, err, mid, high.Last)
	}
}

// TestCheckHostSNATPortsInNetns reads a fresh network namespace's own
// ip_local_port_range, as weir does at start: the old 40000-59999 range on
// an address of the namespace is refused while the kernel's range overlaps
// it, and accepted once the range is narrowed, once the ports are
// reserved, or on an address the namespace does not have (unless
// ip_nonlocal_bind lets its sockets bind it).
func TestCheckHostSNATPortsInNetns(t *testing.T) {
	needBPF(t)
	ns := newNetns(t)
	host := netip.MustParseAddr("203.0.113.1")
	dedicated := netip.MustParseAddr("203.0.113.200")
	old := PortRange{First: 40000, Last: 59999}
	steps := []struct {
		name    string
		sysctls map[string]string
		addr    netip.Addr
		refused bool
	}{
		{"the kernel's default range", map[string]string{localPortRangePath: "32768 60999"}, host, true},
		{"the kernel's default range, the kernel's address", nil, netip.Addr{}, true},
		{"the default SNAT ports", nil, host, false},
		{"a dedicated address", nil, dedicated, false},
		{"the SNAT ports reserved", map[string]string{localReservedPortsPath: "40000-59999"}, host, false},
		{"partly reserved", map[string]string{localReservedPortsPath: "40000-59998"}, host, true},
		{"a dedicated address, non-local binds allowed", map[string]string{"/proc/sys/net/ipv4/ip_nonlocal_bind": "1"}, dedicated, true},
		{"a dedicated address again", map[string]string{"/proc/sys/net/ipv4/ip_nonlocal_bind": "0"}, dedicated, false},
		{"the kernel's range narrowed", map[string]string{localReservedPortsPath: "", localPortRangePath: "32768 39999"}, host, false},
	}
	err := inNetns(ns, func() error {
		if err := addVeth("weir-snat0", "weir-snat1"); err != nil {
			return err
		}
		return testenv.ConfigureLink("weir-snat0", host.String()+"/24")
	})
	if err != nil {
		t.Fatalf("set up namespace: %v", err)
	}
	for _, s := range steps {
		ports := old
		if s.name == "the default SNAT ports" {
			ports = DefaultSNATPorts
		}
		err := inNetns(ns, func() error {
			for path, v := range s.sysctls {
				if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
					return err
				}
			}
			return CheckHostSNATPorts(s.addr, ports)
		})
		switch {
		case s.refused && !errors.Is(err, ErrSNATPortsInUse):
			t.Errorf("%s: %s on %v: error %v, want ErrSNATPortsInUse", s.name, ports, s.addr, err)
		case !s.refused && err != nil:
			t.Errorf("%s: %s on %v: %v", s.name, ports, s.addr, err)
		}
	}
	// The namespace's settings stayed in it.
	b, err := os.ReadFile(localPortRangePath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Fields(string(b))[1] == "39999" {
		t.Errorf("the test process's own ip_local_port_range changed: %q", b)
	}
}

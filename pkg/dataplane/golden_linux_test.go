//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netns"

	"github.com/weir-lb/weir/bpf"
)

// tc verdicts (linux/pkt_cls.h).
const (
	tcActOK       = 0
	tcActShot     = 2
	tcActRedirect = 7
)

// XDP verdicts (linux/bpf.h).
const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpTX       = 3
	xdpRedirect = 4
)

// hook is one build of the program: weir.c compiled for tc or for XDP.
type hook struct {
	name string
	xdp  bool
}

// The two builds. The zero hook is tc's.
var (
	tcHook  = hook{name: "tc"}
	xdpHook = hook{name: "xdp", xdp: true}
)

// hooks are both builds; every golden test runs through each, and both
// must turn the same packet into the same bytes.
var hooks = []hook{tcHook, xdpHook}

// forHooks runs test once per hook, as a subtest named after it.
func forHooks(t *testing.T, test func(t *testing.T, h hook)) {
	t.Helper()
	for _, h := range hooks {
		t.Run(h.name, func(t *testing.T) { test(t, h) })
	}
}

// program is h's build of the program in d.
func (h hook) program(t testing.TB, d *Dataplane) *ebpf.Program {
	t.Helper()
	if !h.xdp {
		return d.objs.WeirIngress
	}
	prog, err := d.xdpProgram()
	if err != nil {
		t.Fatalf("XDP build: %v", err)
	}
	return prog
}

// verdict is h's verdict for a packet tc answers with the tc verdict
// tcRet: the builds differ in their codes only. A packet sent back out of
// the device it came in on is bounce's.
func (h hook) verdict(tcRet uint32) uint32 {
	if !h.xdp {
		return tcRet
	}
	switch tcRet {
	case tcActOK:
		return xdpPass
	case tcActShot:
		return xdpDrop
	case tcActRedirect:
		return xdpRedirect
	}
	panic(fmt.Sprintf("no XDP verdict for tc verdict %d", tcRet))
}

// bounce is h's verdict for a packet it sends back out of the device it
// came in on: tc redirects to that device, XDP returns XDP_TX.
func (h hook) bounce() uint32 {
	if h.xdp {
		return xdpTX
	}
	return tcActRedirect
}

// Documentation addresses only (RFC 5737, RFC 3849).
var (
	client4   = netip.MustParseAddrPort("198.51.100.7:33000")
	vip4TCP   = netip.MustParseAddrPort("192.0.2.10:80")
	vip4UDP   = netip.MustParseAddrPort("192.0.2.10:53")
	snat4     = netip.MustParseAddr("203.0.113.1")
	backends4 = []netip.AddrPort{
		netip.MustParseAddrPort("203.0.113.11:8080"),
		netip.MustParseAddrPort("203.0.113.12:8080"),
		netip.MustParseAddrPort("203.0.113.13:8080"),
	}
	client6   = netip.MustParseAddrPort("[2001:db8:c::7]:33000")
	vip6TCP   = netip.MustParseAddrPort("[2001:db8::10]:443")
	vip6UDP   = netip.MustParseAddrPort("[2001:db8::10]:53")
	snat6     = netip.MustParseAddr("2001:db8:1::1")
	backends6 = []netip.AddrPort{
		netip.MustParseAddrPort("[2001:db8:1::11]:8443"),
		netip.MustParseAddrPort("[2001:db8:1::12]:8443"),
		netip.MustParseAddrPort("[2001:db8:1::13]:8443"),
	}
)

// fixture is a Dataplane plus an empty network namespace to run the program
// in: there the FIB has no routes and forwarding is off, so every verdict of
// a translated packet is TC_ACT_OK whatever the host's routing looks like.
type fixture struct {
	t  *testing.T
	h  hook
	d  *Dataplane
	ns netns.NsHandle
}

func newFixture(t *testing.T, h hook) *fixture {
	t.Helper()
	d := openTest(t)
	return &fixture{t: t, h: h, d: d, ns: newNetns(t)}
}

// prog is the build of the program the fixture runs.
func (f *fixture) prog() *ebpf.Program {
	f.t.Helper()
	return f.h.program(f.t, f.d)
}

// verdict is the fixture's hook's verdict for the tc verdict tcRet.
func (f *fixture) verdict(tcRet uint32) uint32 { return f.h.verdict(tcRet) }

// run feeds frame to the program through BPF_PROG_TEST_RUN.
func (f *fixture) run(frame []byte) (uint32, []byte) {
	f.t.Helper()
	return runProg(f.t, f.prog(), f.ns, frame, 0)
}

// skbContext is the head of struct __sk_buff, enough to pick the device a
// test run's packet arrives on.
type skbContext struct {
	Len, PktType, Mark, QueueMapping, Protocol, VlanPresent, VlanTci, VlanProto uint32
	Priority, IngressIfindex, Ifindex                                           uint32
}

// xdpContext is struct xdp_md: a test run's frame spans data to data_end
// and arrives on ingress_ifindex.
type xdpContext struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// runProg runs prog (either build) on frame in ns, arriving on device
// ifindex (0: the namespace's loopback).
func runProg(t testing.TB, prog *ebpf.Program, ns netns.NsHandle, frame []byte, ifindex int) (uint32, []byte) {
	t.Helper()
	opts := ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256)}
	if ifindex != 0 {
		if prog.Type() == ebpf.XDP {
			opts.Context = xdpContext{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)}
		} else {
			opts.Context = skbContext{Ifindex: uint32(ifindex)}
		}
	}
	var ret uint32
	err := inNetns(ns, func() error {
		var err error
		ret, err = prog.Run(&opts)
		return err
	})
	if err != nil {
		t.Fatalf("run program: %v", err)
	}
	return ret, opts.DataOut
}

// sequentialTable spreads a table of size m over n backends round robin,
// which is all a data-plane test needs from a Maglev table.
func sequentialTable(m uint32, n int) []uint32 {
	t := make([]uint32, m)
	for j := range t {
		t[j] = uint32(j % n)
	}
	return t
}

// constantTable sends every flow to backend i.
func constantTable(m uint32, i uint32) []uint32 {
	t := make([]uint32, m)
	for j := range t {
		t[j] = i
	}
	return t
}

func (f *fixture) setService(svc Service, backends []netip.AddrPort, table []uint32) uint32 {
	f.t.Helper()
	gen, err := f.d.SetService(svc, backends, table)
	if err != nil {
		f.t.Fatalf("SetService(%+v): %v", svc, err)
	}
	return gen
}

// expectFrame fails unless the program returned wantRet and produced want,
// with valid checksums.
func expectFrame(t *testing.T, what string, gotRet uint32, got []byte, wantRet uint32, want []byte) {
	t.Helper()
	if gotRet != wantRet {
		t.Errorf("%s: verdict %d, want %d", what, gotRet, wantRet)
	}
	if err := checkFrame(got); err != nil {
		t.Errorf("%s: %v", what, err)
	}
	if !sameFrame(got, want) {
		t.Errorf("%s: frame differs\n got %s\nwant %s", what, hex.EncodeToString(got), hex.EncodeToString(want))
	}
}

// translate sends p through the program and checks it comes out addressed
// from snat:port to the expected backend; it returns that backend and port.
func (f *fixture) translate(p testPacket, backends []netip.AddrPort, table []uint32, snat netip.Addr) (netip.AddrPort, uint16) {
	f.t.Helper()
	be := backends[expectedBackend(table, p.src, p.dst, p.proto)]
	port := expectedSNATPort(p.src, p.dst, p.proto)
	want := p
	want.src, want.dst = netip.AddrPortFrom(snat, port), be
	ret, out := f.run(p.build())
	expectFrame(f.t, "client to VIP", ret, out, f.verdict(tcActOK), want.build())
	return be, port
}

func TestTranslateGolden(t *testing.T) {
	needBPF(t)
	tests := []struct {
		name     string
		svc      Service
		backends []netip.AddrPort
		packet   testPacket
		reply    testPacket // src, dst filled in by the test
	}{
		{
			name:     "IPv4 TCP SYN",
			svc:      Service{ID: 1, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4},
			backends: backends4,
			packet:   testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN},
			reply:    testPacket{proto: ProtoTCP, tcpFlags: tcpSYN | tcpACK},
		},
		{
			name:     "IPv4 UDP",
			svc:      Service{ID: 2, VIP: vip4UDP, Proto: ProtoUDP, SNAT: snat4},
			backends: backends4,
			packet:   testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("query")},
			reply:    testPacket{proto: ProtoUDP, payload: []byte("answer!")},
		},
		{
			name:     "IPv4 UDP without checksum",
			svc:      Service{ID: 2, VIP: vip4UDP, Proto: ProtoUDP, SNAT: snat4},
			backends: backends4,
			packet:   testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("q"), zeroUDPCsum: true},
			reply:    testPacket{proto: ProtoUDP, payload: []byte("a"), zeroUDPCsum: true},
		},
		{
			name:     "IPv6 TCP SYN",
			svc:      Service{ID: 3, VIP: vip6TCP, Proto: ProtoTCP, SNAT: snat6},
			backends: backends6,
			packet:   testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpSYN},
			reply:    testPacket{proto: ProtoTCP, tcpFlags: tcpSYN | tcpACK},
		},
		{
			name:     "IPv6 UDP",
			svc:      Service{ID: 0, VIP: vip6UDP, Proto: ProtoUDP, SNAT: snat6},
			backends: backends6,
			packet:   testPacket{src: client6, dst: vip6UDP, proto: ProtoUDP, payload: []byte("query6")},
			reply:    testPacket{proto: ProtoUDP, payload: []byte("answer6")},
		},
		{
			name:     "IPv6 TCP behind destination options",
			svc:      Service{ID: 3, VIP: vip6TCP, Proto: ProtoTCP, SNAT: snat6},
			backends: backends6,
			packet: testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpACK,
				ext6: []uint8{ext6DstOpts}, payload: []byte("data")},
			reply: testPacket{proto: ProtoTCP, tcpFlags: tcpACK, ext6: []uint8{ext6DstOpts}},
		},
	}
	forHooks(t, func(t *testing.T, h hook) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, h)
				table := sequentialTable(f.d.opts.TableSize, len(tc.backends))
				f.setService(tc.svc, tc.backends, table)

				be, port := f.translate(tc.packet, tc.backends, table, tc.svc.SNAT)

				reply := tc.reply
				reply.src, reply.dst = be, netip.AddrPortFrom(tc.svc.SNAT, port)
				want := reply
				want.src, want.dst = tc.packet.dst, tc.packet.src
				ret, out := f.run(reply.build())
				expectFrame(t, "backend reply", ret, out, f.verdict(tcActOK), want.build())

				// The next packet of the flow hits conntrack and comes out the same.
				f.translate(tc.packet, tc.backends, table, tc.svc.SNAT)
				st := serviceState(t, f.d, tc.svc.ID)
				if st.Stats.Packets != 3 || st.Stats.NewFlows != 1 {
					t.Errorf("service counters %+v, want 3 packets and 1 new flow", st.Stats)
				}
			})
		}
	})
}

func TestUDPZeroChecksumStaysZero(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newFixture(t, h)
		svc := Service{ID: 1, VIP: vip4UDP, Proto: ProtoUDP, SNAT: snat4}
		f.setService(svc, backends4, sequentialTable(f.d.opts.TableSize, len(backends4)))
		p := testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("q"), zeroUDPCsum: true}
		_, out := f.run(p.build())
		pf, err := parseFrame(out)
		if err != nil {
			t.Fatal(err)
		}
		if c := out[pf.csumOff : pf.csumOff+2]; !bytes.Equal(c, []byte{0, 0}) {
			t.Errorf("UDP checksum %x, want 0000 (none)", c)
		}
	})
}

func TestPassThrough(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newFixture(t, h)
		f.setService(Service{ID: 0, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}, backends4,
			sequentialTable(f.d.opts.TableSize, len(backends4)))
		f.setService(Service{ID: 1, VIP: vip6TCP, Proto: ProtoTCP, SNAT: snat6}, backends6,
			sequentialTable(f.d.opts.TableSize, len(backends6)))
		otherPort := netip.AddrPortFrom(vip4TCP.Addr(), 81)
		arp := append(append(append([]byte{}, macDst[:]...), macSrc[:]...), 0x08, 0x06)
		arp = append(arp, make([]byte, 28)...)

		tests := []struct {
			name  string
			frame []byte
		}{
			{"IPv4 TCP to another address", testPacket{src: client4, dst: backends4[0], proto: ProtoTCP, tcpFlags: tcpSYN}.build()},
			{"IPv4 TCP to another port of the VIP", testPacket{src: client4, dst: otherPort, proto: ProtoTCP, tcpFlags: tcpSYN}.build()},
			{"IPv4 UDP to a TCP VIP", testPacket{src: client4, dst: vip4TCP, proto: ProtoUDP}.build()},
			{"ICMP echo to the VIP", testPacket{src: client4, dst: vip4TCP, proto: protoICMP}.build()},
			{"ICMPv6 echo to the VIP", testPacket{src: client6, dst: vip6TCP, proto: protoICMPv6}.build()},
			{"IPv4 first fragment", testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN, frag: moreFrags}.build()},
			{"IPv4 later fragment", testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, frag: laterFragment, payload: []byte("tail")}.build()},
			{"IPv6 fragment", testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpSYN, frag: moreFrags}.build()},
			{"IPv6 routing header", testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpSYN, ext6: []uint8{ext6Routing}}.build()},
			{"IPv4 TCP header cut short", testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN, truncateL4: 4}.build()},
			{"ARP", arp},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ret, out := f.run(tc.frame)
				if want := f.verdict(tcActOK); ret != want {
					t.Errorf("verdict %d, want %d (pass)", ret, want)
				}
				if !bytes.Equal(out, tc.frame) {
					t.Errorf("frame changed\n got %x\nwant %x", out, tc.frame)
				}
			})
		}
		for _, st := range services(t, f.d) {
			if st.Stats.Packets != 0 {
				t.Errorf("service %d counted %d packets, want 0", st.ID, st.Stats.Packets)
			}
		}
	})
}

func TestFlowSticksToBackendAcrossTables(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newFixture(t, h)
		m := f.d.opts.TableSize
		svc := Service{ID: 2, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
		flow1 := testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN}
		flow2 := flow1
		flow2.src = netip.AddrPortFrom(client4.Addr(), client4.Port()+1)

		if gen := f.setService(svc, backends4, constantTable(m, 0)); gen != 1 {
			t.Errorf("first generation %d, want 1", gen)
		}
		if be, _ := f.translate(flow1, backends4, constantTable(m, 0), snat4); be != backends4[0] {
			t.Fatalf("flow 1 went to %s, want %s", be, backends4[0])
		}

		// A new table sends everything to backend 1, but flow 1 is established.
		if gen := f.setService(svc, backends4, constantTable(m, 1)); gen != 2 {
			t.Errorf("second generation %d, want 2", gen)
		}
		flow1.tcpFlags = tcpACK
		f.translate(flow1, backends4, constantTable(m, 0), snat4)
		f.translate(flow2, backends4, constantTable(m, 1), snat4)

		// Backend 0 leaves: flow 1 moves to a live backend on its next packet.
		remaining := backends4[1:]
		f.setService(svc, remaining, constantTable(m, 1))
		if be, _ := f.translate(flow1, remaining, constantTable(m, 1), snat4); be != backends4[2] {
			t.Errorf("flow 1 moved to %s, want %s", be, backends4[2])
		}

		st := serviceState(t, f.d, svc.ID)
		if st.Generation != 3 || len(st.Backends) != 2 {
			t.Fatalf("state %+v, want generation 3 with 2 backends", st)
		}
		if st.Stats.Packets != 4 || st.Stats.NewFlows != 3 {
			t.Errorf("service counters %+v, want 4 packets, 3 new flows", st.Stats)
		}
		// backends4[1] kept its counters across both table changes.
		if got := st.BackendStats[0]; got.Packets != 1 || got.NewFlows != 1 {
			t.Errorf("counters of %s: %+v, want 1 packet, 1 new flow", st.Backends[0], got)
		}
		if got := st.BackendStats[1]; got.Packets != 1 || got.NewFlows != 1 {
			t.Errorf("counters of %s: %+v, want 1 packet, 1 new flow", st.Backends[1], got)
		}
	})
}

func TestReverseEntryLostReclaimsPort(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newFixture(t, h)
		table := sequentialTable(f.d.opts.TableSize, len(backends4))
		svc := Service{ID: 0, VIP: vip4UDP, Proto: ProtoUDP, SNAT: snat4}
		f.setService(svc, backends4, table)
		p := testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("x")}
		be, port := f.translate(p, backends4, table, snat4)

		rk := bpf.WeirFlow{Src: addr16(be.Addr()), Dst: addr16(snat4), Sport: be.Port(), Dport: port,
			Proto: ProtoUDP, IpVersion: 4}
		if err := f.d.objs.WeirV1Rnat.Delete(rk); err != nil {
			t.Fatalf("delete reverse entry: %v", err)
		}
		// The flow notices when it next rechecks its entry: after the flow
		// cache TTL, which expire makes as good as passed.
		expire(t, f.d, f.d.objs.WeirV1Ct, clientFlow(p))
		f.translate(p, backends4, table, snat4)
		var rv bpf.WeirCtEntry
		if err := f.d.objs.WeirV1Rnat.Lookup(rk, &rv); err != nil {
			t.Fatalf("reverse entry not restored: %v", err)
		}
		if st := serviceState(t, f.d, svc.ID); st.Stats.NewFlows != 2 {
			t.Errorf("new flows %d, want 2 (the flow was re-created)", st.Stats.NewFlows)
		}
	})
}

func TestDrops(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) { testDrops(t, h) })
}

func testDrops(t *testing.T, h hook) {
	t.Run("no backends", func(t *testing.T) {
		f := newFixture(t, h)
		svc := Service{ID: 3, VIP: vip6UDP, Proto: ProtoUDP, SNAT: snat6}
		f.setService(svc, nil, nil)
		ret, _ := f.run(testPacket{src: client6, dst: vip6UDP, proto: ProtoUDP}.build())
		if want := f.verdict(tcActShot); ret != want {
			t.Errorf("verdict %d, want %d (drop)", ret, want)
		}
		if d := serviceState(t, f.d, svc.ID).Stats.Drops; d[DropTableEmpty] != 1 {
			t.Errorf("drops %v, want %s 1", d, DropTableEmpty)
		}
	})
	t.Run("SNAT ports exhausted", func(t *testing.T) {
		f := newFixture(t, h)
		svc := Service{ID: 1, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
		table := constantTable(f.d.opts.TableSize, 0)
		f.setService(svc, backends4, table)
		p := testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN}
		occupySNATPorts(t, f.d, p, backends4[0], coarseNow(t), 0)
		ret, _ := f.run(p.build())
		if want := f.verdict(tcActShot); ret != want {
			t.Errorf("verdict %d, want %d (drop)", ret, want)
		}
		st := serviceState(t, f.d, svc.ID)
		if st.Stats.Drops[DropSNATExhausted] != 1 || st.BackendStats[0].Drops[DropSNATExhausted] != 1 {
			t.Errorf("service drops %v, backend drops %v, want %s 1 in both",
				st.Stats.Drops, st.BackendStats[0].Drops, DropSNATExhausted)
		}
	})
}

// occupySNATPorts gives every port the program would probe for p, towards
// be, to another client whose flow was last seen at seen (coarse clock)
// and has seen the closing bits tcp (WEIR_TCP_*).
func occupySNATPorts(t *testing.T, d *Dataplane, p testPacket, be netip.AddrPort, seen uint64, tcp uint32) {
	t.Helper()
	var other bpf.WeirCtEntry
	other.Nat.Src, other.Nat.Dst = addr16(p.dst.Addr()), addr16(otherClient.Addr())
	other.Nat.Sport, other.Nat.Dport = p.dst.Port(), otherClient.Port()
	other.Seen, other.Tcp = seen, tcp
	for i := range uint32(snatProbes) {
		port := snatProbe(p.src, p.dst, p.proto, i)
		rk := snatKey(p, be, port)
		if err := d.objs.WeirV1Rnat.Put(rk, other); err != nil {
			t.Fatalf("occupy port %d: %v", port, err)
		}
	}
}

func services(t testing.TB, d *Dataplane) []ServiceState {
	t.Helper()
	st, err := d.Services()
	if err != nil {
		t.Fatalf("Services: %v", err)
	}
	return st
}

func serviceState(t testing.TB, d *Dataplane, id uint32) ServiceState {
	t.Helper()
	for _, st := range services(t, d) {
		if st.ID == id {
			return st
		}
	}
	t.Fatalf("service %d not found", id)
	return ServiceState{}
}

// TestHooksShareFlows starts a flow under one build and continues it under
// the other, both ways: the builds share conntrack, reverse NAT and the
// counters, so a flow survives a move between hooks (and XDP handing a
// packet to the tc build behind it) with the same rewrite and one count.
func TestHooksShareFlows(t *testing.T) {
	for _, order := range [][2]hook{{tcHook, xdpHook}, {xdpHook, tcHook}} {
		t.Run(order[0].name+" then "+order[1].name, func(t *testing.T) {
			first := newFixture(t, order[0])
			then := &fixture{t: t, h: order[1], d: first.d, ns: first.ns}
			table := sequentialTable(first.d.opts.TableSize, len(backends4))
			svc := Service{ID: 1, VIP: vip4UDP, Proto: ProtoUDP, SNAT: snat4}
			first.setService(svc, backends4, table)
			p := testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("query")}

			be, port := first.translate(p, backends4, table, snat4)
			if be2, port2 := then.translate(p, backends4, table, snat4); be2 != be || port2 != port {
				t.Errorf("%s sent the flow to %s from port %d, %s to %s from %d", order[1].name, be2, port2,
					order[0].name, be, port)
			}
			reply := testPacket{src: be, dst: netip.AddrPortFrom(snat4, port), proto: ProtoUDP, payload: []byte("answer")}
			want := reply
			want.src, want.dst = p.dst, p.src
			ret, out := then.run(reply.build())
			expectFrame(t, "reply under "+order[1].name, ret, out, then.verdict(tcActOK), want.build())
			if st := serviceState(t, first.d, svc.ID); st.Stats.Packets != 3 || st.Stats.NewFlows != 1 {
				t.Errorf("service counters %+v, want 3 packets and 1 new flow", st.Stats)
			}
		})
	}
}

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
)

// tooBigAnswer is the ICMP answer the balancer must make of client frame
// in, too big for a route of MTU routeMTU once encapsulated, written here
// from the RFCs: MAC addresses swapped; from the VIP to the client; IPv4
// "fragmentation needed" (RFC 792/1191: type 3 code 4, next-hop MTU in the
// header's last 16 bits) quoting up to 548 bytes (576 in all, RFC 1812),
// or ICMPv6 "packet too big" (RFC 4443: type 2, 32-bit MTU) quoting up to
// 1232 (1280 in all); quotes cut to a multiple of 4 bytes. id is the IPv4
// identification, which the program picks at random.
func tooBigAnswer(in []byte, routeMTU int, id uint16) []byte {
	src := netip.AddrFrom4([4]byte(in[14+16 : 14+20]))
	dst := netip.AddrFrom4([4]byte(in[14+12 : 14+16]))
	e := icmpError{typ: icmpDestUnreach, code: icmpFragNeeded, rest: uint32(routeMTU - 20)}
	limit := 576 - 28
	if in[12] == 0x86 {
		src = netip.AddrFrom16([16]byte(in[14+24 : 14+40]))
		dst = netip.AddrFrom16([16]byte(in[14+8 : 14+24]))
		e = icmpError{typ: icmp6PacketTooBig, rest: uint32(routeMTU - 40)}
		limit = 1280 - 48
	}
	e.src, e.dst = src, dst
	e.quoted = in[14:]
	if len(e.quoted) > limit {
		e.quoted = e.quoted[:limit]
	}
	e.quoted = e.quoted[:len(e.quoted)&^3]
	out := e.build()
	copy(out[0:6], in[6:12])
	copy(out[6:12], in[0:6])
	if src.Is4() {
		ip := out[14:34]
		binary.BigEndian.PutUint16(ip[4:], id)
		binary.BigEndian.PutUint16(ip[6:], 0) // no DF: any router may fragment it
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], checksum(ip))
	}
	return out
}

// TestDSRTooBigAnswer: a client packet that a DSR service cannot
// encapsulate within the route's MTU, with DF (every IPv6 packet has it),
// comes back to the client as ICMP "fragmentation needed" / "packet too
// big" carrying the MTU it must use, every checksum right; without DF it
// is dropped. Both count as dsr_too_big.
func TestDSRTooBigAnswer(t *testing.T) {
	const mtu = 1400
	forHooks(t, func(t *testing.T, h hook) {
		f := newRoutedFixture(t, h, longTTL)
		f.in(func() error { return setMTU(backendLink, mtu) })
		tests := []struct {
			name   string
			svc    Service
			packet testPacket
			df     bool
			answer bool
		}{
			{"IPv4 TCP, DF", dsrService(0, vip4TCP, ProtoTCP), testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpACK}, true, true},
			{"IPv4 UDP, DF", dsrService(1, vip4UDP, ProtoUDP), testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP}, true, true},
			{"IPv4 UDP, no DF", dsrService(1, vip4UDP, ProtoUDP), testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP}, false, false},
			{"IPv6 TCP", dsrService(2, vip6TCP, ProtoTCP), testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpACK}, false, true},
			{"IPv6 UDP", dsrService(3, vip6UDP, ProtoUDP), testPacket{src: client6, dst: vip6UDP, proto: ProtoUDP}, false, true},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				bes := dsrBackends(tc.svc.VIP)
				f.setService(tc.svc, bes, constantTable(f.d.opts.TableSize, 0))
				before := serviceState(t, f.d, tc.svc.ID).Stats.Drops[DropDSRTooBig]
				// Payload sizes: one byte over, and a full 1500-byte packet.
				hdrs, overhead := 20+8, 20
				if tc.svc.VIP.Addr().Is6() {
					hdrs, overhead = 40+8, 40
				}
				if tc.packet.proto == ProtoTCP {
					hdrs += 12
				}
				for i, size := range []int{mtu - overhead - hdrs + 1, 1500 - hdrs} {
					p := tc.packet
					p.payload = bytes.Repeat([]byte{byte(i + 1)}, size)
					in := withInnerFields(p.build(), tc.df)
					what := fmt.Sprintf("IP packet of %d bytes", len(in)-14)
					ret, out := runProg(t, f.prog(), f.ns, in, f.clientIf)
					if !tc.answer {
						if want := f.verdict(tcActShot); ret != want {
							t.Errorf("%s: verdict %d, want %d (drop)", what, ret, want)
						}
						continue
					}
					id := uint16(0)
					if tc.svc.VIP.Addr().Is4() && len(out) > 20 {
						id = binary.BigEndian.Uint16(out[18:])
					}
					expectSame(t, what, ret, out, h.bounce(), tooBigAnswer(in, mtu, id))
					if err := checkICMPFrame(out); err != nil {
						t.Errorf("%s: %v", what, err)
					}
				}
				st := serviceState(t, f.d, tc.svc.ID)
				if got := st.Stats.Drops[DropDSRTooBig] - before; got != 2 {
					t.Errorf("dsr_too_big counted %d, want 2", got)
				}
				if st.BackendStats[0].Packets != 0 {
					t.Errorf("backend counted %d packets, want none", st.BackendStats[0].Packets)
				}
			})
		}
	})
}

// TestDSRICMPForward: an ICMP error arriving at the VIP about a DSR flow
// (from a router on the client's path, quoting the backend's VIP → client
// packet) goes unchanged, encapsulated, to the flow's backend: the one in
// its conntrack entry, even after the table changed, or for a flow this
// balancer never saw, the one the Maglev table gives the flow (as its own
// packets would get).
func TestDSRICMPForward(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newRoutedFixture(t, h, longTTL)
		m := f.d.opts.TableSize
		flows := []struct {
			name   string
			svc    Service
			client testPacket
			router netip.Addr
			kind   errorKind
		}{
			{"IPv4 TCP", dsrService(0, vip4TCP, ProtoTCP), testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpACK, payload: []byte("GET /")},
				netip.MustParseAddr("198.51.100.254"), errorKind{"fragmentation needed", icmpDestUnreach, icmpFragNeeded, 1280}},
			{"IPv4 UDP", dsrService(1, vip4UDP, ProtoUDP), testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("query")},
				netip.MustParseAddr("198.51.100.254"), errorKind{"port unreachable", icmpDestUnreach, icmpPortUnreach, 0}},
			{"IPv6 TCP", dsrService(2, vip6TCP, ProtoTCP), testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpACK, payload: []byte("GET /")},
				netip.MustParseAddr("2001:db8:c::fe"), errorKind{"packet too big", icmp6PacketTooBig, 0, 1280}},
			{"IPv6 UDP", dsrService(3, vip6UDP, ProtoUDP), testPacket{src: client6, dst: vip6UDP, proto: ProtoUDP, payload: []byte("query")},
				netip.MustParseAddr("2001:db8:c::fe"), errorKind{"time exceeded", icmp6TimeExceeded, 0, 0}},
		}
		for _, fl := range flows {
			t.Run(fl.name, func(t *testing.T) {
				bes := dsrBackends(fl.svc.VIP)
				// The backend's reply, as it sent it (from the VIP), and a
				// second client's, a flow the balancer never saw.
				reply := testPacket{src: fl.client.dst, dst: fl.client.src, proto: fl.client.proto, tcpFlags: fl.client.tcpFlags,
					payload: bytes.Repeat([]byte("large answer "), 100)}
				unseen := fl.client
				unseen.src = netip.AddrPortFrom(fl.client.src.Addr(), fl.client.src.Port()+7)
				unseenReply := reply
				unseenReply.dst = unseen.src
				errorAbout := func(p testPacket, l4Bytes int) []byte {
					return icmpError{src: fl.router, dst: fl.svc.VIP.Addr(), typ: fl.kind.typ, code: fl.kind.code,
						rest: fl.kind.rest, quoted: quote(p, l4Bytes)}.build()
				}
				check := func(what string, in []byte, be int) {
					t.Helper()
					if err := checkICMPFrame(in); err != nil {
						t.Fatalf("%s: the test's own frame: %v", what, err)
					}
					ret, out := runProg(t, f.prog(), f.ns, in, f.clientIf)
					id := uint16(0)
					if fl.svc.VIP.Addr().Is4() && len(out) > 20 {
						id = outerID(out) // the error allows fragmenting
					}
					expectSame(t, what, ret, out, f.verdict(tcActRedirect), encapsulated(in, fl.svc.SNAT, bes[be].Addr(), backendMAC(be), f.backendDev, id))
					if len(out) > 14+40 {
						if err := checkICMPFrame(innerFrame(out)); err != nil {
							t.Errorf("%s: inner packet: %v", what, err)
						}
					}
				}

				f.setService(fl.svc, bes, constantTable(m, 0))
				if ret, _ := f.send(fl.client); ret != f.verdict(tcActRedirect) {
					t.Fatalf("client packet: verdict %d, want %d (redirect)", ret, f.verdict(tcActRedirect))
				}
				f.setService(fl.svc, bes, constantTable(m, 1))
				for _, l4Bytes := range []int{0, 8} {
					check(fmt.Sprintf("%s quoting %d L4 bytes, known flow", fl.kind.name, l4Bytes), errorAbout(reply, l4Bytes), 0)
				}
				table := sequentialTable(m, len(bes))
				f.setService(fl.svc, bes, table)
				want := int(expectedBackend(table, unseen.src, unseen.dst, unseen.proto))
				check(fl.kind.name+", unknown flow", errorAbout(unseenReply, 8), want)
				if ret, out := f.send(unseen); ret != f.verdict(tcActRedirect) || len(out) < 14 || !bytes.Equal(innerFrame(out)[14:], unseen.build()[14:]) ||
					!bytes.Equal(out[0:6], backendMAC(want)) {
					t.Errorf("the unknown flow's own packet: verdict %d, frame %x: want it to %s", ret, out, bes[want])
				}
				st := serviceState(t, f.d, fl.svc.ID)
				if st.Stats.Packets != 5 || st.Stats.NewFlows != 2 {
					t.Errorf("service %+v: want 5 packets (2 client, 3 errors), 2 new flows (errors make none)", st.Stats)
				}
			})
		}
	})
}

// TestDSRICMPErrorPassThrough: an error about a flow of no service, or
// about a flow of a DSR service's VIP on another port, is not the
// balancer's: it passes to the kernel untouched.
func TestDSRICMPErrorPassThrough(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newRoutedFixture(t, h, longTTL)
		svc := dsrService(0, vip4TCP, ProtoTCP)
		f.setService(svc, dsrBackends(vip4TCP), constantTable(f.d.opts.TableSize, 0))
		for _, from := range []netip.AddrPort{netip.AddrPortFrom(vip4TCP.Addr(), 8081), netip.MustParseAddrPort("192.0.2.99:80")} {
			reply := testPacket{src: from, dst: client4, proto: ProtoTCP, tcpFlags: tcpACK, payload: []byte("x")}
			in := icmpError{src: netip.MustParseAddr("198.51.100.254"), dst: from.Addr(), typ: icmpDestUnreach,
				code: icmpFragNeeded, rest: 1280, quoted: quote(reply, 8)}.build()
			ret, out := runProg(t, f.prog(), f.ns, in, f.clientIf)
			expectSame(t, "error about "+from.String(), ret, out, f.verdict(tcActOK), in)
		}
	})
}

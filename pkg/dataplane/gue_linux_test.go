//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
)

// GUE's source ports, from bpf/weir.h and bpf/dsr.h: the flow hashed with
// its own seed, 14 bits of it in the dynamic range 49152-65535.
const (
	seedGUE      = 0x67756520
	gueSportBase = 0xc000
	gueSportMask = 0x3fff
)

// expectedGUESourcePort is the outer UDP source port of a client flow.
func expectedGUESourcePort(src, dst netip.AddrPort, proto uint8) uint16 {
	return gueSportBase | uint16(murmur3(flowBytes(src, dst, proto), seedGUE)&gueSportMask)
}

func gueService(id uint32, vip netip.AddrPort, proto uint8, port uint16) Service {
	svc := dsrService(id, vip, proto)
	svc.Forwarding, svc.GUEPort = ForwardingDSRGUE, port
	return svc
}

// gueEncapsulated is inner (an Ethernet frame) as the balancer must send it
// to backend from src in GUE version 1 ("direct IP"): MAC addresses dmac
// and smac; an outer IP header written here from the RFCs (IPv4: DS field
// and DF copied, TTL 64, protocol 17, its own checksum, identification id;
// IPv6: traffic class and flow label copied, hop limit 64, next header 17);
// a UDP header from sport to dport whose length covers the inner packet and
// whose checksum is zero; then the inner packet byte for byte.
func gueEncapsulated(inner []byte, src, backend netip.Addr, dmac, smac []byte, id, sport, dport uint16) []byte {
	out := append([]byte(nil), inner[:14]...)
	copy(out[0:6], dmac)
	copy(out[6:12], smac)
	ip := inner[14:]
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(ip)))
	if backend.Is4() {
		h := make([]byte, 20)
		h[0] = 0x45
		h[1] = ip[1]
		binary.BigEndian.PutUint16(h[2:], uint16(20+8+len(ip)))
		binary.BigEndian.PutUint16(h[4:], id)
		binary.BigEndian.PutUint16(h[6:], binary.BigEndian.Uint16(ip[6:])&0x4000)
		h[8], h[9] = 64, ProtoUDP
		s, d := src.As4(), backend.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		binary.BigEndian.PutUint16(h[10:], checksum(h))
		out = append(out, h...)
	} else {
		h := make([]byte, 40)
		copy(h[0:4], ip[0:4])
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(ip)))
		h[6], h[7] = ProtoUDP, 64
		s, d := src.As16(), backend.As16()
		copy(h[8:], s[:])
		copy(h[24:], d[:])
		out = append(out, h...)
	}
	out = append(out, udp...)
	return append(out, ip...)
}

// gueInnerFrame checks a GUE frame's outer headers as a receiver would
// (IPv4 header checksum, lengths, the UDP destination port, the first
// nibble of the payload naming an IP version) and returns the Ethernet
// frame it carries, as fou hands it on.
func gueInnerFrame(frame []byte, port uint16) ([]byte, error) {
	if len(frame) < 14+40+8+20 {
		return nil, fmt.Errorf("frame of %d bytes is too short for GUE", len(frame))
	}
	hdr, length := 40, 0
	if frame[12] == 0x08 {
		hdr = 20
		if fold(sum16(0, frame[14:34])) != 0xffff {
			return nil, errors.New("outer IPv4 header checksum is wrong")
		}
		if frame[14+9] != ProtoUDP {
			return nil, fmt.Errorf("outer protocol %d, want UDP", frame[14+9])
		}
		length = int(binary.BigEndian.Uint16(frame[16:])) - 20
	} else {
		if frame[14+6] != ProtoUDP {
			return nil, fmt.Errorf("outer next header %d, want UDP", frame[14+6])
		}
		length = int(binary.BigEndian.Uint16(frame[18:]))
	}
	udp := frame[14+hdr:]
	if length != len(udp) || int(binary.BigEndian.Uint16(udp[4:])) != len(udp) {
		return nil, fmt.Errorf("outer length %d, UDP length %d: want both %d", length, binary.BigEndian.Uint16(udp[4:]), len(udp))
	}
	if got := binary.BigEndian.Uint16(udp[2:]); got != port {
		return nil, fmt.Errorf("UDP destination port %d, want %d", got, port)
	}
	if sp := binary.BigEndian.Uint16(udp[0:]); sp < gueSportBase {
		return nil, fmt.Errorf("UDP source port %d is below the dynamic range", sp)
	}
	if udp[8]>>4 != 4 && udp[8]>>4 != 6 {
		return nil, fmt.Errorf("payload starts with version %d: not GUE version 1", udp[8]>>4)
	}
	return append(append([]byte(nil), frame[:14]...), udp[8:]...), nil
}

// TestGUEGolden sends client packets to GUE services through the program:
// each leaves for its Maglev backend as GUE, byte for byte as written here,
// the client's packet unchanged inside, on the full path and from the
// cache alike.
func TestGUEGolden(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newRoutedFixture(t, h, longTTL)
		payload := []byte("direct server return in UDP")
		tests := []struct {
			name   string
			svc    Service
			packet testPacket
			df     bool
		}{
			{"IPv4 TCP, DF", gueService(0, vip4TCP, ProtoTCP, 0),
				testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN}, true},
			{"IPv4 UDP, no DF, port 9999", gueService(1, vip4UDP, ProtoUDP, 9999),
				testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: payload}, false},
			{"IPv6 TCP", gueService(2, vip6TCP, ProtoTCP, 0),
				testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpACK, payload: payload}, false},
			{"IPv6 UDP", gueService(3, vip6UDP, ProtoUDP, 0),
				testPacket{src: client6, dst: vip6UDP, proto: ProtoUDP, payload: payload}, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				port := tc.svc.GUEPort
				if port == 0 {
					port = DefaultGUEPort
				}
				bes := dsrBackends(tc.svc.VIP)
				table := sequentialTable(f.d.opts.TableSize, len(bes))
				f.setService(tc.svc, bes, table)
				i := expectedBackend(table, tc.packet.src, tc.packet.dst, tc.packet.proto)
				sport := expectedGUESourcePort(tc.packet.src, tc.packet.dst, tc.packet.proto)
				in := withInnerFields(tc.packet.build(), tc.df)
				for _, path := range []string{"full path", "cached"} {
					ret, out := runProg(t, f.prog(), f.ns, in, f.clientIf)
					id := uint16(0)
					if !tc.df && tc.svc.VIP.Addr().Is4() {
						id = outerID(out) // random where fragmenting is allowed
					}
					want := gueEncapsulated(in, tc.svc.SNAT, bes[i].Addr(), backendMAC(int(i)), f.backendDev, id, sport, port)
					expectSame(t, path, ret, out, f.verdict(tcActRedirect), want)
					inner, err := gueInnerFrame(out, port)
					if err != nil {
						t.Fatalf("%s: %v", path, err)
					}
					if err := checkFrame(inner); err != nil {
						t.Errorf("%s: inner packet: %v", path, err)
					}
				}
				e := entry(t, f.d.objs.WeirV1Ct, clientFlow(tc.packet))
				if e.Forwarding != uint8(ForwardingDSRGUE) || e.GuePort != port || e.Nat.Sport != sport || e.Fwd.Action != fwdRedirect {
					t.Errorf("conntrack entry %+v: want forwarding %d, GUE port %d, source port %d, a cached redirect",
						e, ForwardingDSRGUE, port, sport)
				}
				st := serviceState(t, f.d, tc.svc.ID)
				if st.Stats.Packets != 2 || st.Stats.NewFlows != 1 || st.BackendStats[i].Packets != 2 {
					t.Errorf("service %+v, backend %+v: want 2 packets, 1 new flow", st.Stats, st.BackendStats[i])
				}
				if st.Forwarding != ForwardingDSRGUE || st.GUEPort != port || !st.SNATPorts.IsZero() {
					t.Errorf("read back %s, GUE port %d, SNAT ports %s: want dsr gue, %d, none", st.Forwarding, st.GUEPort, st.SNATPorts, port)
				}
			})
		}
	})
}

// TestGUESourcePortSpread: the outer source port is the flow's own (two
// packets of a flow share it) and differs between flows, so that routers
// hashing UDP ports spread a service's flows over their paths.
func TestGUESourcePortSpread(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newRoutedFixture(t, h, longTTL)
		svc := gueService(0, vip4UDP, ProtoUDP, 0)
		f.setService(svc, dsrBackends(vip4UDP), constantTable(f.d.opts.TableSize, 0))
		ports := map[uint16]bool{}
		const flows = 64
		for i := range flows {
			p := testPacket{src: netip.AddrPortFrom(client4.Addr(), uint16(30000+i)), dst: vip4UDP, proto: ProtoUDP, payload: []byte("x")}
			ret, out := f.send(p)
			if ret != f.verdict(tcActRedirect) || len(out) < 14+28 {
				t.Fatalf("flow %d: verdict %d, frame %x", i, ret, out)
			}
			sport := binary.BigEndian.Uint16(out[14+20:])
			if want := expectedGUESourcePort(p.src, p.dst, p.proto); sport != want {
				t.Errorf("flow %d: source port %d, want %d", i, sport, want)
			}
			ports[sport] = true
		}
		// 64 draws from 16384 ports: a collision or two is possible, a handful is not.
		if len(ports) < flows-4 {
			t.Errorf("%d flows got %d distinct source ports", flows, len(ports))
		}
	})
}

// TestGUEEncapChange: a service switched between ipip and gue encapsulates
// its established flows the new way from the next packet on, on the same
// backend.
func TestGUEEncapChange(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newRoutedFixture(t, h, longTTL)
		bes := dsrBackends(vip6TCP)
		table := constantTable(f.d.opts.TableSize, 1)
		p := testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpACK, payload: []byte("x")}
		in := p.build()
		sport := expectedGUESourcePort(p.src, p.dst, p.proto)
		ipip := dsrService(0, vip6TCP, ProtoTCP)
		steps := []struct {
			what string
			svc  Service
			want []byte
		}{
			{"ipip", ipip, encapsulated(in, snat6, bes[1].Addr(), backendMAC(1), f.backendDev, 0)},
			{"gue", gueService(0, vip6TCP, ProtoTCP, 0),
				gueEncapsulated(in, snat6, bes[1].Addr(), backendMAC(1), f.backendDev, 0, sport, DefaultGUEPort)},
			{"gue on another port", gueService(0, vip6TCP, ProtoTCP, 7777),
				gueEncapsulated(in, snat6, bes[1].Addr(), backendMAC(1), f.backendDev, 0, sport, 7777)},
			{"ipip again", ipip, encapsulated(in, snat6, bes[1].Addr(), backendMAC(1), f.backendDev, 0)},
		}
		for _, s := range steps {
			f.setService(s.svc, bes, table)
			for _, path := range []string{"first packet", "second packet"} {
				ret, out := f.send(p)
				expectSame(t, s.what+", "+path, ret, out, f.verdict(tcActRedirect), s.want)
			}
		}
	})
}

// TestGUETooBigAnswer: the MTU check counts GUE's UDP header. A client
// packet that fits the route once in IPIP but not in GUE is answered with
// ICMP "fragmentation needed" / "packet too big" carrying the route's MTU
// less IP and UDP headers; one that fits in GUE goes to the backend.
func TestGUETooBigAnswer(t *testing.T) {
	const mtu = 1400
	forHooks(t, func(t *testing.T, h hook) {
		f := newRoutedFixture(t, h, longTTL)
		f.in(func() error { return setMTU(backendLink, mtu) })
		tests := []struct {
			name   string
			svc    Service
			packet testPacket
		}{
			{"IPv4 TCP", gueService(0, vip4TCP, ProtoTCP, 0), testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpACK}},
			{"IPv4 UDP", gueService(1, vip4UDP, ProtoUDP, 0), testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP}},
			{"IPv6 TCP", gueService(2, vip6TCP, ProtoTCP, 0), testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpACK}},
			{"IPv6 UDP", gueService(3, vip6UDP, ProtoUDP, 0), testPacket{src: client6, dst: vip6UDP, proto: ProtoUDP}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				bes := dsrBackends(tc.svc.VIP)
				f.setService(tc.svc, bes, constantTable(f.d.opts.TableSize, 0))
				ipHdr, l4Hdr := 20, 8
				if tc.svc.VIP.Addr().Is6() {
					ipHdr = 40
				}
				if tc.packet.proto == ProtoTCP {
					l4Hdr = 20
				}
				largest := mtu - ipHdr - 8 // the longest inner packet GUE carries on this route
				sizes := []struct {
					inner  int
					answer bool
				}{{largest, false}, {largest + 1, true}, {mtu - ipHdr, true}}
				for _, s := range sizes {
					p := tc.packet
					p.payload = bytes.Repeat([]byte{0xa5}, s.inner-ipHdr-l4Hdr)
					in := withInnerFields(p.build(), true)
					what := fmt.Sprintf("IP packet of %d bytes", len(in)-14)
					ret, out := runProg(t, f.prog(), f.ns, in, f.clientIf)
					if !s.answer {
						if _, err := gueInnerFrame(out, DefaultGUEPort); ret != f.verdict(tcActRedirect) || err != nil {
							t.Errorf("%s: verdict %d (%v), want it sent in GUE", what, ret, err)
						}
						continue
					}
					id := uint16(0)
					if tc.svc.VIP.Addr().Is4() && len(out) > 20 {
						id = binary.BigEndian.Uint16(out[18:])
					}
					// tooBigAnswer takes off the IP header; the UDP header is GUE's own.
					expectSame(t, what, ret, out, h.bounce(), tooBigAnswer(in, mtu-8, id))
					if err := checkICMPFrame(out); err != nil {
						t.Errorf("%s: %v", what, err)
					}
				}
				st := serviceState(t, f.d, tc.svc.ID)
				if st.Stats.Drops[DropDSRTooBig] != 2 || st.BackendStats[0].Packets != 1 {
					t.Errorf("dsr_too_big %d, backend packets %d: want 2 and 1", st.Stats.Drops[DropDSRTooBig], st.BackendStats[0].Packets)
				}
			})
		}
	})
}

// TestGUEICMPForward: an ICMP error about a flow of a GUE service goes to
// the flow's backend in GUE, with the flow's own source port (so it takes
// the flow's path), the error unchanged inside.
func TestGUEICMPForward(t *testing.T) {
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
			{"IPv4 TCP", gueService(0, vip4TCP, ProtoTCP, DefaultGUEPort), testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpACK, payload: []byte("GET /")},
				netip.MustParseAddr("198.51.100.254"), errorKind{"fragmentation needed", icmpDestUnreach, icmpFragNeeded, 1280}},
			{"IPv6 UDP", gueService(1, vip6UDP, ProtoUDP, 6081), testPacket{src: client6, dst: vip6UDP, proto: ProtoUDP, payload: []byte("query")},
				netip.MustParseAddr("2001:db8:c::fe"), errorKind{"packet too big", icmp6PacketTooBig, 0, 1280}},
		}
		for _, fl := range flows {
			t.Run(fl.name, func(t *testing.T) {
				bes := dsrBackends(fl.svc.VIP)
				reply := testPacket{src: fl.client.dst, dst: fl.client.src, proto: fl.client.proto, tcpFlags: fl.client.tcpFlags,
					payload: bytes.Repeat([]byte("large answer "), 100)}
				sport := expectedGUESourcePort(fl.client.src, fl.client.dst, fl.client.proto)
				f.setService(fl.svc, bes, constantTable(m, 2))
				if ret, _ := f.send(fl.client); ret != f.verdict(tcActRedirect) {
					t.Fatalf("client packet: verdict %d, want TC_ACT_REDIRECT", ret)
				}
				in := icmpError{src: fl.router, dst: fl.svc.VIP.Addr(), typ: fl.kind.typ, code: fl.kind.code,
					rest: fl.kind.rest, quoted: quote(reply, 8)}.build()
				ret, out := runProg(t, f.prog(), f.ns, in, f.clientIf)
				id := uint16(0)
				if fl.svc.VIP.Addr().Is4() && len(out) > 20 {
					id = outerID(out)
				}
				expectSame(t, fl.kind.name, ret, out, f.verdict(tcActRedirect),
					gueEncapsulated(in, fl.svc.SNAT, bes[2].Addr(), backendMAC(2), f.backendDev, id, sport, fl.svc.GUEPort))
				inner, err := gueInnerFrame(out, fl.svc.GUEPort)
				if err != nil {
					t.Fatal(err)
				}
				if err := checkICMPFrame(inner); err != nil {
					t.Errorf("inner packet: %v", err)
				}
				if st := serviceState(t, f.d, fl.svc.ID); st.Stats.Packets != 2 || st.BackendStats[2].Packets != 2 {
					t.Errorf("service %+v, backend %+v: want 2 packets each (the client's, the error)", st.Stats, st.BackendStats[2])
				}
			})
		}
	})
}

// TestGUEPortValidation: a GUE port belongs to GUE forwarding only.
func TestGUEPortValidation(t *testing.T) {
	d := openTest(t)
	for _, fwd := range []Forwarding{ForwardingNAT, ForwardingDSRIPIP} {
		svc := dsrService(0, vip4TCP, ProtoTCP)
		svc.Forwarding, svc.GUEPort = fwd, 6080
		if _, err := d.SetService(svc, nil, nil); !errors.Is(err, ErrInvalidService) {
			t.Errorf("%s with a GUE port: error %v, want ErrInvalidService", fwd, err)
		}
	}
}

// TestGUEDecapsulator checks the end-to-end tests' stand-in for fou: it
// turns a GUE frame to its port, built independently of the program, back
// into the client's frame, and leaves alone UDP to another port and a
// payload that is no IP header of the outer family.
func TestGUEDecapsulator(t *testing.T) {
	needBPF(t)
	ns := newNetns(t)
	const port = 7000
	prog := testenv.DecapsulatorOn(t, port)
	for _, p := range []testPacket{
		{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("hello")},
		{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN},
		{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpSYN},
		{src: client6, dst: vip6UDP, proto: ProtoUDP, payload: []byte("hello")},
	} {
		in := p.build()
		snat, be := snat4, backends4[0].Addr()
		if p.src.Addr().Is6() {
			snat, be = snat6, backends6[0].Addr()
		}
		enc := gueEncapsulated(in, snat, be, macDst[:], macSrc[:], 7, 50000, port)
		ret, out := runProg(t, prog, ns, enc, 0)
		expectSame(t, p.dst.String(), ret, out, tcActOK, in)

		other := gueEncapsulated(in, snat, be, macDst[:], macSrc[:], 7, 50000, port+1)
		ret, out = runProg(t, prog, ns, other, 0)
		expectSame(t, p.dst.String()+" to another port", ret, out, tcActOK, other)

		notIP := append([]byte(nil), enc...)
		notIP[len(notIP)-len(in)+14] = 0x15 // version 1: not an IP header
		ret, out = runProg(t, prog, ns, notIP, 0)
		expectSame(t, p.dst.String()+" carrying no IP header", ret, out, tcActOK, notIP)
	}
}

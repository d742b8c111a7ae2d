//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/weir-lb/weir/bpf"
)

// dsrBackends are backends4 and backends6 at the port of vip: a DSR backend
// receives the client's packet unchanged, so it listens on the VIP's port.
func dsrBackends(vip netip.AddrPort) []netip.AddrPort {
	bes := backends4
	if vip.Addr().Is6() {
		bes = backends6
	}
	out := make([]netip.AddrPort, len(bes))
	for i, b := range bes {
		out[i] = netip.AddrPortFrom(b.Addr(), vip.Port())
	}
	return out
}

func dsrService(id uint32, vip netip.AddrPort, proto uint8) Service {
	snat := snat4
	if vip.Addr().Is6() {
		snat = snat6
	}
	return Service{ID: id, VIP: vip, Proto: proto, SNAT: snat, Forwarding: ForwardingDSRIPIP}
}

// withInnerFields sets what the outer header copies from the inner one: an
// IPv4 packet's DS field and DF bit (df), an IPv6 packet's traffic class
// and flow label, fixing the IPv4 header checksum.
func withInnerFields(frame []byte, df bool) []byte {
	frame = append([]byte(nil), frame...)
	if frame[12] == 0x08 {
		ip := frame[14:34]
		ip[1] = 0x28 // DSCP AF11
		if df {
			binary.BigEndian.PutUint16(ip[6:], 0x4000)
		}
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], checksum(ip))
		return frame
	}
	binary.BigEndian.PutUint32(frame[14:], 0x6b812345) // traffic class 0xb8, flow label 0x12345
	return frame
}

// encapsulated is inner (an Ethernet frame) as the balancer must send it to
// backend from src: MAC addresses dmac and smac, an outer header written
// here from the RFCs (RFC 2003 for IPv4: DS field and DF copied, TTL 64,
// protocol 4, its own checksum; RFC 2473 for IPv6: traffic class and flow
// label copied, hop limit 64, next header 41), and the inner packet byte
// for byte. id is the outer IPv4 identification, which the program picks at
// random when the inner packet may be fragmented.
func encapsulated(inner []byte, src, backend netip.Addr, dmac, smac []byte, id uint16) []byte {
	out := append([]byte(nil), inner[:14]...)
	copy(out[0:6], dmac)
	copy(out[6:12], smac)
	ip := inner[14:]
	if backend.Is4() {
		h := make([]byte, 20)
		h[0] = 0x45
		h[1] = ip[1]
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(ip)))
		binary.BigEndian.PutUint16(h[4:], id)
		binary.BigEndian.PutUint16(h[6:], binary.BigEndian.Uint16(ip[6:])&0x4000)
		h[8], h[9] = 64, 4
		s, d := src.As4(), backend.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		binary.BigEndian.PutUint16(h[10:], checksum(h))
		out = append(out, h...)
	} else {
		h := make([]byte, 40)
		copy(h[0:4], ip[0:4])
		binary.BigEndian.PutUint16(h[4:], uint16(len(ip)))
		h[6], h[7] = 41, 64
		s, d := src.As16(), backend.As16()
		copy(h[8:], s[:])
		copy(h[24:], d[:])
		out = append(out, h...)
	}
	return append(out, ip...)
}

// outerID is the IPv4 identification of an encapsulated frame.
func outerID(frame []byte) uint16 {
	if len(frame) < 34 || frame[12] != 0x08 {
		return 0
	}
	return binary.BigEndian.Uint16(frame[18:])
}

// innerFrame is the Ethernet frame an encapsulated frame carries, as the
// backend's tunnel device hands it on: its own checksums must still hold.
func innerFrame(frame []byte) []byte {
	hdr := 40
	if frame[12] == 0x08 {
		hdr = 20
	}
	return append(append([]byte(nil), frame[:14]...), frame[14+hdr:]...)
}

// TestDSRGolden sends client packets to DSR services through the program in
// a namespace that routes the backends: each leaves for its Maglev backend
// encapsulated, the client's packet unchanged inside.
func TestDSRGolden(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newRoutedFixture(t, h, longTTL)
		payload := []byte("direct server return")
		tests := []struct {
			name   string
			svc    Service
			packet testPacket
			df     bool
		}{
			{"IPv4 TCP, DF", dsrService(0, vip4TCP, ProtoTCP),
				testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN}, true},
			{"IPv4 UDP, no DF", dsrService(1, vip4UDP, ProtoUDP),
				testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: payload}, false},
			{"IPv6 TCP", dsrService(2, vip6TCP, ProtoTCP),
				testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpACK, payload: payload}, false},
			{"IPv6 UDP", dsrService(3, vip6UDP, ProtoUDP),
				testPacket{src: client6, dst: vip6UDP, proto: ProtoUDP, payload: payload}, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				bes := dsrBackends(tc.svc.VIP)
				table := sequentialTable(f.d.opts.TableSize, len(bes))
				f.setService(tc.svc, bes, table)
				i := expectedBackend(table, tc.packet.src, tc.packet.dst, tc.packet.proto)
				in := withInnerFields(tc.packet.build(), tc.df)
				for _, path := range []string{"full path", "cached"} {
					ret, out := runProg(t, f.prog(), f.ns, in, f.clientIf)
					id := uint16(0)
					if !tc.df && tc.svc.VIP.Addr().Is4() {
						id = outerID(out) // random where fragmenting is allowed
					}
					want := encapsulated(in, tc.svc.SNAT, bes[i].Addr(), backendMAC(int(i)), f.backendDev, id)
					expectSame(t, path, ret, out, f.verdict(tcActRedirect), want)
					if len(out) > 14+40 {
						if err := checkFrame(innerFrame(out)); err != nil {
							t.Errorf("%s: inner packet: %v", path, err)
						}
					}
				}
				e := entry(t, f.d.objs.WeirV1Ct, clientFlow(tc.packet))
				if e.Forwarding != uint8(ForwardingDSRIPIP) || e.Fwd.Action != fwdRedirect {
					t.Errorf("conntrack entry %+v: want forwarding %d, a cached redirect", e, ForwardingDSRIPIP)
				}
				st := serviceState(t, f.d, tc.svc.ID)
				if st.Stats.Packets != 2 || st.Stats.NewFlows != 1 || st.BackendStats[i].Packets != 2 {
					t.Errorf("service %+v, backend %+v: want 2 packets, 1 new flow", st.Stats, st.BackendStats[i])
				}
				if st.Forwarding != ForwardingDSRIPIP || !st.SNATPorts.IsZero() {
					t.Errorf("read back forwarding %s, SNAT ports %s: want dsr ipip, none", st.Forwarding, st.SNATPorts)
				}
			})
		}
		// No reply path: nothing in reverse NAT, no reply ports.
		var k bpf.WeirFlow
		var v bpf.WeirCtEntry
		if it := f.d.objs.WeirV1Rnat.Iterate(); it.Next(&k, &v) {
			t.Errorf("reverse NAT entry %+v for a DSR flow", k)
		}
		if r, err := f.d.ReplyPorts(); err != nil || !r.IsZero() {
			t.Errorf("ReplyPorts() = %s, %v; want none", r, err)
		}
	})
}

// TestDSRFlowKeepsBackend: an established DSR flow stays on its backend
// when the table changes, and moves when its backend leaves.
func TestDSRFlowKeepsBackend(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newRoutedFixture(t, h, longTTL)
		svc := dsrService(0, vip4TCP, ProtoTCP)
		bes := dsrBackends(vip4TCP)
		m := f.d.opts.TableSize
		p := testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpACK, payload: []byte("x")}
		other := p
		other.src = netip.AddrPortFrom(client4.Addr(), client4.Port()+1)
		sendTo := func(what string, p testPacket, want int) {
			t.Helper()
			ret, out := f.send(p)
			in := p.build()
			expectSame(t, what, ret, out, f.verdict(tcActRedirect),
				encapsulated(in, snat4, bes[want].Addr(), backendMAC(want), f.backendDev, outerID(out)))
		}
		f.setService(svc, bes, constantTable(m, 0))
		sendTo("new flow", p, 0)
		f.setService(svc, bes, constantTable(m, 1))
		sendTo("established flow after the table changed", p, 0)
		sendTo("new flow after the table changed", other, 1)
		f.setService(svc, bes[1:], constantTable(m, 1))
		sendTo("flow whose backend left", p, 2)
		if st := serviceState(t, f.d, svc.ID); st.Stats.NewFlows != 3 {
			t.Errorf("new flows %d, want 3 (two flows, one moved)", st.Stats.NewFlows)
		}
	})
}

// TestDSRTooBig: a packet that the route's MTU takes only without the outer
// header is counted as dsr_too_big (and dropped, or answered with ICMP:
// TestDSRTooBigAnswer); one that fits with it goes.
func TestDSRTooBig(t *testing.T) {
	forHooks(t, func(t *testing.T, h hook) {
		f := newRoutedFixture(t, h, longTTL)
		f.in(func() error { return setMTU(backendLink, 1400) })
		for _, vip := range []netip.AddrPort{vip4UDP, vip6UDP} {
			t.Run(vip.String(), func(t *testing.T) {
				id := uint32(0)
				client := client4
				overhead, l4 := 20, 28
				if vip.Addr().Is6() {
					id, client, overhead, l4 = 1, client6, 40, 48
				}
				svc := dsrService(id, vip, ProtoUDP)
				bes := dsrBackends(vip)
				f.setService(svc, bes, constantTable(f.d.opts.TableSize, 0))
				fits := testPacket{src: client, dst: vip, proto: ProtoUDP, payload: make([]byte, 1400-overhead-l4)}
				ret, out := f.send(fits)
				expectSame(t, "largest packet that fits", ret, out, f.verdict(tcActRedirect),
					encapsulated(fits.build(), svc.SNAT, bes[0].Addr(), backendMAC(0), f.backendDev, outerID(out)))
				big := fits
				big.payload = make([]byte, len(fits.payload)+1)
				// Without DF (IPv4) it is dropped; IPv6 is answered (TestDSRTooBigAnswer).
				want := f.verdict(tcActShot)
				if vip.Addr().Is6() {
					want = h.bounce()
				}
				if ret, _ := f.send(big); ret != want {
					t.Errorf("one byte more: verdict %d, want %d", ret, want)
				}
				st := serviceState(t, f.d, id)
				if st.Stats.Drops[DropDSRTooBig] != 1 || st.BackendStats[0].Drops[DropDSRTooBig] != 1 {
					t.Errorf("drops %v, backend drops %v: want %s 1", st.Stats.Drops, st.BackendStats[0].Drops, DropDSRTooBig)
				}
			})
		}
	})
}

// TestDSRServiceChecks: a DSR backend must listen on the VIP's port, and a
// DSR service takes no SNAT ports whatever it is given.
func TestDSRServiceChecks(t *testing.T) {
	f := newFixture(t, tcHook)
	svc := dsrService(0, vip4TCP, ProtoTCP)
	_, err := f.d.SetService(svc, backends4, sequentialTable(f.d.opts.TableSize, len(backends4)))
	if !errors.Is(err, ErrInvalidBackend) {
		t.Errorf("backends on port 8080 for VIP port 80: error %v, want ErrInvalidBackend", err)
	}
	svc.SNATPorts = PortRange{First: 20000, Last: 29999}
	f.setService(svc, dsrBackends(vip4TCP), sequentialTable(f.d.opts.TableSize, len(backends4)))
	if r, err := f.d.ReplyPorts(); err != nil || !r.IsZero() {
		t.Errorf("ReplyPorts() = %s, %v; want none", r, err)
	}
	svc.Forwarding = 7
	if _, err := f.d.SetService(svc, dsrBackends(vip4TCP), nil); !errors.Is(err, ErrInvalidService) {
		t.Errorf("forwarding 7: error %v, want ErrInvalidService", err)
	}
}

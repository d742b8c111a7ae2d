//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"
)

// ICMP and ICMPv6 error types and codes the tests send (RFC 792, RFC 4443).
const (
	icmpDestUnreach   = 3
	icmpTimeExceeded  = 11
	icmpPortUnreach   = 3 // code of icmpDestUnreach
	icmpFragNeeded    = 4 // code of icmpDestUnreach
	icmp6DestUnreach  = 1
	icmp6PacketTooBig = 2
	icmp6TimeExceeded = 3
	icmp6PortUnreach  = 4 // code of icmp6DestUnreach
	icmpEchoRequest   = 8
)

// icmpError describes an ICMP or ICMPv6 error frame from src to dst
// quoting the IP packet quoted; build renders it with valid checksums.
type icmpError struct {
	src, dst   netip.Addr
	typ, code  uint8
	rest       uint32 // the header's last word: the MTU of "fragmentation needed" and "packet too big"
	quoted     []byte // an IP packet (from its IP header on), usually cut short
	frag       fragKind
	ext6       []uint8
	truncateL4 int // bytes cut from the end of the frame
}

func (e icmpError) build() []byte {
	msg := make([]byte, 8, 8+len(e.quoted))
	msg[0], msg[1] = e.typ, e.code
	binary.BigEndian.PutUint32(msg[4:], e.rest)
	msg = append(msg, e.quoted...)
	proto := uint8(protoICMP)
	var c uint16
	if e.src.Is4() {
		c = checksum(msg)
	} else {
		proto = protoICMPv6
		c = l4Checksum(e.src, e.dst, protoICMPv6, msg)
	}
	binary.BigEndian.PutUint16(msg[2:], c)
	outer := testPacket{src: netip.AddrPortFrom(e.src, 0), dst: netip.AddrPortFrom(e.dst, 0), proto: proto,
		frag: e.frag, ext6: e.ext6}
	frame := append(append([]byte(nil), macDst[:]...), macSrc[:]...)
	if e.src.Is4() {
		frame = binary.BigEndian.AppendUint16(frame, 0x0800)
		frame = append(frame, outer.ipv4Header(len(msg))...)
	} else {
		frame = binary.BigEndian.AppendUint16(frame, 0x86dd)
		frame = append(frame, outer.ipv6Headers(len(msg))...)
	}
	frame = append(frame, msg...)
	return frame[:len(frame)-e.truncateL4]
}

// quote is what an error quotes of p: its IP packet, cut to the first
// l4Bytes bytes of its TCP or UDP header (0: all of it).
func quote(p testPacket, l4Bytes int) []byte {
	ip := p.build()[14:]
	if l4Bytes == 0 {
		return ip
	}
	l3 := 40
	if p.src.Addr().Is4() {
		l3 = int(ip[0]&0x0f) * 4
	}
	return ip[:l3+l4Bytes]
}

// checkICMPFrame verifies every checksum of an ICMP error frame on its
// own, from the bytes alone: the outer IPv4 header's, the ICMP one (ICMPv6
// with its pseudo header), the quoted IPv4 header's, and the quoted TCP or
// UDP checksum when the whole quoted packet is there.
func checkICMPFrame(frame []byte) error {
	if len(frame) < 14 {
		return fmt.Errorf("frame of %d bytes", len(frame))
	}
	var msg []byte
	switch binary.BigEndian.Uint16(frame[12:]) {
	case 0x0800:
		ihl := int(frame[14]&0x0f) * 4
		if got := fold(sum16(0, frame[14:14+ihl])); got != 0xffff {
			return fmt.Errorf("outer IPv4 header checksum: sum %#04x, want 0xffff", got)
		}
		msg = frame[14+ihl:]
		if got := fold(sum16(0, msg)); got != 0xffff {
			return fmt.Errorf("ICMP checksum: sum %#04x, want 0xffff", got)
		}
	case 0x86dd:
		src, dst := netip.AddrFrom16([16]byte(frame[22:38])), netip.AddrFrom16([16]byte(frame[38:54]))
		off, next := 54, frame[20]
		for next == ext6DstOpts {
			next = frame[off]
			off += 8 * (int(frame[off+1]) + 1)
		}
		msg = frame[off:]
		if got := fold(sum16(pseudoSum(src, dst, protoICMPv6, len(msg)), msg)); got != 0xffff {
			return fmt.Errorf("ICMPv6 checksum: sum %#04x, want 0xffff", got)
		}
	default:
		return fmt.Errorf("ethertype %#04x", binary.BigEndian.Uint16(frame[12:]))
	}
	quoted := msg[8:]
	var src, dst netip.Addr
	var proto uint8
	var l4 []byte
	var total int
	if quoted[0]>>4 == 4 {
		ihl := int(quoted[0]&0x0f) * 4
		if got := fold(sum16(0, quoted[:ihl])); got != 0xffff {
			return fmt.Errorf("quoted IPv4 header checksum: sum %#04x, want 0xffff", got)
		}
		src, dst = netip.AddrFrom4([4]byte(quoted[12:16])), netip.AddrFrom4([4]byte(quoted[16:20]))
		proto, l4, total = quoted[9], quoted[ihl:], int(binary.BigEndian.Uint16(quoted[2:]))
	} else {
		src, dst = netip.AddrFrom16([16]byte(quoted[8:24])), netip.AddrFrom16([16]byte(quoted[24:40]))
		off := 40
		proto, total = quoted[6], 40+int(binary.BigEndian.Uint16(quoted[4:]))
		for proto == ext6DstOpts {
			proto = quoted[off]
			off += 8 * (int(quoted[off+1]) + 1)
		}
		l4 = quoted[off:]
	}
	if total != len(quoted) {
		return nil // cut short: its checksum covers bytes that are not here
	}
	if proto == ProtoUDP && src.Is4() && binary.BigEndian.Uint16(l4[6:]) == 0 {
		return nil
	}
	if got := fold(sum16(pseudoSum(src, dst, proto, len(l4)), l4)); got != 0xffff {
		return fmt.Errorf("quoted L4 checksum: sum %#04x, want 0xffff", got)
	}
	return nil
}

// icmpFlow is one NATed flow the ICMP tests send errors about.
type icmpFlow struct {
	name    string
	svc     Service
	client  testPacket // a client packet of the flow
	reply   testPacket // a backend packet of the flow; src and dst filled in by the test
	router  netip.Addr // a router between balancer and backend
	crouter netip.Addr // a router on the client's path
}

var icmpFlows = []icmpFlow{
	{
		name:   "IPv4 TCP",
		svc:    Service{ID: 0, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4},
		client: testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpACK, payload: []byte("GET / HTTP/1.1\r\n\r\n")},
		reply:  testPacket{proto: ProtoTCP, tcpFlags: tcpACK, payload: bytes.Repeat([]byte("large answer "), 9)},
		router: netip.MustParseAddr("203.0.113.254"), crouter: netip.MustParseAddr("198.51.100.254"),
	},
	{
		name:   "IPv4 UDP",
		svc:    Service{ID: 1, VIP: vip4UDP, Proto: ProtoUDP, SNAT: snat4},
		client: testPacket{src: client4, dst: vip4UDP, proto: ProtoUDP, payload: []byte("query")},
		reply:  testPacket{proto: ProtoUDP, payload: []byte("answer")},
		router: netip.MustParseAddr("203.0.113.254"), crouter: netip.MustParseAddr("198.51.100.254"),
	},
	{
		name:   "IPv6 TCP",
		svc:    Service{ID: 2, VIP: vip6TCP, Proto: ProtoTCP, SNAT: snat6},
		client: testPacket{src: client6, dst: vip6TCP, proto: ProtoTCP, tcpFlags: tcpACK, payload: []byte("GET / HTTP/1.1\r\n\r\n")},
		reply:  testPacket{proto: ProtoTCP, tcpFlags: tcpACK, payload: bytes.Repeat([]byte("large answer "), 9)},
		router: netip.MustParseAddr("2001:db8:1::fe"), crouter: netip.MustParseAddr("2001:db8:c::fe"),
	},
	{
		name:   "IPv6 UDP",
		svc:    Service{ID: 3, VIP: vip6UDP, Proto: ProtoUDP, SNAT: snat6},
		client: testPacket{src: client6, dst: vip6UDP, proto: ProtoUDP, payload: []byte("query")},
		reply:  testPacket{proto: ProtoUDP, payload: []byte("answer")},
		router: netip.MustParseAddr("2001:db8:1::fe"), crouter: netip.MustParseAddr("2001:db8:c::fe"),
	},
}

// errorKind is one kind of ICMP error, per family.
type errorKind struct {
	name      string
	typ, code uint8
	rest      uint32
}

func errorKinds(v4 bool) []errorKind {
	if v4 {
		return []errorKind{
			{"fragmentation needed", icmpDestUnreach, icmpFragNeeded, 1400},
			{"port unreachable", icmpDestUnreach, icmpPortUnreach, 0},
			{"time exceeded", icmpTimeExceeded, 0, 0},
		}
	}
	return []errorKind{
		{"packet too big", icmp6PacketTooBig, 0, 1400},
		{"port unreachable", icmp6DestUnreach, icmp6PortUnreach, 0},
		{"time exceeded", icmp6TimeExceeded, 0, 0},
	}
}

// establish sends fl's first client packet through the program and
// returns the flow as the balancer translated it: the client's packet as
// the backend gets it, and the backend's reply as the client gets it.
func (f *fixture) establish(fl icmpFlow) (toBackend, toClient testPacket) {
	f.t.Helper()
	table := constantTable(f.d.opts.TableSize, 0)
	backends := backends4
	if fl.svc.VIP.Addr().Is6() {
		backends = backends6
	}
	f.setService(fl.svc, backends, table)
	be, port := f.translate(fl.client, backends, table, fl.svc.SNAT)
	toBackend = fl.client
	toBackend.src, toBackend.dst = netip.AddrPortFrom(fl.svc.SNAT, port), be
	toClient = fl.reply
	toClient.src, toClient.dst = fl.client.dst, fl.client.src
	return toBackend, toClient
}

// fromBackend is toClient as the backend sent it.
func fromBackend(toBackend, toClient testPacket) testPacket {
	p := toClient
	p.src, p.dst = toBackend.dst, toBackend.src
	return p
}

// TestICMPErrorGolden sends every kind of ICMP error about a NATed flow,
// for IPv4 and IPv6, TCP and UDP, from both sides, quoting the whole
// packet or only the 8 bytes RFC 792 guarantees, and checks the frame that
// comes out byte for byte, with every checksum recomputed on its own.
//
// From the backend's side (the backend, or a router between it and the
// balancer), about the client's packet as the backend got it: the client
// gets it from the VIP, about its packet as it sent it. From the client's
// side (a router on the client's path), about the backend's reply as the
// client got it: the backend gets it from the SNAT address, about its
// reply as it sent it. The MTU passes unchanged.
func TestICMPErrorGolden(t *testing.T) {
	needBPF(t)
	forHooks(t, func(t *testing.T, h hook) {
		for _, fl := range icmpFlows {
			t.Run(fl.name, func(t *testing.T) {
				f := newFixture(t, h)
				toBackend, toClient := f.establish(fl)
				sent := fromBackend(toBackend, toClient)
				packets := 1 // the packet that made the flow
				for _, k := range errorKinds(fl.svc.VIP.Addr().Is4()) {
					for _, l4Bytes := range []int{0, 8} {
						cases := []struct {
							side     string
							got, out icmpError
						}{
							{
								side: "from a router towards the backend",
								got:  icmpError{src: fl.router, dst: toBackend.src.Addr(), quoted: quote(toBackend, l4Bytes)},
								out:  icmpError{src: fl.client.dst.Addr(), dst: fl.client.src.Addr(), quoted: quote(fl.client, l4Bytes)},
							},
							{
								side: "from the backend",
								got:  icmpError{src: toBackend.dst.Addr(), dst: toBackend.src.Addr(), quoted: quote(toBackend, l4Bytes)},
								out:  icmpError{src: fl.client.dst.Addr(), dst: fl.client.src.Addr(), quoted: quote(fl.client, l4Bytes)},
							},
							{
								side: "from a router towards the client",
								got:  icmpError{src: fl.crouter, dst: toClient.src.Addr(), quoted: quote(toClient, l4Bytes)},
								out:  icmpError{src: toBackend.src.Addr(), dst: toBackend.dst.Addr(), quoted: quote(sent, l4Bytes)},
							},
						}
						for _, c := range cases {
							for _, e := range []*icmpError{&c.got, &c.out} {
								e.typ, e.code, e.rest = k.typ, k.code, k.rest
							}
							what := fmt.Sprintf("%s %s, %d quoted L4 bytes", k.name, c.side, l4Bytes)
							in := c.got.build()
							if err := checkICMPFrame(in); err != nil {
								t.Fatalf("%s: the test's own frame: %v", what, err)
							}
							ret, out := f.run(in)
							packets++
							if want := f.verdict(tcActOK); ret != want {
								t.Errorf("%s: verdict %d, want %d, pass (no route in the test namespace)", what, ret, want)
							}
							if err := checkICMPFrame(out); err != nil {
								t.Errorf("%s: %v", what, err)
							}
							if want := c.out.build(); !bytes.Equal(out, want) {
								t.Errorf("%s: frame differs\n got %s\nwant %s", what, hex.EncodeToString(out), hex.EncodeToString(want))
							}
						}
					}
				}
				// Translated errors count as packets of the flow's service and backend.
				st := serviceState(t, f.d, fl.svc.ID)
				if st.Stats.Packets != uint64(packets) || st.BackendStats[0].Packets != uint64(packets) {
					t.Errorf("counted %d packets, backend %d, want %d", st.Stats.Packets, st.BackendStats[0].Packets, packets)
				}
			})
		}
	})
}

// TestICMPv6ErrorBehindOptions sends a "packet too big" whose outer and
// quoted headers both carry a destination options header: both are
// skipped, as for any packet, and the error is translated.
func TestICMPv6ErrorBehindOptions(t *testing.T) {
	needBPF(t)
	forHooks(t, func(t *testing.T, h hook) {
		fl := icmpFlows[2] // IPv6 TCP
		f := newFixture(t, h)
		toBackend, toClient := f.establish(fl)
		for _, p := range []*testPacket{&toBackend, &toClient, &fl.client} {
			p.ext6 = []uint8{ext6DstOpts}
		}
		sent := fromBackend(toBackend, toClient)
		tests := []struct {
			name     string
			got, out icmpError
		}{
			{"from a router towards the backend",
				icmpError{src: fl.router, dst: toBackend.src.Addr(), quoted: quote(toBackend, 0)},
				icmpError{src: fl.client.dst.Addr(), dst: fl.client.src.Addr(), quoted: quote(fl.client, 0)}},
			{"from a router towards the client",
				icmpError{src: fl.crouter, dst: toClient.src.Addr(), quoted: quote(toClient, 0)},
				icmpError{src: toBackend.src.Addr(), dst: toBackend.dst.Addr(), quoted: quote(sent, 0)}},
		}
		for _, tc := range tests {
			for _, e := range []*icmpError{&tc.got, &tc.out} {
				e.typ, e.rest, e.ext6 = icmp6PacketTooBig, 1400, []uint8{ext6DstOpts}
			}
			in := tc.got.build()
			if err := checkICMPFrame(in); err != nil {
				t.Fatalf("%s: the test's own frame: %v", tc.name, err)
			}
			ret, out := f.run(in)
			if want := f.verdict(tcActOK); ret != want {
				t.Errorf("%s: verdict %d, want %d (pass)", tc.name, ret, want)
			}
			if err := checkICMPFrame(out); err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			if want := tc.out.build(); !bytes.Equal(out, want) {
				t.Errorf("%s: frame differs\n got %s\nwant %s", tc.name, hex.EncodeToString(out), hex.EncodeToString(want))
			}
		}
	})
}

// TestICMPErrorPassThrough sends errors the program must leave alone:
// about flows it does not know, about ICMP, cut short, fragmented, or not
// addressed to the quoted packet's sender.
func TestICMPErrorPassThrough(t *testing.T) {
	needBPF(t)
	forHooks(t, func(t *testing.T, h hook) {
		for _, fl := range icmpFlows {
			t.Run(fl.name, func(t *testing.T) {
				f := newFixture(t, h)
				toBackend, toClient := f.establish(fl)
				v4 := fl.svc.VIP.Addr().Is4()
				k := errorKinds(v4)[0]
				base := icmpError{src: fl.router, dst: toBackend.src.Addr(), typ: k.typ, code: k.code, rest: k.rest,
					quoted: quote(toBackend, 0)}
				otherPort := toBackend
				otherPort.src = netip.AddrPortFrom(toBackend.src.Addr(), toBackend.src.Port()+1)
				otherClient := toClient
				otherClient.dst = netip.AddrPortFrom(toClient.dst.Addr(), toClient.dst.Port()+1)
				echo := testPacket{src: toBackend.src, dst: toBackend.dst, proto: protoICMP}
				echoType := uint8(icmpEchoRequest)
				if !v4 {
					echo.proto, echoType = protoICMPv6, 128
				}
				tests := []struct {
					name string
					e    icmpError
				}{
					{"about an unknown flow to the backend", with(base, func(e *icmpError) { e.quoted = quote(otherPort, 0) })},
					{"about an unknown flow to the client", icmpError{src: fl.crouter, dst: toClient.src.Addr(), typ: k.typ,
						code: k.code, rest: k.rest, quoted: quote(otherClient, 0)}},
					{"about ICMP", with(base, func(e *icmpError) { e.quoted = quote(echo, 0) })},
					{"quoting 4 bytes of L4", with(base, func(e *icmpError) { e.quoted = quote(toBackend, 4) })},
					{"cut short inside the quoted IP header", with(base, func(e *icmpError) {
						e.quoted = quote(toBackend, 8)
						e.truncateL4 = 8 + 4
					})},
					{"not to the quoted packet's sender", with(base, func(e *icmpError) { e.dst = fl.crouter })},
					{"an echo request, not an error", with(base, func(e *icmpError) { e.typ, e.code = echoType, 0 })},
					{"fragmented", with(base, func(e *icmpError) { e.frag = moreFrags })},
				}
				for _, tc := range tests {
					in := tc.e.build()
					ret, out := f.run(in)
					if ret != f.verdict(tcActOK) || !bytes.Equal(out, in) {
						t.Errorf("%s: verdict %d, frame changed %v, want %d (pass) and untouched\n got %x\nwant %x",
							tc.name, ret, !bytes.Equal(out, in), f.verdict(tcActOK), out, in)
					}
				}
				if st := serviceState(t, f.d, fl.svc.ID); st.Stats.Packets != 1 {
					t.Errorf("counted %d packets, want 1 (the flow's own)", st.Stats.Packets)
				}
			})
		}
	})
}

// with returns a copy of e changed by change.
func with(e icmpError, change func(*icmpError)) icmpError {
	e.quoted = append([]byte(nil), e.quoted...)
	change(&e)
	return e
}

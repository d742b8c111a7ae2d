//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
)

// This file builds and checks packets independently of the BPF program:
// its own header layout, its own checksum, its own copy of the flow hash.

// IP protocol numbers used by test packets besides TCP and UDP.
const (
	protoICMP   = 1
	protoICMPv6 = 58
)

// IPv6 extension header types.
const (
	ext6DstOpts  = 60
	ext6Routing  = 43
	ext6Fragment = 44
)

// fragKind marks a test packet as a fragment.
type fragKind int

const (
	notFragment   fragKind = iota
	moreFrags              // first fragment: IPv4 MF, or IPv6 fragment header with M
	laterFragment          // IPv4 non-zero offset
)

// testPacket describes a frame; build renders it with valid checksums.
type testPacket struct {
	src, dst    netip.AddrPort
	proto       uint8
	tcpFlags    uint8
	payload     []byte
	frag        fragKind
	ext6        []uint8 // IPv6 extension headers before L4, by type
	zeroUDPCsum bool    // IPv4 UDP without checksum
	truncateL4  int     // bytes cut from the end of the frame
}

var (
	macDst = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	macSrc = [6]byte{0x02, 0, 0, 0, 0, 0x02}
)

const (
	tcpSYN = 0x02
	tcpACK = 0x10
)

// build renders p as an Ethernet frame.
func (p testPacket) build() []byte {
	l4 := p.l4()
	var frame []byte
	frame = append(frame, macDst[:]...)
	frame = append(frame, macSrc[:]...)
	if p.src.Addr().Is4() {
		frame = binary.BigEndian.AppendUint16(frame, 0x0800)
		frame = append(frame, p.ipv4Header(len(l4))...)
	} else {
		frame = binary.BigEndian.AppendUint16(frame, 0x86dd)
		frame = append(frame, p.ipv6Headers(len(l4))...)
	}
	frame = append(frame, l4...)
	return frame[:len(frame)-p.truncateL4]
}

func (p testPacket) ipv4Header(l4Len int) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+l4Len))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	switch p.frag {
	case moreFrags:
		binary.BigEndian.PutUint16(h[6:], 0x2000)
	case laterFragment:
		binary.BigEndian.PutUint16(h[6:], 0x0010)
	}
	h[8] = 64
	h[9] = p.proto
	src, dst := p.src.Addr().As4(), p.dst.Addr().As4()
	copy(h[12:], src[:])
	copy(h[16:], dst[:])
	binary.BigEndian.PutUint16(h[10:], checksum(h))
	return h
}

func (p testPacket) ipv6Headers(l4Len int) []byte {
	types := append([]uint8(nil), p.ext6...)
	if p.frag != notFragment {
		types = append(types, ext6Fragment)
	}
	h := make([]byte, 40)
	binary.BigEndian.PutUint32(h[0:], 0x60000000)
	binary.BigEndian.PutUint16(h[4:], uint16(8*len(types)+l4Len))
	h[6] = p.proto
	if len(types) > 0 {
		h[6] = types[0]
	}
	h[7] = 64
	src, dst := p.src.Addr().As16(), p.dst.Addr().As16()
	copy(h[8:], src[:])
	copy(h[24:], dst[:])
	for i, typ := range types {
		next := p.proto
		if i+1 < len(types) {
			next = types[i+1]
		}
		h = append(h, ext6Header(typ, next)...)
	}
	return h
}

// ext6Header is an 8-byte extension header of the given type.
func ext6Header(typ, next uint8) []byte {
	switch typ {
	case ext6Fragment:
		// Offset 0, M flag set, identification 0x01020304.
		return []byte{next, 0, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04}
	case ext6Routing:
		// Type 4 (segment routing) with segments left 0: still not ours.
		return []byte{next, 0, 4, 0, 0, 0, 0, 0}
	default:
		// Options header holding one PadN option.
		return []byte{next, 0, 0x01, 0x04, 0, 0, 0, 0}
	}
}

func (p testPacket) l4() []byte {
	var seg []byte
	csumOff := -1
	switch p.proto {
	case ProtoTCP:
		seg = make([]byte, 20, 20+len(p.payload))
		binary.BigEndian.PutUint16(seg[0:], p.src.Port())
		binary.BigEndian.PutUint16(seg[2:], p.dst.Port())
		binary.BigEndian.PutUint32(seg[4:], 0x01020304)
		seg[12] = 5 << 4
		seg[13] = p.tcpFlags
		binary.BigEndian.PutUint16(seg[14:], 0xffff)
		csumOff = 16
	case ProtoUDP:
		seg = make([]byte, 8, 8+len(p.payload))
		binary.BigEndian.PutUint16(seg[0:], p.src.Port())
		binary.BigEndian.PutUint16(seg[2:], p.dst.Port())
		binary.BigEndian.PutUint16(seg[4:], uint16(8+len(p.payload)))
		csumOff = 6
	case protoICMP, protoICMPv6:
		// Echo request, identifier 7, sequence 1.
		typ := byte(8)
		if p.proto == protoICMPv6 {
			typ = 128
		}
		seg = []byte{typ, 0, 0, 0, 0, 7, 0, 1}
		csumOff = 2
	}
	seg = append(seg, p.payload...)
	if p.proto == ProtoUDP && p.zeroUDPCsum {
		return seg
	}
	var c uint16
	if p.proto == protoICMP {
		c = checksum(seg)
	} else {
		c = l4Checksum(p.src.Addr(), p.dst.Addr(), p.proto, seg)
	}
	if c == 0 && p.proto == ProtoUDP {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(seg[csumOff:], c)
	return seg
}

// sum16 adds b as big-endian 16-bit words to sum, one's complement style.
func sum16(sum uint64, b []byte) uint64 {
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

func fold(sum uint64) uint16 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// checksum is the Internet checksum of b (RFC 1071).
func checksum(b []byte) uint16 { return ^fold(sum16(0, b)) }

// pseudoSum sums the TCP/UDP pseudo header.
func pseudoSum(src, dst netip.Addr, proto uint8, length int) uint64 {
	sum := sum16(0, src.AsSlice())
	sum = sum16(sum, dst.AsSlice())
	return sum + uint64(proto) + uint64(length)
}

func l4Checksum(src, dst netip.Addr, proto uint8, seg []byte) uint16 {
	return ^fold(sum16(pseudoSum(src, dst, proto, len(seg)), seg))
}

// parsedFrame locates what checkFrame and the tests need in a frame.
type parsedFrame struct {
	src, dst netip.AddrPort
	proto    uint8
	l3, l4   int // offsets
	csumOff  int // L4 checksum offset
}

// parseFrame decodes a frame built by build without extension headers
// other than destination options.
func parseFrame(frame []byte) (parsedFrame, error) {
	if len(frame) < 14 {
		return parsedFrame{}, fmt.Errorf("frame of %d bytes", len(frame))
	}
	p := parsedFrame{l3: 14}
	var sa, da netip.Addr
	switch binary.BigEndian.Uint16(frame[12:]) {
	case 0x0800:
		if len(frame) < 34 {
			return p, fmt.Errorf("short IPv4 frame")
		}
		p.l4 = 14 + int(frame[14]&0x0f)*4
		p.proto = frame[23]
		sa = netip.AddrFrom4([4]byte(frame[26:30]))
		da = netip.AddrFrom4([4]byte(frame[30:34]))
	case 0x86dd:
		if len(frame) < 54 {
			return p, fmt.Errorf("short IPv6 frame")
		}
		p.l4 = 54
		p.proto = frame[20]
		for p.proto == ext6DstOpts && len(frame) >= p.l4+8 {
			p.proto = frame[p.l4]
			p.l4 += 8 * (int(frame[p.l4+1]) + 1)
		}
		sa = netip.AddrFrom16([16]byte(frame[22:38]))
		da = netip.AddrFrom16([16]byte(frame[38:54]))
	default:
		return p, fmt.Errorf("ethertype %#04x", binary.BigEndian.Uint16(frame[12:]))
	}
	if len(frame) < p.l4+8 {
		return p, fmt.Errorf("short L4 header")
	}
	p.src = netip.AddrPortFrom(sa, binary.BigEndian.Uint16(frame[p.l4:]))
	p.dst = netip.AddrPortFrom(da, binary.BigEndian.Uint16(frame[p.l4+2:]))
	p.csumOff = p.l4 + 6
	if p.proto == ProtoTCP {
		p.csumOff = p.l4 + 16
	}
	return p, nil
}

// checkFrame recomputes the IPv4 header and L4 checksums of frame.
func checkFrame(frame []byte) error {
	p, err := parseFrame(frame)
	if err != nil {
		return err
	}
	if p.src.Addr().Is4() {
		if got := fold(sum16(0, frame[p.l3:p.l4])); got != 0xffff {
			return fmt.Errorf("IPv4 header checksum: sum %#04x, want 0xffff", got)
		}
	}
	seg := frame[p.l4:]
	if p.proto == ProtoUDP && p.src.Addr().Is4() && binary.BigEndian.Uint16(frame[p.csumOff:]) == 0 {
		return nil // no checksum
	}
	if got := fold(sum16(pseudoSum(p.src.Addr(), p.dst.Addr(), p.proto, len(seg)), seg)); got != 0xffff {
		return fmt.Errorf("L4 checksum %#04x: sum %#04x, want 0xffff", binary.BigEndian.Uint16(frame[p.csumOff:]), got)
	}
	return nil
}

// sameFrame compares frames treating a TCP or IPv4 header checksum of
// 0x0000 and 0xffff as equal: both are the one's complement zero, and an
// incremental update may yield either.
func sameFrame(got, want []byte) bool {
	if len(got) != len(want) {
		return false
	}
	g, w := append([]byte(nil), got...), append([]byte(nil), want...)
	if p, err := parseFrame(w); err == nil {
		offs := []int{}
		if p.src.Addr().Is4() {
			offs = append(offs, p.l3+10)
		}
		if p.proto == ProtoTCP {
			offs = append(offs, p.csumOff)
		}
		for _, off := range offs {
			normalizeZero(g[off:])
			normalizeZero(w[off:])
		}
	}
	return string(g) == string(w)
}

func normalizeZero(b []byte) {
	if b[0] == 0xff && b[1] == 0xff {
		b[0], b[1] = 0, 0
	}
}

// flowBytes lays out struct flow (bpf/weir.h) for a packet from src to dst.
func flowBytes(src, dst netip.AddrPort, proto uint8) [40]byte {
	var f [40]byte
	s, d := addr16(src.Addr()), addr16(dst.Addr())
	copy(f[0:], s[:])
	copy(f[16:], d[:])
	binary.LittleEndian.PutUint16(f[32:], src.Port())
	binary.LittleEndian.PutUint16(f[34:], dst.Port())
	f[36] = proto
	f[37] = ipVersion(src.Addr())
	return f
}

// murmur3 is MurmurHash3 x86_32 over whole little-endian words, as
// flow_hash in bpf/weir.c computes it.
func murmur3(data [40]byte, seed uint32) uint32 {
	h := seed
	for i := 0; i < len(data); i += 4 {
		k := binary.LittleEndian.Uint32(data[i:]) * 0xcc9e2d51
		k = bits.RotateLeft32(k, 15) * 0x1b873593
		h = bits.RotateLeft32(h^k, 13)*5 + 0xe6546b64
	}
	return fmix32(h ^ uint32(len(data)))
}

// fmix32 is MurmurHash3's finalizer.
func fmix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// Hash seeds and SNAT port allocation from bpf/weir.h.
const (
	seedFlow      = 0x77656972
	seedSNAT      = 0x736e6174
	snatProbes    = 32
	snatProbeStep = 0x9e3779b9
)

// expectedBackend is the table entry the program must choose for a flow.
func expectedBackend(table []uint32, src, dst netip.AddrPort, proto uint8) uint32 {
	return table[murmur3(flowBytes(src, dst, proto), seedFlow)%uint32(len(table))]
}

// expectedSNATPort is the first port the program probes for a flow of a
// service on DefaultSNATPorts.
func expectedSNATPort(src, dst netip.AddrPort, proto uint8) uint16 {
	return snatProbe(src, dst, proto, 0)
}

// snatProbe is the port the program tries at probe i for a flow of a
// service on DefaultSNATPorts.
func snatProbe(src, dst netip.AddrPort, proto uint8, i uint32) uint16 {
	return snatProbeIn(DefaultSNATPorts, src, dst, proto, i)
}

// snatProbeIn is the port the program tries at probe i for a flow of a
// service on ports.
func snatProbeIn(ports PortRange, src, dst netip.AddrPort, proto uint8, i uint32) uint16 {
	start := murmur3(flowBytes(src, dst, proto), seedSNAT)
	return uint16(uint32(ports.First) + fmix32(start+i*snatProbeStep)%uint32(ports.Len()))
}

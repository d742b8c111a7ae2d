package proxyproto

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
)

// sigV2 opens every version 2 header.
var sigV2 = [12]byte{'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n'}

// The byte after the signature: version 2 in the high nibble, the command
// in the low one.
const (
	v2Local = 0x20
	v2Proxy = 0x21
)

// The address family and transport byte: the family in the high nibble,
// the transport in the low one. Only these combinations exist.
const (
	famUnspec    = 0x00
	famTCP4      = 0x11
	famUDP4      = 0x12
	famTCP6      = 0x21
	famUDP6      = 0x22
	famUnixTCP   = 0x31
	famUnixUDP   = 0x32
	v2FixedLen   = 16
	v2Inet4Len   = 12  // two 4-byte addresses, two ports
	v2Inet6Len   = 36  // two 16-byte addresses, two ports
	v2UnixLen    = 216 // two 108-byte paths
	maxV2AddrLen = v2Inet6Len
)

func (h Header) appendV2(b []byte) []byte {
	b = append(b, sigV2[:]...)
	if h.Command == Local {
		return append(b, v2Local, famUnspec, 0, 0)
	}
	b = append(b, v2Proxy)
	s, d := h.Source.Addr(), h.Destination.Addr()
	switch {
	case !s.IsValid():
		return append(b, famUnspec, 0, 0)
	case s.Is4():
		b = append(b, famTCP4+byte(h.Transport-TCP), 0, v2Inet4Len)
		s4, d4 := s.As4(), d.As4()
		b = append(append(b, s4[:]...), d4[:]...)
	default:
		b = append(b, famTCP6+byte(h.Transport-TCP), 0, v2Inet6Len)
		s16, d16 := s.As16(), d.As16()
		b = append(append(b, s16[:]...), d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, h.Source.Port())
	return binary.BigEndian.AppendUint16(b, h.Destination.Port())
}

// readV2 reads the rest of a version 2 header whose first minHeader bytes
// are in buf: the last byte of the fixed part, then exactly the length it
// declares, of which the addresses are kept and the rest (extensions,
// Unix paths) skipped.
func readV2(r io.Reader, buf *[maxV1]byte) (Header, error) {
	if _, err := io.ReadFull(r, buf[minHeader:v2FixedLen]); err != nil {
		return Header{}, readError(err)
	}
	h := Header{Version: V2}
	switch buf[12] {
	case v2Local:
		h.Command = Local
	case v2Proxy:
		h.Command = Proxy
	default:
		if buf[12]>>4 != 2 {
			return Header{}, invalid("v2 signature with version %d", buf[12]>>4)
		}
		return Header{}, invalid("v2 header has unknown command %#x", buf[12]&0xf)
	}
	fam := buf[13]
	length := int(binary.BigEndian.Uint16(buf[14:16]))
	var addrLen int
	switch fam {
	case famUnspec, famUnixTCP, famUnixUDP:
		// No address a netip.AddrPort holds: the receiver uses the
		// connection's own.
	case famTCP4, famUDP4:
		addrLen = v2Inet4Len
	case famTCP6, famUDP6:
		addrLen = v2Inet6Len
	default:
		return Header{}, invalid("v2 header has unknown address family and transport %#02x", fam)
	}
	if h.Command == Local {
		addrLen = 0 // a LOCAL header's addresses are ignored, its length skipped
	}
	if fam>>4 == 3 && h.Command == Proxy && length < v2UnixLen {
		return Header{}, invalid("v2 header length %d too short for AF_UNIX addresses (%d)", length, v2UnixLen)
	}
	if length < addrLen {
		return Header{}, invalid("v2 header length %d too short for its addresses (%d)", length, addrLen)
	}
	if addrLen > 0 {
		a := buf[:addrLen]
		if _, err := io.ReadFull(r, a); err != nil {
			return Header{}, readError(err)
		}
		h.Transport = TCP + Transport(fam&0xf-1)
		ports := a[addrLen-4:]
		src, dst := netip.AddrFrom4([4]byte(a[0:4])), netip.AddrFrom4([4]byte(a[4:8]))
		if addrLen == v2Inet6Len {
			src, dst = netip.AddrFrom16([16]byte(a[0:16])), netip.AddrFrom16([16]byte(a[16:32]))
		}
		h.Source = netip.AddrPortFrom(src, binary.BigEndian.Uint16(ports[0:2]))
		h.Destination = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(ports[2:4]))
	}
	if err := skip(r, length-addrLen, buf[:]); err != nil {
		return Header{}, err
	}
	return h, nil
}

// skip reads and drops n bytes from r, using buf.
func skip(r io.Reader, n int, buf []byte) error {
	for n > 0 {
		m := min(n, len(buf))
		if _, err := io.ReadFull(r, buf[:m]); err != nil {
			return readError(err)
		}
		n -= m
	}
	return nil
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

package proxyproto

import (
	"bytes"
	"io"
	"net/netip"
	"strconv"
)

const (
	// maxV1 is the longest version 1 header, CRLF included.
	maxV1 = 107
	// minHeader is the shortest header of either version: "PROXY
	// UNKNOWN\r\n" (a version 2 header has 16 bytes at least). Read asks
	// for this much before it knows the version.
	minHeader = 15
)

func (h Header) appendV1(b []byte) []byte {
	b = append(b, "PROXY "...)
	if !h.Source.Addr().IsValid() {
		return append(b, "UNKNOWN\r\n"...)
	}
	s, d := h.Source.Addr().WithZone(""), h.Destination.Addr().WithZone("")
	if s.Is4() {
		b = append(b, "TCP4 "...)
	} else {
		b = append(b, "TCP6 "...)
	}
	b = s.AppendTo(b)
	b = append(b, ' ')
	b = d.AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(h.Source.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(h.Destination.Port()), 10)
	return append(b, "\r\n"...)
}

// readV1 reads the rest of a version 1 header whose first minHeader bytes
// are in buf. A line's end is only known once its CRLF arrived, so it
// reads in steps no longer than the shortest valid completion of what it
// has: a valid header is consumed exactly, whatever follows it.
func readV1(r io.Reader, buf *[maxV1]byte) (Header, error) {
	n := minHeader
	for {
		line := buf[:n]
		need := 1
		if i := bytes.IndexByte(line, '\r'); i >= 0 {
			switch {
			case i < n-1 && line[i+1] != '\n':
				return Header{}, invalid("v1 header has a CR not followed by LF")
			case i < n-1:
				return parseV1(line[:i])
			case n == maxV1:
				return Header{}, invalid("v1 header longer than %d bytes", maxV1)
			}
		} else {
			if n == maxV1 {
				return Header{}, invalid("v1 header has no CRLF in its first %d bytes", maxV1)
			}
			var err error
			if need, err = v1Need(line); err != nil {
				return Header{}, err
			}
			need = min(need, maxV1-n)
		}
		if _, err := io.ReadFull(r, buf[n:n+need]); err != nil {
			return Header{}, readError(err)
		}
		n += need
	}
}

// v1Need returns how many more bytes the version 1 header line, of which
// line (no CR in it) has arrived, needs at least to be complete, counting
// the shortest valid form of each missing field; or the error that makes
// line invalid already.
func v1Need(line []byte) (int, error) {
	rest := line[len("PROXY "):]
	if bytes.IndexByte(rest, '\n') >= 0 {
		return 0, invalid("v1 header has a LF not preceded by CR")
	}
	var proto []byte
	complete := 0 // fields followed by a space
	start := 0
	for j, c := range rest {
		if c != ' ' {
			continue
		}
		f := rest[start:j]
		if len(f) == 0 {
			return 0, invalid("v1 header has an empty field")
		}
		if complete == 0 {
			proto = f
		} else if len(f) > maxField(proto, complete-1) {
			return 0, invalid("v1 header field %q too long", f)
		}
		complete++
		start = j + 1
	}
	partial := rest[start:]
	if complete == 0 {
		if !isPrefix(partial, "TCP4") && !isPrefix(partial, "TCP6") && !isPrefix(partial, "UNKNOWN") {
			return 0, invalid("v1 header has unknown protocol %q", partial)
		}
		return 1, nil
	}
	switch string(proto) {
	case "UNKNOWN":
		return 2, nil // its addresses are ignored: read up to CRLF
	case "TCP4", "TCP6":
	default:
		return 0, invalid("v1 header has unknown protocol %q (want TCP4, TCP6 or UNKNOWN)", proto)
	}
	cur := complete - 1 // index of the field in progress: source, destination, ports
	if cur >= 4 {
		return 0, invalid("v1 header has more than 6 fields")
	}
	if len(partial) > maxField(proto, cur) {
		return 0, invalid("v1 header field %q too long", partial)
	}
	need := 2 + max(minField(proto, cur)-len(partial), 0)
	for k := cur + 1; k < 4; k++ {
		need += 1 + minField(proto, k)
	}
	return need, nil
}

// minField and maxField bound the length of the address fields of a TCP4
// or TCP6 header: 0 source, 1 destination, 2 and 3 the ports.
func minField(proto []byte, i int) int {
	switch {
	case i >= 2:
		return 1 // "0"
	case string(proto) == "TCP4":
		return len("0.0.0.0")
	}
	return len("::")
}

func maxField(proto []byte, i int) int {
	switch {
	case i >= 2:
		return len("65535")
	case string(proto) == "TCP4":
		return len("255.255.255.255")
	}
	return len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")
}

func isPrefix(b []byte, s string) bool {
	return len(b) <= len(s) && string(b) == s[:len(b)]
}

// parseV1 parses a version 1 header line without its CRLF.
func parseV1(line []byte) (Header, error) {
	var fields [6][]byte
	f := splitFields(line, fields[:0])
	if len(f) < 2 || string(f[0]) != "PROXY" {
		return Header{}, invalid("v1 header %q is not PROXY and a protocol", line)
	}
	h := Header{Version: V1, Command: Proxy}
	switch string(f[1]) {
	case "UNKNOWN":
		// The sender knows no addresses; whatever follows is ignored.
		return h, nil
	case "TCP4", "TCP6":
	default:
		return Header{}, invalid("v1 header has unknown protocol %q (want TCP4, TCP6 or UNKNOWN)", f[1])
	}
	if len(f) != 6 || bytes.IndexByte(f[5], ' ') >= 0 {
		return Header{}, invalid("v1 %s header has %d fields, want 6", f[1], bytes.Count(line, []byte{' '})+1)
	}
	v4 := string(f[1]) == "TCP4"
	src, err := parseV1Addr(f[2], v4)
	if err != nil {
		return Header{}, invalid("v1 source address: %v", err)
	}
	dst, err := parseV1Addr(f[3], v4)
	if err != nil {
		return Header{}, invalid("v1 destination address: %v", err)
	}
	sport, err := parseV1Port(f[4])
	if err != nil {
		return Header{}, invalid("v1 source port: %v", err)
	}
	dport, err := parseV1Port(f[5])
	if err != nil {
		return Header{}, invalid("v1 destination port: %v", err)
	}
	h.Transport = TCP
	h.Source, h.Destination = netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
	return h, nil
}

func parseV1Addr(b []byte, v4 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(string(b))
	switch {
	case err != nil:
		return a, err
	case v4 && !a.Is4():
		return a, errorf("%q is not an IPv4 address (TCP4)", b)
	case !v4 && (!a.Is6() || a.Zone() != ""):
		return a, errorf("%q is not an IPv6 address without zone (TCP6)", b)
	}
	return a, nil
}

// parseV1Port parses a decimal port without sign or leading zeros.
func parseV1Port(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || len(b) > 1 && b[0] == '0' {
		return 0, errorf("%q is not a port number", b)
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errorf("%q is not a port number", b)
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, errorf("%q is out of range", b)
	}
	return uint16(n), nil
}

// splitFields appends to f the space-separated fields of line, up to
// cap(f) of them, the last holding the rest of the line.
func splitFields(line []byte, f [][]byte) [][]byte {
	for len(f) < cap(f)-1 {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			break
		}
		f = append(f, line[:i])
		line = line[i+1:]
	}
	return append(f, line)
}

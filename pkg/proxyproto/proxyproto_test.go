package proxyproto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"testing/iotest"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const sig = "0d0a0d0a000d0a515549540a"

// golden lists every form of header with its exact encoding: Append must
// produce it and Read must return the header from it.
var golden = []struct {
	name string
	h    Header
	v1   string // the text form, or "" for a binary one
	v2   string // hex
}{
	{name: "v1 tcp4", h: Header{Version: V1, Command: Proxy, Transport: TCP, Source: ap("192.168.0.1:56324"), Destination: ap("10.0.0.2:443")},
		v1: "PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n"},
	{name: "v1 tcp6", h: Header{Version: V1, Command: Proxy, Transport: TCP, Source: ap("[2001:db8::1]:65535"), Destination: ap("[::1]:0")},
		v1: "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n"},
	{name: "v1 tcp6 mapped", h: Header{Version: V1, Command: Proxy, Transport: TCP, Source: ap("[::ffff:1.2.3.4]:1"), Destination: ap("[::1]:2")},
		v1: "PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n"},
	{name: "v1 unknown", h: Header{Version: V1, Command: Proxy}, v1: "PROXY UNKNOWN\r\n"},
	{name: "v1 longest", h: Header{Version: V1, Command: Proxy, Transport: TCP,
		Source:      ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
		Destination: ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")},
		v1: "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"},
	{name: "v2 tcp4", h: Header{Version: V2, Command: Proxy, Transport: TCP, Source: ap("192.168.0.1:56324"), Destination: ap("10.0.0.2:443")},
		v2: sig + "21 11 000c c0a80001 0a000002 dc04 01bb"},
	{name: "v2 udp4", h: Header{Version: V2, Command: Proxy, Transport: UDP, Source: ap("1.2.3.4:53"), Destination: ap("5.6.7.8:5353")},
		v2: sig + "21 12 000c 01020304 05060708 0035 14e9"},
	{name: "v2 tcp6", h: Header{Version: V2, Command: Proxy, Transport: TCP, Source: ap("[2001:db8::1]:1"), Destination: ap("[::1]:80")},
		v2: sig + "21 21 0024 20010db8000000000000000000000001 00000000000000000000000000000001 0001 0050"},
	{name: "v2 udp6", h: Header{Version: V2, Command: Proxy, Transport: UDP, Source: ap("[::2]:1"), Destination: ap("[::3]:2")},
		v2: sig + "21 22 0024 00000000000000000000000000000002 00000000000000000000000000000003 0001 0002"},
	{name: "v2 local", h: Header{Version: V2, Command: Local}, v2: sig + "20 00 0000"},
	{name: "v2 unspec", h: Header{Version: V2, Command: Proxy}, v2: sig + "21 00 0000"},
}

func TestGolden(t *testing.T) {
	for _, tc := range golden {
		t.Run(tc.name, func(t *testing.T) {
			want := []byte(tc.v1)
			if tc.v2 != "" {
				want = unhex(t, tc.v2)
			}
			got, err := tc.h.Append([]byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[1:], want) {
				t.Errorf("Append = %q, want %q", got[1:], want)
			}
			var w bytes.Buffer
			if n, err := tc.h.WriteTo(&w); err != nil || n != int64(len(want)) || !bytes.Equal(w.Bytes(), want) {
				t.Errorf("WriteTo = %d, %v, %q; want %q", n, err, w.Bytes(), want)
			}
			// Read consumes the header and nothing of what follows, from
			// a reader returning all at once and one byte at a time.
			for _, one := range []bool{false, true} {
				rest := "GET / HTTP/1.1\r\n"
				var r io.Reader = strings.NewReader(string(want) + rest)
				if one {
					r = iotest.OneByteReader(r)
				}
				h, err := Read(r)
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				if h != tc.h {
					t.Errorf("Read = %+v, want %+v", h, tc.h)
				}
				if left, _ := io.ReadAll(r); string(left) != rest {
					t.Errorf("left after the header: %q, want %q", left, rest)
				}
			}
		})
	}
}

// TestReadSkips checks what Read accepts and ignores: extensions, Unix
// paths, a LOCAL header's addresses, what follows UNKNOWN.
func TestReadSkips(t *testing.T) {
	tlv := "04 0003 616263" + "01 0002 6832" // a NOOP and an ALPN extension
	unix := strings.Repeat("2f", 108) + strings.Repeat("2e", 108)
	tests := []struct {
		name string
		in   []byte
		want Header
	}{
		{"v2 tcp4 with extensions", unhex(t, sig+"21 11 0017 7f000001 7f000002 0001 0002"+tlv),
			Header{Version: V2, Command: Proxy, Transport: TCP, Source: ap("127.0.0.1:1"), Destination: ap("127.0.0.2:2")}},
		{"v2 local with addresses", unhex(t, sig+"20 11 000c 7f000001 7f000002 0001 0002"), Header{Version: V2, Command: Local}},
		{"v2 local with extensions", unhex(t, sig+"20 00 000b"+tlv), Header{Version: V2, Command: Local}},
		{"v2 unix stream", unhex(t, sig+"21 31 00d8"+unix), Header{Version: V2, Command: Proxy}},
		{"v2 unix dgram with extensions", unhex(t, sig+"21 32 00e3"+unix+tlv), Header{Version: V2, Command: Proxy}},
		{"v2 unspec with bytes", unhex(t, sig+"21 00 0003 010203"), Header{Version: V2, Command: Proxy}},
		{"v1 unknown with addresses", []byte("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"), Header{Version: V1, Command: Proxy}},
		{"v1 unknown longest", []byte("PROXY UNKNOWN " + strings.Repeat("x", 91) + "\r\n"), Header{Version: V1, Command: Proxy}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const rest = "\x16\x03\x01" // a TLS ClientHello follows
			r := iotest.OneByteReader(bytes.NewReader(append(tc.in, rest...)))
			h, err := Read(r)
			if err != nil {
				t.Fatal(err)
			}
			if h != tc.want {
				t.Errorf("Read = %+v, want %+v", h, tc.want)
			}
			if left, _ := io.ReadAll(r); string(left) != rest {
				t.Errorf("left after the header: %q, want %q", left, rest)
			}
		})
	}
}

// TestReadHostile checks that invalid headers are refused with an error
// that says what was wrong.
func TestReadHostile(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string // in the error
	}{
		{"http request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), `no PROXY signature (the connection starts with "GET / HTTP/1.1\r")`},
		{"tls hello", []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03abcdefgh"), "no PROXY signature"},
		{"short junk", []byte("HELLO"), "no PROXY signature"},
		{"lowercase", []byte("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), "no PROXY signature"},
		{"v1 too long", []byte("PROXY UNKNOWN " + strings.Repeat("x", 92) + "\r\n"), "longer than 107 bytes"},
		{"v1 no crlf", []byte("PROXY UNKNOWN " + strings.Repeat("x", 200)), "no CRLF in its first 107 bytes"},
		{"v1 bare cr", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"), "CR not followed by LF"},
		{"v1 bare lf", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nGET / HTTP/1.1\r\n"), "LF not preceded by CR"},
		{"v1 bad protocol", []byte("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), `unknown protocol "TCP5`},
		{"v1 udp", []byte("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), `unknown protocol "UDP4`},
		{"v1 double space", []byte("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), "empty field"},
		{"v1 missing port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\nGET / HTTP/1.1\r\n"), "has 5 fields, want 6"},
		{"v1 extra field", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), "more than 6 fields"},
		{"v1 extra field early", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3 4 5 6 7 8 9 10 11 12 13 14"), "more than 6 fields"},
		{"v1 trailing space", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), "has 7 fields, want 6"},
		{"v1 v6 in tcp4", []byte("PROXY TCP4 ::1 5.6.7.8 1 2\r\n"), `source address: "::1" is not an IPv4 address`},
		{"v1 v4 in tcp6", []byte("PROXY TCP6 ::1 5.6.7.8 1 2\r\n"), `destination address: "5.6.7.8" is not an IPv6 address`},
		{"v1 zone", []byte("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), "not an IPv6 address without zone"},
		{"v1 bad address", []byte("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), "source address"},
		{"v1 leading zero address", []byte("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n"), "source address"},
		{"v1 hostname", []byte("PROXY TCP4 example.com 5.6.7.8 1 2\r\n"), "source address"},
		{"v1 port range", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), `source port: "65536" is out of range`},
		{"v1 port leading zero", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 080\r\n"), `destination port: "080" is not a port number`},
		{"v1 port sign", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"), "source port"},
		{"v1 long field", []byte("PROXY TCP4 1.2.3.4.5.6.7.8.9.10 5.6.7.8 1 2\r\n"), "too long"},
		{"v1 truncated", []byte("PROXY TCP4 1.2.3.4 5.6"), "unexpected EOF"},
		{"v2 version 1", unhex(t, sig+"11 11 000c 7f000001 7f000002 0001 0002"), "v2 signature with version 1"},
		{"v2 version 3", unhex(t, sig+"31 11 000c 7f000001 7f000002 0001 0002"), "version 3"},
		{"v2 command 2", unhex(t, sig+"22 11 000c 7f000001 7f000002 0001 0002"), "unknown command 0x2"},
		{"v2 family 4", unhex(t, sig+"21 41 000c 7f000001 7f000002 0001 0002"), "unknown address family and transport 0x41"},
		{"v2 inet unspec transport", unhex(t, sig+"21 10 000c 7f000001 7f000002 0001 0002"), "0x10"},
		{"v2 unspec stream", unhex(t, sig+"21 01 0000"), "0x01"},
		{"v2 transport 3", unhex(t, sig+"21 13 000c 7f000001 7f000002 0001 0002"), "0x13"},
		{"v2 inet short", unhex(t, sig+"21 11 000b 7f000001 7f000002 0001 00"), "length 11 too short for its addresses (12)"},
		{"v2 inet6 short", unhex(t, sig+"21 21 000c 7f000001 7f000002 0001 0002"), "length 12 too short for its addresses (36)"},
		{"v2 unix short", unhex(t, sig+"21 31 000c 7f000001 7f000002 0001 0002"), "too short for AF_UNIX"},
		{"v2 truncated", unhex(t, sig+"21 11 000c 7f000001"), "unexpected EOF"},
		{"v2 truncated extensions", unhex(t, sig+"21 11 0100 7f000001 7f000002 0001 0002 0000"), "unexpected EOF"},
		{"v2 fixed part cut", unhex(t, sig+"21 11 00"), "unexpected EOF"},
		{"empty", nil, "EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Read(bytes.NewReader(tc.in))
			if err == nil {
				t.Fatalf("Read = %+v, want an error", h)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Read error %q does not say %q", err, tc.want)
			}
			if strings.Contains(tc.want, "EOF") {
				if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
					t.Errorf("error %v is not an EOF", err)
				}
			} else if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestAppendRefuses(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want string
	}{
		{"version 0", Header{Command: Proxy}, "version 0"},
		{"version 3", Header{Version: 3}, "version 3"},
		{"command", Header{Version: V2, Command: 7}, "Command(7)"},
		{"v1 local", Header{Version: V1, Command: Local}, "no LOCAL"},
		{"v1 udp", Header{Version: V1, Command: Proxy, Transport: UDP, Source: ap("1.2.3.4:1"), Destination: ap("1.2.3.4:2")}, "TCP only"},
		{"one address", Header{Version: V2, Command: Proxy, Transport: TCP, Source: ap("1.2.3.4:1")}, "both or neither"},
		{"families", Header{Version: V2, Command: Proxy, Transport: TCP, Source: ap("1.2.3.4:1"), Destination: ap("[::1]:2")}, "different families"},
		{"no transport", Header{Version: V2, Command: Proxy, Source: ap("1.2.3.4:1"), Destination: ap("1.2.3.4:2")}, "transport UNSPEC"},
		{"transport without addresses", Header{Version: V2, Command: Proxy, Transport: TCP}, "without addresses"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.h.Append(nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Append = %q, %v; want an error saying %q", b, err, tc.want)
			}
			if n, err := tc.h.WriteTo(io.Discard); err == nil || n != 0 {
				t.Errorf("WriteTo = %d, %v; want an error", n, err)
			}
		})
	}
}

func TestProxied(t *testing.T) {
	tests := []struct {
		name     string
		src, dst netip.AddrPort
		want     Header
	}{
		{"ipv4", ap("1.2.3.4:1"), ap("5.6.7.8:2"), Header{Version: V2, Command: Proxy, Transport: TCP, Source: ap("1.2.3.4:1"), Destination: ap("5.6.7.8:2")}},
		{"mapped", ap("[::ffff:1.2.3.4]:1"), ap("[::ffff:5.6.7.8]:2"), Header{Version: V2, Command: Proxy, Transport: TCP, Source: ap("1.2.3.4:1"), Destination: ap("5.6.7.8:2")}},
		{"mixed", ap("1.2.3.4:1"), ap("[::1]:2"), Header{Version: V2, Command: Proxy, Transport: TCP, Source: ap("[::ffff:1.2.3.4]:1"), Destination: ap("[::1]:2")}},
		{"zone", ap("[fe80::1%eth0]:1"), ap("[fe80::2%eth0]:2"), Header{Version: V2, Command: Proxy, Transport: TCP, Source: ap("[fe80::1]:1"), Destination: ap("[fe80::2]:2")}},
		{"unix client", netip.AddrPort{}, ap("5.6.7.8:2"), Header{Version: V2, Command: Proxy}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := Proxied(V2, tc.src, tc.dst)
			if h != tc.want {
				t.Fatalf("Proxied = %+v, want %+v", h, tc.want)
			}
			for _, v := range []Version{V1, V2} {
				h.Version = v
				b, err := h.Append(nil)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := Read(bytes.NewReader(b)); err != nil || got != h {
					t.Errorf("v%d: Read(%q) = %+v, %v; want %+v", v, b, got, err, h)
				}
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	p := &Policy{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	tests := []struct {
		addr string
		want bool
	}{
		{"10.1.2.3", true}, {"::ffff:10.1.2.3", true}, {"11.0.0.1", false}, {"fd00::1", true}, {"fe80::1", false},
	}
	for _, tc := range tests {
		if got := p.Trusts(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Trusts(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if (*Policy)(nil).Trusts(netip.MustParseAddr("10.0.0.1")) {
		t.Error("a nil Policy trusts")
	}
	if p.HeaderTimeout() != DefaultTimeout {
		t.Errorf("HeaderTimeout = %v, want the default", p.HeaderTimeout())
	}
}

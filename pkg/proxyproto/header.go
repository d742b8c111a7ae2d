package proxyproto

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// Version is a PROXY protocol version: 1 (text) or 2 (binary).
type Version uint8

// The versions of the protocol.
const (
	V1 Version = 1
	V2 Version = 2
)

// Command says whether a header carries a proxied connection's addresses.
type Command uint8

const (
	// Proxy announces a relayed connection. Its addresses may still be
	// absent (v1 UNKNOWN, v2 AF_UNSPEC or AF_UNIX): the receiver then
	// uses the connection's own.
	Proxy Command = iota
	// Local is a connection the balancer made on its own behalf (a health
	// check): the receiver uses the connection's own addresses. Version 2
	// only.
	Local
)

// String returns the command's name in the specification.
func (c Command) String() string {
	switch c {
	case Proxy:
		return "PROXY"
	case Local:
		return "LOCAL"
	}
	return "Command(" + strconv.Itoa(int(c)) + ")"
}

// Transport is the transport protocol of the proxied connection.
type Transport uint8

const (
	// Unspecified goes with absent addresses.
	Unspecified Transport = iota
	// TCP is a stream connection (v2 SOCK_STREAM, v1 TCP4 and TCP6).
	TCP
	// UDP is a datagram flow (v2 SOCK_DGRAM only).
	UDP
)

// String returns TCP, UDP or UNSPEC.
func (t Transport) String() string {
	switch t {
	case Unspecified:
		return "UNSPEC"
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	}
	return "Transport(" + strconv.Itoa(int(t)) + ")"
}

// Header is one PROXY protocol header.
//
// Source and Destination are both valid or both the zero AddrPort; they
// are the zero value for a Local header, a v1 UNKNOWN one, and a v2 one of
// family AF_UNSPEC or AF_UNIX (whose paths Read skips). Type-length-value
// extensions of version 2 are skipped on read and never written.
type Header struct {
	Version   Version
	Command   Command
	Transport Transport
	// Source is the client's address, Destination the address it
	// connected to.
	Source, Destination netip.AddrPort
}

// Proxied returns the header a proxy sends with version v for a client at
// src that connected to dst. Addresses are unmapped, or both written as
// IPv6 when only one of them is; an invalid one (a client on a Unix
// socket) makes a header without addresses (v1 UNKNOWN, v2 AF_UNSPEC).
func Proxied(v Version, src, dst netip.AddrPort) Header {
	h := Header{Version: v, Command: Proxy}
	if !src.Addr().IsValid() || !dst.Addr().IsValid() {
		return h
	}
	s, d := src.Addr().Unmap().WithZone(""), dst.Addr().Unmap().WithZone("")
	if s.Is4() != d.Is4() {
		s, d = netip.AddrFrom16(s.As16()), netip.AddrFrom16(d.As16())
	}
	h.Transport = TCP
	h.Source, h.Destination = netip.AddrPortFrom(s, src.Port()), netip.AddrPortFrom(d, dst.Port())
	return h
}

// HasAddrs reports whether h carries the proxied connection's addresses:
// a Proxy header with a source and a destination. Otherwise the receiver
// keeps the connection's own.
func (h Header) HasAddrs() bool {
	return h.Command == Proxy && h.Source.Addr().IsValid()
}

// String formats h for logs.
func (h Header) String() string {
	if !h.HasAddrs() {
		return fmt.Sprintf("v%d %s", h.Version, h.Command)
	}
	return fmt.Sprintf("v%d %s %s %s -> %s", h.Version, h.Command, h.Transport, h.Source, h.Destination)
}

// Errors of Read and Append. Read's errors wrap ErrInvalid (the bytes are
// not a valid header) or an I/O error (io.ErrUnexpectedEOF when the peer
// closed mid-header, a timeout, ...).
var (
	ErrInvalid  = errors.New("invalid PROXY protocol header")
	ErrNoHeader = fmt.Errorf("%w: no PROXY signature", ErrInvalid)
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Append appends h's encoding in its version to b. It fails when h cannot
// be encoded: an unknown version, command or transport, a Local or UDP
// header in version 1, only one of the two addresses, or addresses of
// different families.
func (h Header) Append(b []byte) ([]byte, error) {
	if err := h.check(); err != nil {
		return b, err
	}
	if h.Version == V1 {
		return h.appendV1(b), nil
	}
	return h.appendV2(b), nil
}

// WriteTo writes h to w in one Write, as Append encodes it.
func (h Header) WriteTo(w io.Writer) (int64, error) {
	var buf [maxV1]byte
	b, err := h.Append(buf[:0])
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	return int64(n), err
}

func (h Header) check() error {
	if h.Version != V1 && h.Version != V2 {
		return fmt.Errorf("proxyproto: cannot write version %d: only 1 and 2 exist", h.Version)
	}
	if h.Command != Proxy && h.Command != Local {
		return fmt.Errorf("proxyproto: cannot write %v", h.Command)
	}
	if h.Version == V1 && h.Command == Local {
		return errors.New("proxyproto: version 1 has no LOCAL command (send PROXY without addresses: UNKNOWN)")
	}
	if h.Command == Local {
		return nil // no addresses are written
	}
	s, d := h.Source.Addr(), h.Destination.Addr()
	switch {
	case s.IsValid() != d.IsValid():
		return fmt.Errorf("proxyproto: cannot write a header with source %v and destination %v: both or neither are needed", h.Source, h.Destination)
	case !s.IsValid() && h.Transport != Unspecified:
		return fmt.Errorf("proxyproto: cannot write transport %v without addresses", h.Transport)
	case !s.IsValid():
		return nil
	case s.Is4() != d.Is4():
		return fmt.Errorf("proxyproto: source %v and destination %v are of different families", s, d)
	case h.Transport != TCP && h.Transport != UDP:
		return fmt.Errorf("proxyproto: cannot write addresses with transport %v", h.Transport)
	case h.Version == V1 && h.Transport != TCP:
		return fmt.Errorf("proxyproto: version 1 carries TCP only, not %v", h.Transport)
	}
	return nil
}

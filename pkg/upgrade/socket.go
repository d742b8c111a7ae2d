package upgrade

import (
	"fmt"
	"net/netip"
	"os"
)

// Networks of the sockets weir hands over.
const (
	// NetworkTCP is a listening TCP (or Multipath TCP) socket.
	NetworkTCP = "tcp"
	// NetworkUDP is a bound UDP socket.
	NetworkUDP = "udp"
)

// Socket is one socket of an upgrade: the key under which the
// configuration knows it (Service, Addr, Index, as pkg/server's
// ListenerSpec), what the kernel says it is (Network, Bound, Options),
// and its descriptor.
//
// FromListener and FromPacketConn fill every field; Offer reads Network,
// Bound and Options from File again, so the manifest always states what
// the kernel reports. On the receiving side every field comes from the
// manifest and was checked against the descriptor.
type Socket struct {
	// Service is the name of the service the socket serves.
	Service string
	// Addr is the listen address as configured ("0.0.0.0:443", ":80"),
	// not as bound: the new process matches its configuration on it.
	Addr string
	// Index is the listener's position within the service: two listeners
	// may share Service and Addr and differ here.
	Index int
	// Member is the socket's position in its listener's SO_REUSEPORT
	// group (threads: K gives members 0 to K-1); 0 for a single socket.
	Member int
	// Network is NetworkTCP or NetworkUDP.
	Network string
	// Bound is the address the socket is bound to (getsockname).
	Bound netip.AddrPort
	// Options are the socket's options as read back from the kernel.
	Options Options
	// File is the socket's descriptor. A Socket from FromListener or
	// FromPacketConn owns a duplicate that its caller closes; in an
	// Inheritance it is owned by the Inheritance and nil once adopted.
	File *os.File
}

// Options are the options of a socket that change what it accepts, as
// getsockopt(2) reports them. They travel in the manifest so that the new
// process knows what it adopts (and can open a fresh socket instead when
// its configuration asks for something else), and the receiver checks
// them against the descriptor.
type Options struct {
	// ReuseAddr is SO_REUSEADDR.
	ReuseAddr bool `json:"reuse_addr"`
	// ReusePort is SO_REUSEPORT: the socket is one of a group sharing an
	// address, each with its own accept queue.
	ReusePort bool `json:"reuse_port"`
	// V6Only is IPV6_V6ONLY; always false on IPv4 sockets.
	V6Only bool `json:"v6only"`
	// FreeBind is IP_FREEBIND: bound to an address the host may not have.
	FreeBind bool `json:"freebind"`
	// Transparent is IP_TRANSPARENT (TPROXY).
	Transparent bool `json:"transparent"`
	// FastOpen is the TCP_FASTOPEN queue length; 0 when off and for UDP.
	FastOpen int `json:"fastopen"`
	// MPTCP reports a Multipath TCP socket (Go's default for TCP
	// listeners where the kernel supports it).
	MPTCP bool `json:"mptcp"`
	// Device is the interface of SO_BINDTODEVICE; empty when unbound.
	Device string `json:"device"`
}

// key identifies a socket as the configuration does.
type key struct {
	service string
	addr    string
	index   int
	member  int
}

func (s *Socket) key() key { return key{s.Service, s.Addr, s.Index, s.Member} }

// String names the socket as an operator would look for it in the
// configuration.
func (k key) String() string {
	if k.member > 0 {
		return fmt.Sprintf("service %q listener %d (%s) socket %d", k.service, k.index, k.addr, k.member)
	}
	return fmt.Sprintf("service %q listener %d (%s)", k.service, k.index, k.addr)
}

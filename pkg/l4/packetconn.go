package l4

import (
	"fmt"
	"net"
	"net/netip"
)

// packetConn is a served UDP socket as the proxy uses it: addresses as
// netip.AddrPort values, which need no allocation.
type packetConn interface {
	readFrom(b []byte) (int, netip.AddrPort, error)
	writeTo(b []byte, to netip.AddrPort) (int, error)
}

var (
	_ packetConn = udpPacketConn{}
	_ packetConn = genericPacketConn{}
)

// packetConnOf returns the allocation-free packetConn of a *net.UDPConn,
// or an adapter for any other PacketConn.
func packetConnOf(pc net.PacketConn) packetConn {
	if uc, ok := pc.(*net.UDPConn); ok {
		return udpPacketConn{uc}
	}
	return genericPacketConn{pc}
}

type udpPacketConn struct{ c *net.UDPConn }

func (u udpPacketConn) readFrom(b []byte) (int, netip.AddrPort, error) {
	return u.c.ReadFromUDPAddrPort(b)
}

func (u udpPacketConn) writeTo(b []byte, to netip.AddrPort) (int, error) {
	return u.c.WriteToUDPAddrPort(b, to)
}

// genericPacketConn adapts a PacketConn that reports *net.UDPAddr sources
// (a wrapper around a UDP socket, say).
type genericPacketConn struct{ pc net.PacketConn }

func (g genericPacketConn) readFrom(b []byte) (int, netip.AddrPort, error) {
	n, from, err := g.pc.ReadFrom(b)
	if err != nil {
		return n, netip.AddrPort{}, err
	}
	ua, ok := from.(*net.UDPAddr)
	if !ok {
		return n, netip.AddrPort{}, fmt.Errorf("%w: %T %v on %s", ErrUnsupportedAddr, from, from, g.pc.LocalAddr())
	}
	return n, ua.AddrPort(), nil
}

func (g genericPacketConn) writeTo(b []byte, to netip.AddrPort) (int, error) {
	return g.pc.WriteTo(b, net.UDPAddrFromAddrPort(to))
}

//go:build !linux

package upgrade

import (
	"context"
	"fmt"
	"net"
	"runtime"
)

// Receive is the new process's side of an upgrade. It needs Linux
// (SO_PEERCRED, SOCK_SEQPACKET) and returns ErrUnsupported here.
func Receive(ctx context.Context, path string) (*Inheritance, error) {
	return nil, unsupported()
}

// Offer is the old process's side of an upgrade. It needs Linux and
// returns ErrUnsupported here.
func Offer(ctx context.Context, path string, sockets []Socket) (*Handoff, error) {
	return nil, unsupported()
}

// OfferState is Offer with state. It needs Linux and returns
// ErrUnsupported here.
func OfferState(ctx context.Context, path string, sockets []Socket, state []byte) (*Handoff, error) {
	return nil, unsupported()
}

// FromListener describes a listener for Offer. It needs Linux and
// returns ErrUnsupported here.
func FromListener(service, addr string, index, member int, ln net.Listener) (Socket, error) {
	return Socket{}, unsupported()
}

// FromPacketConn describes a UDP socket for Offer. It needs Linux and
// returns ErrUnsupported here.
func FromPacketConn(service, addr string, index int, pc net.PacketConn) (Socket, error) {
	return Socket{}, unsupported()
}

func unsupported() error {
	return fmt.Errorf("upgrade: %w (this is %s)", ErrUnsupported, runtime.GOOS)
}

//go:build !linux

package reuseport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Group is one listen address's socket: without Linux's SO_REUSEPORT
// groups and BPF, a single one.
type Group struct {
	ln net.Listener
}

// Open takes the first inherited socket or binds one; see the Linux
// version. Other inherited sockets are closed.
func Open(network, addr string, inherited []net.Listener, cfg Config) (*Group, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if len(inherited) > 0 {
		for _, ln := range inherited[1:] {
			ln.Close()
		}
		return &Group{ln: inherited[0]}, nil
	}
	lc := net.ListenConfig{KeepAlive: cfg.KeepAlive}
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	return &Group{ln: ln}, nil
}

// Activate does nothing: there is nothing to steer.
func (g *Group) Activate() error { return nil }

// Addr is the address the group is bound to.
func (g *Group) Addr() netip.AddrPort {
	if t, ok := g.ln.Addr().(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPort{}
}

// Listeners returns the one socket.
func (g *Group) Listeners() []net.Listener { return []net.Listener{g.ln} }

// Steering says why there is none.
func (g *Group) Steering() error {
	return fmt.Errorf("%w: SO_REUSEPORT steering needs Linux", ErrNoSteering)
}

// Migrates reports false.
func (g *Group) Migrates() bool { return false }

// Close closes the socket.
func (g *Group) Close() error {
	if err := g.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Sweep does nothing: only Linux pins steering maps.
func Sweep(pinPath string) error { return nil }

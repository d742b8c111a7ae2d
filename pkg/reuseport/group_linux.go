package reuseport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Group is one listen address's SO_REUSEPORT sockets.
type Group struct {
	addr    netip.AddrPort
	members []*net.TCPListener // the sockets to accept on
	retired []*net.TCPListener // inherited sockets beyond Sockets, closed by Activate
	steer   *steering          // nil: no steering, for the reason in why
	why     error
	// cfg is the Config the group was opened with, for the sockets grow
	// binds.
	cfg Config
}

// Open makes the group for addr on network ("tcp", "tcp4" or "tcp6"):
// the sockets in inherited first (handed over by a predecessor, in member
// order), then new ones bound with SO_REUSEPORT until the group has
// cfg.Sockets, or one socket without steering. Inherited sockets beyond
// that are retired: kept out of the active set and closed by Activate.
// Nothing changes for the traffic until Activate.
func Open(network, addr string, inherited []net.Listener, cfg Config) (*Group, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	g := &Group{cfg: cfg}
	own, err := tcpListeners(inherited)
	if err != nil {
		return nil, err
	}
	inheritOptions(own, cfg)
	why := steerable(cfg.PinPath)
	if len(own) == 0 {
		ln, err := listenFirst(network, addr, why == nil, cfg)
		if err != nil {
			return nil, err
		}
		own = []*net.TCPListener{ln}
	}
	g.addr = own[0].Addr().(*net.TCPAddr).AddrPort()
	if g.why = why; why == nil {
		g.steer, g.why = g.startSteering(own, cfg.PinPath)
	}
	k := cfg.Sockets
	if g.steer == nil {
		k = 1
	}
	k, g.members, g.retired = split(own, k)
	if err := g.grow(network, k); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// split keeps the first k of own as members and retires the rest. A
// first socket without SO_REUSEPORT (bound by an older weir) admits no
// new members, so then the group stays as inherited.
func split(own []*net.TCPListener, k int) (int, []*net.TCPListener, []*net.TCPListener) {
	if !reusePort(own[0]) {
		k = min(k, len(own))
	}
	if len(own) <= k {
		return k, own, nil
	}
	return k, own[:k], own[k:]
}

// steerable reports why a group with pinPath cannot have BPF steering, or
// nil when it can: the reason users see, so it must not be a consequence
// of it (a socket bound without SO_REUSEPORT because there is no BPF).
func steerable(pinPath string) error {
	if pinPath == "" {
		return fmt.Errorf("%w: no pin path", ErrNoSteering)
	}
	if err := canSteer(); err != nil {
		return fmt.Errorf("%w: %w", ErrNoSteering, err)
	}
	return nil
}

// startSteering loads the group's steering and places the sockets in its
// sockarray; on failure it returns nil and the reason.
func (g *Group) startSteering(own []*net.TCPListener, pinPath string) (*steering, error) {
	if !reusePort(own[0]) {
		return nil, fmt.Errorf("%w: the inherited socket of %s has no SO_REUSEPORT (restart weir to change its threads)", ErrNoSteering, g.addr)
	}
	s, err := openSteering(pinPath, GroupName(g.addr))
	if err != nil {
		return nil, err
	}
	for _, ln := range own {
		if _, err := s.place(ln); err != nil {
			s.close()
			return nil, fmt.Errorf("%w: %w", ErrNoSteering, err)
		}
	}
	return s, nil
}

// grow binds new members on the group's address until it has k.
func (g *Group) grow(network string, k int) error {
	for len(g.members) < k {
		ln, err := listen(network, g.addr.String(), true, g.cfg)
		if err != nil {
			return fmt.Errorf("add socket %d of %d to %s: %w", len(g.members)+1, k, g.addr, err)
		}
		g.members = append(g.members, ln)
		if g.steer == nil {
			continue
		}
		if _, err := g.steer.place(ln); err != nil {
			return err
		}
	}
	return nil
}

func tcpListeners(lns []net.Listener) ([]*net.TCPListener, error) {
	out := make([]*net.TCPListener, len(lns))
	for i, ln := range lns {
		t, ok := ln.(*net.TCPListener)
		if !ok {
			return nil, fmt.Errorf("%w: member %d on %s is a %T, not a TCP listener", ErrInherited, i, ln.Addr(), ln)
		}
		out[i] = t
	}
	return out, nil
}

// Activate makes the members the sockets that receive new connections
// (with steering: writes the active set, then attaches this process's
// program in place of any predecessor's) and closes this process's
// descriptors of retired sockets. Call it when the members are about to be
// accepted on. A retired socket closes when its last descriptor does; with
// migration its queued connections then move to a member.
func (g *Group) Activate() error {
	if g.steer != nil {
		slots := make([]uint32, len(g.members))
		for i, ln := range g.members {
			slot, err := g.steer.place(ln)
			if err != nil {
				return err
			}
			slots[i] = slot
		}
		if err := g.steer.activate(slots); err != nil {
			return fmt.Errorf("activate %d sockets on %s: %w", len(slots), g.addr, err)
		}
		if err := g.steer.attach(g.members[0]); err != nil {
			return err
		}
	} else if reusePort(g.members[0]) {
		// A predecessor's program would go on steering by its maps.
		if err := detach(g.members[0]); err != nil {
			return err
		}
	}
	errs := make([]error, 0, len(g.retired))
	for _, ln := range g.retired {
		errs = append(errs, ln.Close())
	}
	g.retired = nil
	return errors.Join(errs...)
}

// Addr is the address the group is bound to.
func (g *Group) Addr() netip.AddrPort { return g.addr }

// Listeners returns the members, to accept on.
func (g *Group) Listeners() []net.Listener {
	out := make([]net.Listener, len(g.members))
	for i, ln := range g.members {
		out[i] = ln
	}
	return out
}

// Steering returns nil when the group is steered by BPF, or why not.
func (g *Group) Steering() error {
	if g.steer == nil {
		return g.why
	}
	return nil
}

// Migrates reports whether connections queued on a closing socket move to
// a member (steering on Linux 5.14+).
func (g *Group) Migrates() bool { return g.steer != nil && g.steer.migrate }

// Close closes this process's descriptors of the group's sockets and
// releases the steering; the group's pins are removed when no socket is
// left in it (no successor holds one).
func (g *Group) Close() error {
	var errs []error
	for _, ln := range append(g.members, g.retired...) {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	g.members, g.retired = nil, nil
	if g.steer != nil {
		errs = append(errs, g.steer.close())
		g.steer = nil
	}
	return errors.Join(errs...)
}

package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/weir-lb/weir/internal/bpffs"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/reuseport"
)

// ListenerSpec names one socket of the configuration: the service, the
// network ("tcp" or "udp"), the configured address, the listener's index
// within the service, and the socket's place in the listener's
// SO_REUSEPORT group. Together they identify a socket across an upgrade,
// even when two listeners share an address.
type ListenerSpec struct {
	Service string
	Network string
	Addr    string
	Index   int
	// Member is the socket's position in its listener's group of
	// `threads` sockets; 0 for l4 services' single socket.
	Member int
}

// Opener gives a server the sockets a previous process handed over in a
// graceful upgrade. The server binds whatever was not handed over.
type Opener interface {
	// Listener returns the TCP listener handed over as spec, or nil if
	// none was.
	Listener(spec ListenerSpec) (net.Listener, error)
	// PacketConn returns the UDP socket handed over as spec, or nil if
	// none was.
	PacketConn(spec ListenerSpec) (net.PacketConn, error)
}

// Fresh is the Opener of a process that inherits nothing.
type Fresh struct{}

var _ Opener = Fresh{}

// Listener returns nil: nothing was handed over.
func (Fresh) Listener(ListenerSpec) (net.Listener, error) { return nil, nil }

// PacketConn returns nil: nothing was handed over.
func (Fresh) PacketConn(ListenerSpec) (net.PacketConn, error) { return nil, nil }

// member is one socket of a service's listener groups.
type member struct {
	index, member int
	ln            net.Listener
}

// Listen binds every listener with new sockets.
func (s *Server) Listen() error { return s.ListenWith(Fresh{}) }

// ListenWith takes the sockets open hands over and binds the rest: each
// HTTP listener becomes a SO_REUSEPORT group of `threads` sockets steered
// by BPF (pkg/reuseport), or a single socket where steering is
// unavailable. TLS is layered on here, so open deals in plain TCP
// listeners only. It then starts the l4 services: attaching the BPF data
// plane, or binding their VIPs for the userspace one. On error, the
// sockets already opened are closed again.
func (s *Server) ListenWith(open Opener) error {
	if err := s.listenHTTP(open); err != nil {
		s.closeListeners()
		return err
	}
	if err := s.listenAdmin(open); err != nil {
		s.closeListeners()
		return err
	}
	if err := s.startL4(open); err != nil {
		s.closeListeners()
		return err
	}
	s.degraded.warn(s.log)
	s.warnPrivatePins()
	return nil
}

// warnPrivatePins warns, once, when the BPF objects weir pinned (the
// data plane's, the listeners' steering) cannot outlive it: their bpffs
// is mounted in weir's own mount namespace only, as when `ip netns exec`
// (which remounts /sys in a mount namespace made for the one command)
// starts weir, and bpffs.Ensure had to mount one there. Then kill -9, a
// restart or an upgrade loses the data plane that should survive them.
func (s *Server) warnPrivatePins() {
	if !s.pinsBPF() {
		return
	}
	err := bpffs.Persistent(s.cfg.BPF.PinPath)
	switch {
	case err == nil:
	case errors.Is(err, bpffs.ErrPrivate):
		s.log.Warn("bpf.pin_path is on a bpffs mounted only in weir's own mount namespace: "+
			"the pinned BPF maps and programs vanish when weir exits, so the data plane "+
			"does not survive a restart, an upgrade or kill -9",
			"pin_path", s.cfg.BPF.PinPath,
			"fix", "start weir in the host's mount namespace: nsenter --net=/run/netns/NAME weir ..., "+
				"not ip netns exec NAME weir ..., which gives it a mount namespace and a /sys of its own",
			"reason", err)
	default:
		s.log.Info("cannot tell whether the pinned BPF objects outlive weir", "pin_path", s.cfg.BPF.PinPath, "err", err)
	}
}

// pinsBPF reports whether anything of this server is pinned under
// bpf.pin_path: the BPF data plane, or a listener's steering.
func (s *Server) pinsBPF() bool {
	if s.kernel != nil {
		return true
	}
	for _, svc := range s.services {
		for _, g := range svc.groups {
			if g.Steering() == nil {
				return true
			}
		}
	}
	return false
}

// degraded is what runs without BPF, and why, for the one warning an
// operator reads about it.
type degraded struct {
	dataplane error // l4 services with dataplane: auto run in userspace
	steering  error // listeners have one socket instead of threads
	threads   int
	warned    bool
}

func (d *degraded) warn(log interface{ Warn(string, ...any) }) {
	if d.warned || (d.dataplane == nil && d.steering == nil) {
		return
	}
	d.warned = true
	const (
		userspace = "L4 services with dataplane: auto are proxied in userspace"
		oneSocket = "each listener has one socket, not one per thread"
	)
	switch {
	case d.steering == nil:
		log.Warn("the BPF data plane is unavailable; "+userspace, "reason", d.dataplane)
	case d.dataplane == nil:
		log.Warn("SO_REUSEPORT steering in BPF is unavailable; "+oneSocket, "threads", d.threads, "reason", d.steering)
	default:
		log.Warn("the BPF data plane is unavailable; "+userspace+", and "+oneSocket,
			"reason", d.dataplane, "threads", d.threads, "steering_reason", d.steering)
	}
}

// acceptKeepAlive turns TCP keep-alive probes off for accepted client
// connections, as NGINX and HAProxy leave them by default: every request,
// and the wait between requests, is bounded by the service's own
// timeouts, and Go's default would cost four setsockopt calls per
// connection (a tenth of the proxy's CPU time with a new connection per
// request). A tunnel, which no timeout bounds, turns probes on for itself
// (pkg/l7).
const acceptKeepAlive = -1

func (s *Server) listenHTTP(open Opener) error {
	k := min(s.cfg.Threads, reuseport.MaxSockets)
	var noSteering error
	for _, svc := range s.services {
		for i, l := range svc.cfg.Listeners {
			spec := ListenerSpec{Service: svc.cfg.Name, Network: "tcp", Addr: l.Addr, Index: i}
			inherited, err := inheritedGroup(open, spec)
			if err != nil {
				return fmt.Errorf("service %q: listener %s (%s): %w", svc.cfg.Name, l.Addr, l.Pos, err)
			}
			g, err := reuseport.Open("tcp", l.Addr, inherited, reuseport.Config{
				Sockets:   k,
				PinPath:   s.cfg.BPF.PinPath,
				KeepAlive: acceptKeepAlive,
				// HTTP/1.1, HTTP/2 and TLS clients all speak first.
				ClientSpeaksFirst: true,
			})
			if err != nil {
				closeAll(inherited)
				return fmt.Errorf("service %q: listen on %s (%s): %w", svc.cfg.Name, l.Addr, l.Pos, err)
			}
			svc.addGroup(i, g, svc.tls[i])
			noSteering = cmpNil(noSteering, g.Steering())
		}
	}
	if noSteering != nil && k > 1 {
		s.degraded.steering, s.degraded.threads = noSteering, s.cfg.Threads
	}
	if noSteering == nil {
		// Groups a killed weir left pinned, or of addresses no longer
		// configured; live ones (ours, a successor's) stay.
		if err := reuseport.Sweep(s.cfg.BPF.PinPath); err != nil {
			s.log.Warn("could not remove stale reuseport pins", "err", err)
		}
	}
	return nil
}

// cmpNil returns the first non-nil of a and b.
func cmpNil(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// inheritedGroup returns the members of spec's group that open hands
// over, in member order.
func inheritedGroup(open Opener, spec ListenerSpec) ([]net.Listener, error) {
	var out []net.Listener
	for spec.Member = 0; spec.Member < reuseport.MaxSockets; spec.Member++ {
		ln, err := open.Listener(spec)
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("adopt socket %d: %w", spec.Member, err)
		}
		if ln == nil {
			break
		}
		out = append(out, ln)
	}
	return out, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// addGroup serves g as listener index, through TLS when cfg is set. Its
// members share one connection gate: max_connections is per configured
// listener, however many sockets it has.
func (svc *service) addGroup(index int, g *reuseport.Group, cfg *tls.Config) {
	svc.groups = append(svc.groups, g)
	lc := svc.cfg.Listeners[index]
	ll := svc.listenerLimits[index]
	opts := l7.ListenerOptions{ProxyProtocol: lc.ProxyProtocol, Gate: ll.gate, Limited: &ll.limited}
	for m, ln := range g.Listeners() {
		svc.sockets = append(svc.sockets, member{index: index, member: m, ln: ln})
		if cfg != nil {
			ln = tls.NewListener(ln, cfg)
		}
		svc.listeners = append(svc.listeners, ln)
		svc.serveOpts = append(svc.serveOpts, opts)
	}
}

// Socket is one of a server's sockets, for handing over to a successor.
type Socket struct {
	ListenerSpec
	// Exactly one is set: a TCP listener (never TLS-wrapped) or a UDP
	// socket.
	Listener   net.Listener
	PacketConn net.PacketConn
}

// Sockets returns every socket the server listens on, with its spec.
func (s *Server) Sockets() []Socket {
	var out []Socket
	for _, svc := range s.services {
		for _, m := range svc.sockets {
			l := svc.cfg.Listeners[m.index]
			spec := ListenerSpec{Service: svc.cfg.Name, Network: "tcp", Addr: l.Addr, Index: m.index, Member: m.member}
			out = append(out, Socket{ListenerSpec: spec, Listener: m.ln})
		}
	}
	out = append(out, s.adminSockets()...)
	for _, svc := range s.l4 {
		spec := svc.spec()
		switch {
		case svc.ln != nil:
			out = append(out, Socket{ListenerSpec: spec, Listener: svc.ln})
		case svc.pc != nil:
			out = append(out, Socket{ListenerSpec: spec, PacketConn: svc.pc})
		}
	}
	return out
}

func (s *Server) closeListeners() {
	for _, svc := range s.services {
		for _, ln := range svc.listeners {
			ln.Close()
		}
		svc.listeners, svc.sockets = nil, nil
	}
	s.closeAdminListeners()
	s.closeGroups()
	for _, svc := range s.l4 {
		svc.close()
	}
	s.closeKernel()
}

// closeGroups releases the listener groups: their sockets, and their
// steering once no process (no successor) holds a socket of them.
func (s *Server) closeGroups() {
	for _, svc := range s.services {
		for _, g := range svc.groups {
			if err := g.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("closing a listener group", "service", svc.cfg.Name, "addr", g.Addr(), "err", err)
			}
		}
		svc.groups = nil
	}
}

// Addrs returns the bound address of every listener, by service name, in
// configuration order; useful when a config asks for port 0.
func (s *Server) Addrs() map[string][]net.Addr {
	out := map[string][]net.Addr{}
	for _, svc := range s.services {
		for _, g := range svc.groups {
			out[svc.cfg.Name] = append(out[svc.cfg.Name], net.TCPAddrFromAddrPort(g.Addr()))
		}
	}
	for _, svc := range s.l4 {
		switch {
		case svc.ln != nil:
			out[svc.cfg.Name] = append(out[svc.cfg.Name], svc.ln.Addr())
		case svc.pc != nil:
			out[svc.cfg.Name] = append(out[svc.cfg.Name], svc.pc.LocalAddr())
		}
	}
	return out
}

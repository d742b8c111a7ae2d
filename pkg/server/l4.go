package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/dataplane"
	"github.com/weir-lb/weir/pkg/l4"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/maps"
)

// l4Service is a kind: l4 service: a Maglev load balancer whose usable
// backends are served either in the kernel, by the BPF data plane that a
// maps.Mirror keeps programmed, or by weir's userspace TCP/UDP proxy.
type l4Service struct {
	cfg    *config.Service
	vip    netip.AddrPort
	log    *slog.Logger
	lb     *lb.LoadBalancer[lb.Maglev]
	mirror *maps.Mirror

	// bpf is set when the kernel forwards the service.
	bpf *bpfService
	// Otherwise exactly one userspace proxy serves, on ln or pc.
	tcp *l4.TCPProxy
	udp *l4.UDPProxy
	ln  net.Listener
	pc  net.PacketConn
}

func (s *Server) buildL4(sc *config.Service) (*l4Service, error) {
	opts, err := s.lbOptions(sc.Name, sc.Upstream, nil)
	if err != nil {
		return nil, err
	}
	vip, err := netip.ParseAddrPort(sc.L4.VIP)
	if err != nil {
		return nil, fmt.Errorf("vip (%s): %w", sc.L4.Pos, err)
	}
	svc := &l4Service{cfg: sc, vip: vip, log: s.log.With("service", sc.Name)}
	// The mirror only records until the BPF data plane starts writing
	// through it; in userspace it stays idle.
	svc.mirror = maps.New(maps.WriterFunc(svc.writeBPF), 0, svc.log)
	opts.Observers = append(opts.Observers, svc.mirror)
	if sc.L4.Announce != nil && s.bgp != nil {
		o, err := s.bgp.add(sc, vip)
		if err != nil {
			return nil, err
		}
		opts.Observers = append(opts.Observers, o)
	}
	// The userspace proxy counts each backend's share into these (the
	// BPF data plane counts in its maps).
	opts.Attach = l4.NewBackendCounters
	if svc.lb, err = lb.New(lb.Maglev{}, opts); err != nil {
		return nil, err
	}
	if s.metrics != nil {
		s.metrics.WatchBalancer(sc.Name, svc.lb.Status)
	}
	return svc, nil
}

func (svc *l4Service) proto() uint8 {
	if svc.cfg.L4.Protocol == config.ProtocolUDP {
		return dataplane.ProtoUDP
	}
	return dataplane.ProtoTCP
}

// startL4 brings every l4 service up on the data plane its config asks
// for: bpf (or fail), userspace, or auto, which is BPF where the kernel
// and privileges allow and userspace otherwise. The BPF data plane's
// unavailability is logged once, with the reason, however many services
// it affects.
func (s *Server) startL4(open Opener) error {
	for _, svc := range s.l4 {
		if err := s.startL4Service(svc, open); err != nil {
			return fmt.Errorf("service %q (%s): %w", svc.cfg.Name, svc.cfg.L4.Pos, err)
		}
	}
	return nil
}

func (s *Server) startL4Service(svc *l4Service, open Opener) error {
	mode := svc.cfg.L4.Dataplane
	if mode != config.DataplaneUserspace {
		err := s.startBPF(svc)
		if err == nil {
			svc.log.Info("L4 service forwarded by the BPF data plane", "vip", svc.vip, "protocol", svc.cfg.L4.Protocol)
			return nil
		}
		// A SNAT range that collides is the configuration's fault, not the
		// kernel's: falling back would hide it.
		if mode == config.DataplaneBPF || errors.Is(err, dataplane.ErrSNATPortsInUse) {
			return fmt.Errorf("dataplane: bpf: %w", err)
		}
		s.degraded.dataplane = cmpNil(s.degraded.dataplane, err)
		if svc.cfg.L4.SNAT.Pos.Line > 0 {
			svc.log.Warn("snat applies to the BPF data plane only; the userspace one connects from the kernel's own address and ports",
				"snat", svc.cfg.L4.SNAT.Pos.String())
		}
	}
	if err := svc.listenUserspace(open, s.cfg.MaxRetries); err != nil {
		return err
	}
	svc.log.Info("L4 service proxied in userspace", "vip", svc.vip, "protocol", svc.cfg.L4.Protocol)
	return nil
}

// spec names the service's VIP socket.
func (svc *l4Service) spec() ListenerSpec {
	return ListenerSpec{Service: svc.cfg.Name, Network: string(svc.cfg.L4.Protocol), Addr: svc.vip.String()}
}

// listenUserspace binds the VIP for the userspace proxy.
func (svc *l4Service) listenUserspace(open Opener, maxRetries int) error {
	t := svc.cfg.Upstream.Timeouts
	if svc.cfg.L4.Protocol == config.ProtocolUDP {
		pc, err := open.PacketConn(svc.spec())
		if err == nil && pc == nil {
			pc, err = new(net.ListenConfig).ListenPacket(context.Background(), "udp", svc.vip.String())
		}
		if err != nil {
			return fmt.Errorf("listen on vip: %w", err)
		}
		svc.pc = pc
		svc.udp = &l4.UDPProxy{LB: svc.lb, IdleTimeout: t.Idle, Logger: svc.log}
		return nil
	}
	ln, err := open.Listener(svc.spec())
	if err == nil && ln == nil {
		// No keep-alive probes by default: the proxy sets them where
		// it wants them (no idle timeout), saving four setsockopt(2)
		// calls a connection otherwise.
		lc := net.ListenConfig{KeepAlive: -1}
		ln, err = lc.Listen(context.Background(), "tcp", svc.vip.String())
	}
	if err != nil {
		return fmt.Errorf("listen on vip: %w", err)
	}
	svc.ln = ln
	svc.tcp = &l4.TCPProxy{
		LB: svc.lb, ConnectTimeout: t.Connect, IdleTimeout: t.Idle,
		MaxRetries: maxRetries, Logger: svc.log, ProxyProtocol: proxyVersion(svc.cfg.Upstream.ProxyProtocol),
	}
	return nil
}

// runners returns what runs in the background while the service serves:
// discovery and health checks, and for the kernel data plane the mirror
// that publishes every change of the usable backends.
func (svc *l4Service) runners() []func(context.Context) {
	run := []func(context.Context){svc.lb.Run}
	if svc.bpf != nil {
		run = append(run, func(ctx context.Context) { svc.mirror.Run(ctx, svc.lb.Ready()) })
	}
	return run
}

// serve runs the userspace proxy until it is shut down; the kernel data
// plane needs no serving and serve returns at once.
func (svc *l4Service) serve() error {
	var err error
	switch {
	case svc.tcp != nil:
		err = svc.tcp.Serve(svc.ln)
	case svc.udp != nil:
		err = svc.udp.Serve(svc.pc)
	}
	if errors.Is(err, l4.ErrProxyClosed) {
		return nil
	}
	return err
}

// shutdown stops the userspace proxy, letting TCP connections finish
// until ctx is done. The BPF data plane keeps forwarding with its last
// table: pinned programs and maps outlive the process, so that a restart
// or an upgrade drops no flow.
func (svc *l4Service) shutdown(ctx context.Context) {
	if svc.tcp != nil {
		if err := svc.tcp.Shutdown(ctx); err != nil && !errors.Is(err, l4.ErrProxyClosed) {
			svc.log.Warn("graceful shutdown cut connections short", "err", err)
		}
	}
	if svc.udp != nil {
		svc.udp.Close()
	}
}

// close stops the userspace proxy at once. The sockets are closed here
// too, for a proxy that never started serving them.
func (svc *l4Service) close() {
	if svc.tcp != nil {
		svc.tcp.Close()
	}
	if svc.udp != nil {
		svc.udp.Close()
	}
	svc.closeSockets()
}

// closeSockets closes the userspace proxy's socket, which its Serve
// closes only if it ran.
func (svc *l4Service) closeSockets() {
	if svc.ln != nil {
		svc.ln.Close()
	}
	if svc.pc != nil {
		svc.pc.Close()
	}
}

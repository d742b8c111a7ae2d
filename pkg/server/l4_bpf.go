package server

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/dataplane"
)

// kernel is the BPF data plane shared by every l4 service of a server:
// one loaded program and one set of pinned maps, attached to the
// interfaces the services' traffic crosses.
type kernel struct {
	dp *dataplane.Dataplane
	// pinned is what the maps held when weir started: services a previous
	// weir programmed, which keep forwarding until replaced.
	pinned []dataplane.ServiceState
	// ids are the service slots claimed by this configuration.
	ids map[uint32]bool
	// cfg says which hook each interface gets (bpf.attach, bpf.interfaces).
	cfg config.BPF
	log *slog.Logger

	mu       sync.Mutex
	attached map[string]bool
	// draining is set once the server stops serving (a shutdown, or a
	// hand-over to a new weir): it attaches no further interface, so that
	// it never moves one the new weir uses to its own configuration's hook.
	draining bool
}

// bpfService is an l4 service's part in the kernel data plane.
type bpfService struct {
	k  *kernel
	id uint32

	// ports are the SNAT ports new flows get (config snat.ports).
	ports dataplane.PortRange

	mu     sync.Mutex
	snat   netip.Addr          // the configured snat.address, or the kernel's choice once known
	routed map[netip.Addr]bool // backends whose route's interface is attached
}

// openKernel loads the data plane once, on first use; a failure is
// remembered so that every service reports the same reason.
func (s *Server) openKernel() (*kernel, error) {
	if s.kernel != nil || s.kernelErr != nil {
		return s.kernel, s.kernelErr
	}
	b := s.cfg.BPF
	dp, err := dataplane.Open(dataplane.Options{PinPath: b.PinPath,
		TCPIdleTimeout: b.TCPIdleTimeout, UDPIdleTimeout: b.UDPIdleTimeout, ClosedFlowTimeout: b.TCPClosedTimeout})
	if err != nil {
		s.kernelErr = fmt.Errorf("open the BPF data plane at %s: %w", s.cfg.BPF.PinPath, err)
		return nil, s.kernelErr
	}
	pinned, err := dp.Services()
	if err != nil {
		dp.Close()
		s.kernelErr = fmt.Errorf("read the services pinned at %s: %w", s.cfg.BPF.PinPath, err)
		return nil, s.kernelErr
	}
	s.kernel = &kernel{dp: dp, pinned: pinned, ids: map[uint32]bool{}, cfg: b, log: s.log, attached: map[string]bool{}}
	return s.kernel, nil
}

// startBPF claims a service slot and attaches the program where the VIP's
// traffic arrives. The service's table is written later, by the mirror,
// once the first health round is done: until then a service a previous
// weir programmed keeps forwarding as it was.
func (s *Server) startBPF(svc *l4Service) error {
	k, err := s.openKernel()
	if err != nil {
		return err
	}
	if svc.cfg.L4.Interface == "" {
		return errors.New("no interface is configured for the BPF program to attach to (set interface: to where VIP traffic arrives)")
	}
	snat := svc.cfg.L4.SNAT
	// Direct server return hands out no ports, so it cannot collide.
	if svc.cfg.L4.Forwarding != config.ForwardingDSR {
		if err := dataplane.CheckHostSNATPorts(snat.Address, snat.Ports); err != nil {
			return fmt.Errorf("snat %s: %w", snatPos(svc.cfg), err)
		}
	}
	id, err := k.claimID(svc.vip, svc.proto())
	if err != nil {
		return err
	}
	if err := k.attach(svc.cfg.L4.Interface); err != nil {
		delete(k.ids, id)
		return err
	}
	svc.bpf = &bpfService{k: k, id: id, ports: snat.Ports, snat: snat.Address, routed: map[netip.Addr]bool{}}
	return nil
}

// snatPos says where the service's SNAT settings come from, for errors.
func snatPos(sc *config.Service) string {
	if sc.L4.SNAT.Pos.Line > 0 {
		return "at " + sc.L4.SNAT.Pos.String()
	}
	return "from bpf.snat or the defaults"
}

// claimID returns the slot a previous weir gave the same VIP and protocol,
// so that its flows and counters carry on, or else the lowest slot that
// neither a pinned service nor this configuration uses.
func (k *kernel) claimID(vip netip.AddrPort, proto uint8) (uint32, error) {
	for _, p := range k.pinned {
		if p.VIP == vip && p.Proto == proto && !k.ids[p.ID] {
			k.ids[p.ID] = true
			return p.ID, nil
		}
	}
	for id := uint32(0); id < dataplane.DefaultMaxServices; id++ {
		if k.ids[id] || slices.ContainsFunc(k.pinned, func(p dataplane.ServiceState) bool { return p.ID == id }) {
			continue
		}
		k.ids[id] = true
		return id, nil
	}
	return 0, fmt.Errorf("all %d BPF service slots are in use (weir status lists them)", dataplane.DefaultMaxServices)
}

// attach hooks the program to ifname's ingress once per server, at the
// hook the configuration gives the interface.
func (k *kernel) attach(ifname string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.attached[ifname] {
		return nil
	}
	if k.draining {
		return fmt.Errorf("attach to interface %s: this weir is stopping or handing over to a new one, which attaches what its configuration uses", ifname)
	}
	want := k.cfg.AttachOn(ifname)
	hook, err := dataplane.ParseHook(string(want))
	if err != nil {
		return fmt.Errorf("attach to interface %s: %w", ifname, err)
	}
	a, err := k.dp.AttachHook(ifname, hook)
	if err != nil {
		return fmt.Errorf("attach to interface %s at %s: %w", ifname, want, err)
	}
	k.log.Info("BPF data plane attached", "interface", ifname, "attach", string(want), "hook", string(a))
	k.attached[ifname] = true
	return nil
}

// drain stops k attaching interfaces (see draining).
func (k *kernel) drain() {
	k.mu.Lock()
	k.draining = true
	k.mu.Unlock()
}

// detachUnused unhooks the program from the interfaces weir hooked that
// this server neither attached nor routes to any of backends through,
// and logs each.
func (k *kernel) detachUnused(backends []netip.Addr) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	inUse := maps.Clone(k.attached)
	for _, a := range backends {
		// A backend that is down now may be up later: its interface
		// stays, as its replies arrive there once it is.
		if _, ifname, err := routeTo(a); err == nil {
			inUse[ifname] = true
		}
	}
	detached, err := k.dp.DetachUnused(func(ifname string) bool { return inUse[ifname] })
	for _, st := range detached {
		if st.Attachment == "" {
			k.log.Info("BPF data plane: removed the pinned links of an interface that no longer exists", "interface", st.Name)
			continue
		}
		k.log.Info("BPF data plane detached from an interface the configuration no longer uses",
			"interface", st.Name, "hook", st.String())
	}
	if err != nil {
		return fmt.Errorf("detach the BPF data plane from interfaces no longer in use: %w", err)
	}
	return nil
}

// interfaces reports the interfaces k attached and those the program
// hooks, with the hook the configuration asks for and the one the
// kernel runs.
func (k *kernel) interfaces() *admin.BPFStatus {
	st := &admin.BPFStatus{PinPath: k.cfg.PinPath, Interfaces: []admin.InterfaceStatus{}}
	hooked, err := k.dp.Interfaces()
	if err != nil {
		st.Error = err.Error()
	}
	k.mu.Lock()
	byName := make(map[string]admin.InterfaceStatus, len(k.attached))
	for ifname := range k.attached {
		byName[ifname] = admin.InterfaceStatus{Name: ifname, Attach: string(k.cfg.AttachOn(ifname))}
	}
	k.mu.Unlock()
	for _, h := range hooked {
		is := byName[h.Name]
		is.Name, is.Hook = h.Name, string(h.Attachment)
		if h.Attachment.Hook() == dataplane.HookXDP {
			is.TC = string(h.TC)
		}
		byName[h.Name] = is
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		st.Interfaces = append(st.Interfaces, byName[name])
	}
	return st
}

// retireStale deletes the pinned services this configuration no longer
// has. It runs once every l4 service has published its first table, so
// that a VIP moving between slots is never without one.
func (k *kernel) retireStale() error {
	var errs []error
	for _, p := range k.pinned {
		if !k.ids[p.ID] {
			if err := k.dp.DeleteService(p.ID); err != nil && !errors.Is(err, dataplane.ErrNoService) {
				errs = append(errs, fmt.Errorf("remove service %d (vip %s) no longer configured: %w", p.ID, p.VIP, err))
			}
		}
	}
	return errors.Join(errs...)
}

// writeBPF publishes the mirror's table into this service's slot. It
// attaches the program to the interface towards each new backend too:
// the backends' replies must be translated back where they arrive.
func (svc *l4Service) writeBPF(backends []netip.AddrPort, table []uint32) (uint32, error) {
	b := svc.bpf
	if b == nil {
		return 0, errors.New("the BPF data plane is not running")
	}
	snat, err := b.route(backends, svc.cfg.Upstream)
	if err != nil {
		return 0, err
	}
	if !snat.IsValid() {
		// No backend to route to: the empty table makes the program drop
		// and count the service's new flows, and never uses the address.
		snat = svc.vip.Addr()
	}
	return b.k.dp.SetService(dataplane.Service{ID: b.id, VIP: svc.vip, Proto: svc.proto(), SNAT: snat, SNATPorts: b.ports,
		Forwarding: svc.forwarding(), GUEPort: uint16(svc.cfg.L4.GUEPort)}, backends, table)
}

// route returns the service's SNAT address — the configured snat.address,
// or else the source the kernel would use towards its first backend, fixed
// for the life of the process so that flows keep their translation — and
// attaches to the interfaces towards backends not seen before. With no
// backend at all and no configured address it returns the zero Addr.
func (b *bpfService) route(backends []netip.AddrPort, up *config.Upstream) (netip.Addr, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ap := range backends {
		if b.routed[ap.Addr()] {
			continue
		}
		src, ifname, err := routeTo(ap.Addr())
		if err != nil {
			return netip.Addr{}, err
		}
		if err := b.k.attach(ifname); err != nil {
			return netip.Addr{}, fmt.Errorf("backend %s: %w", ap, err)
		}
		b.routed[ap.Addr()] = true
		if !b.snat.IsValid() {
			b.snat = src
		}
	}
	if !b.snat.IsValid() && up != nil && len(backends) == 0 {
		return b.configuredSource(up)
	}
	return b.snat, nil
}

// configuredSource finds a SNAT address from the configured static
// backends when none is usable yet, without fixing it.
func (b *bpfService) configuredSource(up *config.Upstream) (netip.Addr, error) {
	for _, bc := range up.Backends {
		ap, err := netip.ParseAddrPort(bc.Addr)
		if err != nil {
			continue
		}
		if src, _, err := routeTo(ap.Addr()); err == nil {
			return src, nil
		}
	}
	return netip.Addr{}, nil
}

// forwarding is the data plane's mode for the service's forwarding and
// encap keys.
func (svc *l4Service) forwarding() dataplane.Forwarding {
	switch {
	case svc.cfg.L4.Forwarding != config.ForwardingDSR:
		return dataplane.ForwardingNAT
	case svc.cfg.L4.Encap == config.EncapGUE:
		return dataplane.ForwardingDSRGUE
	}
	return dataplane.ForwardingDSRIPIP
}

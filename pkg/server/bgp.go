package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/bgp"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/metrics"
)

// announcer announces the VIP addresses of the l4 services with announce
// by BGP: a VIP's host route is announced while at least one of the
// services on that address has its min_backends usable backends, and
// withdrawn otherwise. It reacts to the load balancers' events (an
// lb.Observer per service), never polls, and is off the request path.
type announcer struct {
	speaker  *bgp.Speaker
	converge time.Duration
	restart  time.Duration // graceful restart time; 0: off
	log      *slog.Logger
	// resume, when not nil, makes the speaker start late and as a
	// restarting speaker: it is closed once the predecessor of an
	// upgrade has confirmed the hand-over (see Server.ResumeBGP).
	resume <-chan struct{}

	// speak serialises the changes sent to the speaker (update,
	// shutdown); mu guards the state below, and is never held while the
	// speaker is called.
	speak sync.Mutex
	mu    sync.Mutex
	vips  []*announcedVIP // by address
	// serving is set once the server serves: nothing is announced
	// before every service has done its first health round.
	serving bool
	// released is set once the sessions were handed over (release): the
	// routers keep the VIPs for the successor, nothing is withdrawn.
	released bool
	wake     chan struct{} // capacity 1: a pending re-evaluation
}

// announcedVIP is one VIP address, shared by the services whose vip is on
// it (different ports or protocols): one host route for all.
type announcedVIP struct {
	prefix      netip.Prefix
	communities []bgp.Community // the union of its services'
	services    []*vipService
	announced   bool
	// announces and withdraws count the route's changes.
	announces, withdraws uint64
}

// vipService is one service's part in a VIP's announcement: its usable
// backends, kept from its load balancer's events.
type vipService struct {
	name   string
	min    int
	usable map[string]bool // backend address -> usable (healthy, enabled, not ejected)
}

func (v *vipService) count() int {
	n := 0
	for _, ok := range v.usable {
		if ok {
			n++
		}
	}
	return n
}

// newAnnouncer builds the speaker of cfg.BGP; nil when there is none.
func newAnnouncer(cfg *config.Config, log *slog.Logger) (*announcer, error) {
	b := cfg.BGP
	if b == nil {
		return nil, nil
	}
	bc := bgp.Config{ASN: b.ASN, RouterID: b.RouterID, Listen: b.Listen, GracefulRestart: b.GracefulRestart, Logger: log}
	for _, p := range b.Peers {
		bc.Peers = append(bc.Peers, bgp.PeerConfig{
			Address: p.Address, ASN: p.ASN, Password: p.Password, HoldTime: p.HoldTime,
			MultihopTTL: uint8(p.Multihop), LocalAddress: p.LocalAddress, Port: uint16(p.Port),
		})
	}
	sp, err := bgp.New(bc)
	if err != nil {
		return nil, fmt.Errorf("bgp (%s): %w", b.Pos, err)
	}
	return &announcer{speaker: sp, converge: b.Converge, restart: b.GracefulRestart, log: log, wake: make(chan struct{}, 1)}, nil
}

// add registers an l4 service with announce and returns the observer that
// keeps its usable backends.
func (a *announcer) add(sc *config.Service, vip netip.AddrPort) (lb.Observer, error) {
	communities, err := bgp.ParseCommunities(sc.L4.Announce.Communities)
	if err != nil {
		return nil, fmt.Errorf("announce (%s): %w", sc.L4.Announce.Pos, err)
	}
	addr := vip.Addr().Unmap()
	prefix := netip.PrefixFrom(addr, addr.BitLen())
	svc := &vipService{name: sc.Name, min: sc.L4.Announce.MinBackends, usable: map[string]bool{}}
	a.mu.Lock()
	defer a.mu.Unlock()
	i := slices.IndexFunc(a.vips, func(v *announcedVIP) bool { return v.prefix == prefix })
	if i < 0 {
		a.vips = append(a.vips, &announcedVIP{prefix: prefix})
		slices.SortFunc(a.vips, func(x, y *announcedVIP) int { return x.prefix.Addr().Compare(y.prefix.Addr()) })
		i = slices.IndexFunc(a.vips, func(v *announcedVIP) bool { return v.prefix == prefix })
	}
	v := a.vips[i]
	v.services = append(v.services, svc)
	for _, c := range communities {
		if !slices.Contains(v.communities, c) {
			v.communities = append(v.communities, c)
		}
	}
	slices.Sort(v.communities)
	return lb.ObserverFunc(func(e lb.Event) { a.observe(svc, e) }), nil
}

// observe keeps svc's usable backends and, when their count changes,
// wakes the announcer; it never blocks the health checker.
func (a *announcer) observe(svc *vipService, e lb.Event) {
	a.mu.Lock()
	before := svc.count()
	switch e.Kind {
	case lb.Removed:
		delete(svc.usable, e.Backend.Addr)
	default:
		svc.usable[e.Backend.Addr] = e.Healthy && e.Enabled && !e.Ejected
	}
	changed := svc.count() != before
	a.mu.Unlock()
	if changed {
		a.poke()
	}
}

func (a *announcer) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// run announces what qualifies once ready is closed (the server serves),
// and then follows every change until ctx ends. The speaker was started
// with the server, unless it resumes an upgrade's sessions: then run
// starts it, once ready and resume are closed and the VIPs are decided,
// as a restarting speaker. run does not stop the speaker: shutdown does.
func (a *announcer) run(ctx context.Context, ready <-chan struct{}) {
	select {
	case <-ctx.Done():
		return
	case <-ready:
	}
	if a.resume != nil {
		select {
		case <-ctx.Done():
			return
		case <-a.resume:
		}
	}
	a.mu.Lock()
	if a.released {
		// Handed over in turn before the sessions were resumed.
		a.mu.Unlock()
		return
	}
	a.serving = true
	a.mu.Unlock()
	if a.resume != nil {
		// The routers hold the predecessor's routes as stale until the
		// End-of-RIB that follows the first updates: those carry the VIPs
		// as this process's first health round decided them.
		a.update()
		if !a.resumeSpeaker(ctx) {
			return
		}
	}
	for {
		a.update()
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		}
	}
}

// resumeSpeaker starts the speaker as a restarting speaker, trying again
// while it fails (a listening port the predecessor still holds) until ctx
// ends. It reports whether the speaker started.
func (a *announcer) resumeSpeaker(ctx context.Context) bool {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := a.speaker.Resume(ctx)
		if err == nil {
			a.log.Info("BGP sessions resumed from the previous weir (graceful restart): the routers keep its routes until this weir's End-of-RIB",
				"restart_time", a.restart)
			return true
		}
		if errors.Is(err, bgp.ErrStopped) {
			return false // stopped at once (Close)
		}
		a.log.Warn("resuming the BGP sessions failed; trying again", "attempt", attempt, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// update announces each VIP that qualifies and withdraws each that no
// longer does, logging which services decided it. The speaker is called
// without mu held, so that the health checker, whose observer takes mu,
// never waits for BGP.
func (a *announcer) update() {
	a.speak.Lock()
	defer a.speak.Unlock()
	type change struct {
		v    *announcedVIP
		want bool
		why  string
	}
	var changes []change
	a.mu.Lock()
	if !a.serving {
		a.mu.Unlock()
		return
	}
	for _, v := range a.vips {
		if want, why := v.qualifies(); want != v.announced {
			changes = append(changes, change{v, want, why})
		}
	}
	a.mu.Unlock()
	for _, c := range changes {
		v := c.v
		var err error
		if c.want {
			err = a.speaker.Announce(v.prefix, v.communities)
		} else {
			err = a.speaker.Withdraw(v.prefix)
		}
		if errors.Is(err, bgp.ErrStopped) {
			return // stopped at once (Close): nothing is announced any more
		}
		if err != nil {
			a.log.Error("changing the vip's BGP announcement", "vip", v.prefix.Addr(), "announce", c.want, "services", c.why, "err", err)
			continue
		}
		a.mu.Lock()
		v.announced = c.want
		if c.want {
			v.announces++
		} else {
			v.withdraws++
		}
		a.mu.Unlock()
		if c.want {
			a.log.Info("vip announced by BGP", "vip", v.prefix.Addr(), "services", c.why)
		} else {
			a.log.Warn("vip withdrawn from BGP: too few usable backends", "vip", v.prefix.Addr(), "services", c.why)
		}
	}
}

// qualifies reports whether any service of v has its min_backends usable
// backends, and describes each as "name usable/min".
func (v *announcedVIP) qualifies() (bool, string) {
	ok := false
	parts := make([]string, len(v.services))
	for i, s := range v.services {
		n := s.count()
		ok = ok || n >= s.min
		parts[i] = fmt.Sprintf("%s %d/%d", s.name, n, s.min)
	}
	return ok, strings.Join(parts, ", ")
}

// release hands the sessions over to an upgrade's successor: with
// graceful restart on, it closes them without withdrawing (bgp's
// Release), and the routers keep the VIPs for the restart time while the
// successor re-opens them. It reports false, changing nothing, when
// graceful restart is off.
func (a *announcer) release() bool {
	if a.restart == 0 {
		return false
	}
	a.speak.Lock()
	defer a.speak.Unlock()
	a.mu.Lock()
	a.serving = false
	a.released = true
	var names []string
	for _, v := range a.vips {
		if v.announced {
			names = append(names, v.prefix.Addr().String())
		}
	}
	a.mu.Unlock()
	a.speaker.Release()
	a.log.Info("handing over: BGP sessions closed for a graceful restart, nothing withdrawn; the routers keep the vips while the new weir re-opens the sessions",
		"vips", names, "restart_time", a.restart)
	return true
}

// shutdown withdraws every VIP, waits converge for the routers to move
// their traffic to other nodes while this one still serves, and closes
// the sessions. ctx bounds the wait. After release it does nothing.
func (a *announcer) shutdown(ctx context.Context) {
	a.speak.Lock()
	defer a.speak.Unlock()
	a.mu.Lock()
	if a.released {
		a.mu.Unlock()
		return
	}
	a.serving = false
	var names []string
	for _, v := range a.vips {
		if v.announced {
			v.announced = false
			v.withdraws++
			names = append(names, v.prefix.Addr().String())
		}
	}
	a.mu.Unlock()
	err := a.speaker.Shutdown(ctx, a.converge)
	if errors.Is(err, bgp.ErrStopped) {
		return // stopped at once (SIGINT, Close): nothing to withdraw
	}
	if err != nil {
		a.log.Warn("BGP shutdown", "err", err)
	}
	a.log.Info("stopping: every vip was withdrawn from BGP and the routers given converge time; stopping the services",
		"vips", names, "converge", a.converge)
}

// status reports the sessions and the VIPs.
func (a *announcer) status() *admin.BGPStatus {
	st := &admin.BGPStatus{Peers: []admin.BGPPeerStatus{}, VIPs: []admin.BGPVIPStatus{}}
	for _, p := range a.speaker.Peers() {
		st.Peers = append(st.Peers, admin.BGPPeerStatus{Address: p.Address.String(), ASN: p.ASN, State: p.State.String(), Uptime: p.Uptime.Seconds()})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, v := range a.vips {
		cs := make([]string, len(v.communities))
		for i, c := range v.communities {
			cs[i] = c.String()
		}
		_, why := v.qualifies()
		st.VIPs = append(st.VIPs, admin.BGPVIPStatus{VIP: v.prefix.Addr().String(), Announced: v.announced, Communities: cs,
			Services: why, Announcements: v.announces, Withdrawals: v.withdraws})
	}
	return st
}

// metrics reports the status as metrics.
func (a *announcer) metrics() metrics.BGPStats {
	st := a.status()
	var out metrics.BGPStats
	for _, v := range st.VIPs {
		out.VIPs = append(out.VIPs, metrics.BGPVIPStats{VIP: v.VIP, Announced: v.Announced, Announcements: v.Announcements, Withdrawals: v.Withdrawals})
	}
	for _, p := range st.Peers {
		out.Peers = append(out.Peers, metrics.BGPPeerStats{Peer: p.Address, State: p.State})
	}
	return out
}

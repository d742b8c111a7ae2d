// Package bgp is weir's BGP speaker: it announces the VIPs weir serves to
// the routers as /32 and /128 host routes, so that routers spread flows
// over every balancer node by ECMP, and withdraws them when a node cannot
// serve or is leaving.
//
// The protocol is GoBGP's (github.com/osrg/gobgp/v4), used as a library;
// this package chooses its configuration (next hop self, one address
// family per session, no listener unless asked for, graceful restart as
// an option), keeps the routes announced, logs and counts every change,
// and stops gracefully: withdraw, let the routers converge, then close.
// With graceful restart, a process handing over to its successor closes
// its sessions with Release and the successor re-opens them with Resume:
// the routers keep the routes across the hand-over (RFC 4724).
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// DefaultConverge is how long Shutdown waits, after withdrawing every
// route, before it closes the sessions. Routers process a withdraw within
// milliseconds to a second (BIRD immediately; hardware routers batch
// updates and reprogram their FIB within about a second), and a flow
// still hashed to this node meanwhile is served normally: 3 s is long
// enough for routers to move traffic away, short enough not to hold up a
// restart.
const DefaultConverge = 3 * time.Second

// DefaultHoldTime is a peer's hold time when PeerConfig.HoldTime is zero:
// the RFC 4271 suggestion, which routers use by default. A lost node's
// routes leave the router after at most this long.
const DefaultHoldTime = 90 * time.Second

// DefaultConnectRetry is how long a peer waits between attempts to open
// its session when PeerConfig.ConnectRetry is zero. It is shorter than
// the RFC's 120 s because a speaker without a listener depends on its own
// attempts: after a router restarts, the node's VIPs stay unannounced
// until the next one.
const DefaultConnectRetry = 5 * time.Second

// ErrStopped is returned by Start, Resume, Announce and Withdraw after
// Stop, Shutdown or Release.
var ErrStopped = errors.New("bgp: speaker stopped")

// Config configures a Speaker.
type Config struct {
	// ASN is the local AS number.
	ASN uint32
	// RouterID is the BGP identifier, an IPv4 address unique among the
	// speakers a router peers with (usually one of the node's addresses).
	RouterID netip.Addr
	// Listen is the address and port to accept sessions on. The zero
	// value opens no listening socket: the speaker only dials its peers,
	// so nothing on the node answers on port 179.
	Listen netip.AddrPort
	// GracefulRestart, when not zero, advertises the graceful restart
	// capability (RFC 4724) for every session's address family, with this
	// restart time (at most 4095 s): a peer that supports it keeps the
	// routes this speaker announced while a restarted speaker re-opens
	// its sessions within that time. It is what Release and Resume need
	// to hand the routes over from one process to the next.
	GracefulRestart time.Duration
	// Peers are the routers to open sessions with.
	Peers []PeerConfig
	// Logger receives every announce, withdraw and session state change;
	// nil discards them.
	Logger *slog.Logger
}

// PeerConfig configures one BGP session.
type PeerConfig struct {
	// Address is the peer's address (IPv6 link-local only with a zone).
	// The session carries the unicast routes of this address's family: an
	// IPv4 peer receives the /32 routes, an IPv6 peer the /128 routes.
	Address netip.Addr
	// ASN is the peer's AS number; equal to Config.ASN makes the session
	// internal (iBGP).
	ASN uint32
	// Password, if set, signs the session's TCP segments with TCP MD5
	// (RFC 2385); the peer must be configured with the same password.
	Password string
	// HoldTime is the proposed hold time (0: DefaultHoldTime; at least
	// 3 s). Keepalives go every third of the negotiated hold time.
	HoldTime time.Duration
	// ConnectRetry is the wait between attempts to open the session (0:
	// DefaultConnectRetry).
	ConnectRetry time.Duration
	// MultihopTTL, when not zero, allows an external peer that many hops
	// away; zero requires it directly connected (TTL 1).
	MultihopTTL uint8
	// LocalAddress, if valid, is the address the session is dialled from
	// (IPv6 link-local only with a zone), and so the next hop of the routes
	// sent to this peer. Otherwise the kernel chooses the source address
	// by its routes.
	LocalAddress netip.Addr
	// Port is the peer's TCP port (0: 179).
	Port uint16
}

// Speaker announces host routes to a set of BGP peers. Its methods are
// safe for concurrent use.
type Speaker struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	state  speakerState
	server *server.BgpServer
	// gobgpLevel is the least level of GoBGP's messages that are logged.
	gobgpLevel *slog.LevelVar
	routes     map[netip.Prefix][]Community
	counts     counters
	cancel     context.CancelFunc // ends the peer-state watch
}

type speakerState int

const (
	stateNew speakerState = iota
	stateRunning
	stateDraining // Shutdown has begun: routes withdrawn, sessions open
	stateStopped
)

type counters struct {
	announces, withdraws uint64
}

// New checks cfg and returns a Speaker that is not started yet. Routes
// announced before Start are sent once the sessions are up.
func New(cfg Config) (*Speaker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Speaker{
		cfg:    cfg,
		log:    logger,
		routes: make(map[netip.Prefix][]Community),
	}, nil
}

func (c *Config) validate() error {
	if c.ASN == 0 {
		return errors.New("bgp: local ASN is required")
	}
	if !c.RouterID.Is4() {
		return fmt.Errorf("bgp: router id %v must be an IPv4 address", c.RouterID)
	}
	if c.Listen.IsValid() && c.Listen.Port() == 0 {
		return fmt.Errorf("bgp: listen address %v needs a port (179 for BGP)", c.Listen)
	}
	if c.GracefulRestart < 0 || c.GracefulRestart > 4095*time.Second {
		return fmt.Errorf("bgp: graceful restart time %v is out of range (1s to 4095s)", c.GracefulRestart)
	}
	seen := make(map[netip.Addr]bool)
	for i, p := range c.Peers {
		if err := p.validate(); err != nil {
			return fmt.Errorf("bgp: peer %d: %w", i, err)
		}
		if seen[p.Address.Unmap()] {
			return fmt.Errorf("bgp: peer %v is listed twice", p.Address)
		}
		seen[p.Address.Unmap()] = true
	}
	return nil
}

func (p *PeerConfig) validate() error {
	if !p.Address.IsValid() {
		return errors.New("address is required")
	}
	if p.ASN == 0 {
		return fmt.Errorf("peer %v: ASN is required", p.Address)
	}
	// Without a zone (its interface) an IPv6 link-local address cannot be
	// dialled or bound: the session would never open. IPv4's 169.254/16
	// has no zone; the kernel reaches it by its routes.
	if isLinkLocal6(p.Address) && p.Address.Zone() == "" {
		return fmt.Errorf("peer %v: a link-local address needs its interface as zone; better, peer with the router's global or unique local address", p.Address)
	}
	if isLinkLocal6(p.LocalAddress) && p.LocalAddress.Zone() == "" {
		return fmt.Errorf("peer %v: local address %v is link-local without its interface as zone; use a global or unique local address", p.Address, p.LocalAddress)
	}
	if p.HoldTime != 0 && (p.HoldTime < 3*time.Second || p.HoldTime > 65535*time.Second) {
		return fmt.Errorf("peer %v: hold time %v is out of range (3s to 65535s)", p.Address, p.HoldTime)
	}
	if p.ConnectRetry < 0 {
		return fmt.Errorf("peer %v: connect retry %v is negative", p.Address, p.ConnectRetry)
	}
	if p.LocalAddress.IsValid() && p.LocalAddress.Unmap().Is4() != p.Address.Unmap().Is4() {
		return fmt.Errorf("peer %v: local address %v is of another address family", p.Address, p.LocalAddress)
	}
	return nil
}

// isLinkLocal6 reports whether a is an IPv6 link-local unicast address
// (fe80::/10), one that needs a zone to be reached.
func isLinkLocal6(a netip.Addr) bool {
	return !a.Unmap().Is4() && a.IsLinkLocalUnicast()
}

// Start starts GoBGP, opens the sessions (and the listener, if
// configured) and sends the routes announced so far. ctx bounds the
// start only; the speaker runs until Stop, Shutdown or Release.
func (s *Speaker) Start(ctx context.Context) error {
	return s.start(ctx, false)
}

// Resume starts the speaker as the successor of one that closed the same
// sessions with Release, within the restart time: a restarting speaker
// (RFC 4724). Each session opens with the Restart State bit and, for its
// address family, the Forwarding State bit set (the node kept forwarding
// across the hand-over), so a router that negotiated graceful restart
// keeps the routes it holds from the predecessor, marked stale. Once a
// session is up the speaker sends the routes announced so far, and those
// announced meanwhile, followed by End-of-RIB, once the router has sent
// its own End-of-RIB or at most DeferralTime later; the router then
// drops the stale routes that were not announced again, so a route that
// stays announced is never withdrawn, and one that is not is withdrawn
// then. Announce the routes the node should have before Resume: an
// End-of-RIB sent before they are known withdraws them.
//
// Without Config.GracefulRestart, Resume is Start.
func (s *Speaker) Resume(ctx context.Context) error {
	return s.start(ctx, s.cfg.GracefulRestart > 0)
}

// DeferralTime bounds how long a speaker started by Resume waits, on a
// session that is up, for the End-of-RIB of every peer before it sends
// its routes and its own End-of-RIB. RFC 4724 has a restarting speaker
// wait for its peers' routes to select its own; a weir node learns no
// routes, so it waits only long enough for a router's End-of-RIB, which
// follows the OPEN at once, not to send updates while the router is
// still sending its own. GoBGP counts it in whole seconds.
const DeferralTime = time.Second

func (s *Speaker) start(ctx context.Context, restarting bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateRunning:
		return errors.New("bgp: speaker already started")
	case stateDraining, stateStopped:
		return ErrStopped
	}
	logger, level := gobgpLogger(s.log)
	srv := server.NewBgpServer(server.LoggerOption(logger, level))
	go srv.Serve()
	s.server = srv
	s.gobgpLevel = level
	if err := s.startServer(ctx, restarting); err != nil {
		s.server = nil
		srv.Stop()
		return err
	}
	s.state = stateRunning
	if restarting {
		s.log.Info("bgp speaker resumed: sessions open as a restarting speaker (RFC 4724), the routers keep the routes they hold",
			"restart_time", s.cfg.GracefulRestart, "routes", len(s.routes))
	}
	return nil
}

// startServer starts BGP, puts the routes announced so far in GoBGP's
// table and only then adds the peers: a session that comes up finds every
// route there, and its first updates and End-of-RIB carry them all.
// restarting opens the sessions as a restarting speaker's (Resume).
func (s *Speaker) startServer(ctx context.Context, restarting bool) error {
	srv := s.server
	global := &api.Global{
		Asn:        s.cfg.ASN,
		RouterId:   s.cfg.RouterID.String(),
		ListenPort: -1, // GoBGP's "do not listen"; zero would mean 179
	}
	if s.cfg.Listen.IsValid() {
		global.ListenPort = int32(s.cfg.Listen.Port())
		global.ListenAddresses = []string{s.cfg.Listen.Addr().Unmap().String()}
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		return fmt.Errorf("bgp: start AS %d router id %v (listen %v): %w", s.cfg.ASN, s.cfg.RouterID, s.cfg.Listen, err)
	}
	watchCtx, cancel := context.WithCancel(context.Background())
	if err := srv.WatchEvent(watchCtx, server.WatchEventMessageCallbacks{OnPeerUpdate: s.peerEvent}, server.WatchPeer()); err != nil {
		cancel()
		return fmt.Errorf("bgp: watch session states: %w", err)
	}
	s.cancel = cancel
	for _, p := range slices.SortedFunc(maps.Keys(s.routes), comparePrefix) {
		if err := s.addPath(p, s.routes[p]); err != nil {
			cancel()
			return fmt.Errorf("bgp: announce %v: %w", p, err)
		}
	}
	for _, p := range s.cfg.Peers {
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.apiPeer(p, restarting)}); err != nil {
			cancel()
			return fmt.Errorf("bgp: add peer %v AS %d: %w", p.Address, p.ASN, err)
		}
	}
	return nil
}

// apiPeer translates p into GoBGP's peer configuration, that of a
// restarting speaker if restarting.
func (s *Speaker) apiPeer(p PeerConfig, restarting bool) *api.Peer {
	hold := p.HoldTime
	if hold == 0 {
		hold = DefaultHoldTime
	}
	retry := p.ConnectRetry
	if retry == 0 {
		retry = DefaultConnectRetry
	}
	family := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	if !p.Address.Unmap().Is4() {
		family.Afi = api.Family_AFI_IP6
	}
	afiSafi := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: family, Enabled: true}}
	peer := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.Unmap().String(),
			PeerAsn:         p.ASN,
			AuthPassword:    p.Password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          uint64(hold / time.Second),
			KeepaliveInterval: max(uint64(hold/time.Second)/3, 1),
			ConnectRetry:      uint64(retry / time.Second),
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
		AfiSafis:  []*api.AfiSafi{afiSafi},
	}
	if p.LocalAddress.IsValid() {
		peer.Transport.LocalAddress = p.LocalAddress.Unmap().String()
	}
	if p.MultihopTTL != 0 {
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.MultihopTTL)}
	}
	if gr := s.cfg.GracefulRestart; gr > 0 {
		peer.GracefulRestart = &api.GracefulRestart{
			Enabled:         true,
			RestartTime:     uint32(max(gr/time.Second, 1)),
			DeferralTime:    uint32(DeferralTime / time.Second),
			LocalRestarting: restarting,
		}
		afiSafi.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
	}
	return peer
}

// peerEvent logs a session's state changes.
func (s *Speaker) peerEvent(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := ev.Peer.State
	attrs := []any{"peer", st.NeighborAddress, "asn", st.PeerASN, "state", stateFromFSM(st.SessionState).String()}
	if st.DisconnectMessage != "" {
		attrs = append(attrs, "reason", st.DisconnectMessage)
	}
	s.log.Info("bgp session", attrs...)
}

// Announce announces prefix, a /32 or /128 host route, with communities,
// to every peer of its address family, with this node's address on each
// session as the next hop. Announcing a prefix again with the same
// communities changes nothing; with other communities it replaces the
// route. Before Start the route is kept and sent when the sessions open.
func (s *Speaker) Announce(prefix netip.Prefix, communities []Community) error {
	prefix, err := hostRoute(prefix)
	if err != nil {
		return fmt.Errorf("bgp: announce %v: %w", prefix, err)
	}
	communities = slices.Clone(communities)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state >= stateDraining {
		return fmt.Errorf("bgp: announce %v: %w", prefix, ErrStopped)
	}
	if old, ok := s.routes[prefix]; ok && slices.Equal(old, communities) {
		return nil
	}
	if s.state == stateRunning {
		if err := s.addPath(prefix, communities); err != nil {
			return fmt.Errorf("bgp: announce %v: %w", prefix, err)
		}
	}
	s.routes[prefix] = communities
	s.counts.announces++
	s.log.Info("bgp announce", "prefix", prefix.String(), "communities", communityStrings(communities))
	return nil
}

// Withdraw withdraws prefix from every peer. Withdrawing a prefix that is
// not announced changes nothing.
func (s *Speaker) Withdraw(prefix netip.Prefix) error {
	prefix, err := hostRoute(prefix)
	if err != nil {
		return fmt.Errorf("bgp: withdraw %v: %w", prefix, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state >= stateDraining {
		return fmt.Errorf("bgp: withdraw %v: %w", prefix, ErrStopped)
	}
	return s.withdrawLocked(prefix)
}

func (s *Speaker) withdrawLocked(prefix netip.Prefix) error {
	communities, ok := s.routes[prefix]
	if !ok {
		return nil
	}
	if s.server != nil {
		if err := s.server.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path(prefix, communities, true)}}); err != nil {
			return fmt.Errorf("bgp: withdraw %v: %w", prefix, err)
		}
	}
	delete(s.routes, prefix)
	s.counts.withdraws++
	s.log.Info("bgp withdraw", "prefix", prefix.String())
	return nil
}

// Announced returns the prefixes announced (or to be announced once
// started), sorted.
func (s *Speaker) Announced() []Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Route, 0, len(s.routes))
	for _, p := range slices.SortedFunc(maps.Keys(s.routes), comparePrefix) {
		out = append(out, Route{Prefix: p, Communities: slices.Clone(s.routes[p])})
	}
	return out
}

// Route is an announced host route.
type Route struct {
	Prefix      netip.Prefix
	Communities []Community
}

func (s *Speaker) addPath(prefix netip.Prefix, communities []Community) error {
	_, err := s.server.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path(prefix, communities, false)}})
	return err
}

// path builds GoBGP's path for a host route. The next hop is left
// unspecified, which GoBGP replaces with the session's local address for
// every peer, internal or external: next hop self.
func path(prefix netip.Prefix, communities []Community, withdraw bool) *apiutil.Path {
	nlri, _ := bgp.NewIPAddrPrefix(prefix) // cannot fail: prefix is a valid host route
	family := bgp.RF_IPv4_UC
	nexthop := netip.IPv4Unspecified()
	if prefix.Addr().Is6() {
		family = bgp.RF_IPv6_UC
		nexthop = netip.IPv6Unspecified()
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if family == bgp.RF_IPv4_UC {
		nh, _ := bgp.NewPathAttributeNextHop(nexthop)
		attrs = append(attrs, nh)
	} else {
		mp, _ := bgp.NewPathAttributeMpReachNLRI(family, []bgp.PathNLRI{{NLRI: nlri}}, nexthop)
		attrs = append(attrs, mp)
	}
	if len(communities) > 0 {
		values := make([]uint32, len(communities))
		for i, c := range communities {
			values[i] = uint32(c)
		}
		attrs = append(attrs, bgp.NewPathAttributeCommunities(values))
	}
	return &apiutil.Path{Family: family, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw}
}

// hostRoute checks that prefix is a /32 or /128 and returns it with an
// IPv4-mapped address unmapped.
func hostRoute(prefix netip.Prefix) (netip.Prefix, error) {
	if !prefix.IsValid() {
		return prefix, errors.New("invalid prefix")
	}
	addr := prefix.Addr()
	if addr.Is4In6() && prefix.Bits() == 128 {
		return netip.PrefixFrom(addr.Unmap(), 32), nil
	}
	if prefix.Bits() != addr.BitLen() {
		return prefix, errors.New("only host routes (/32 or /128) are announced")
	}
	if addr.Zone() != "" {
		return prefix, errors.New("an address with a zone cannot be announced")
	}
	return prefix, nil
}

// Stop closes every session at once, without withdrawing first: each
// peer drops the routes when its session closes (a NOTIFICATION Cease is
// sent). Use Shutdown to leave without losing flows. Stop is idempotent.
func (s *Speaker) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Speaker) stopLocked() {
	if s.server != nil {
		s.cancel()
		s.server.Stop()
		s.server = nil
		s.log.Info("bgp speaker stopped", "routes", len(s.routes))
	}
	s.state = stateStopped
}

// Release closes every session at once without withdrawing and without a
// NOTIFICATION, the way a restarting speaker's sessions end (RFC 4724): a
// router that negotiated graceful restart keeps this speaker's routes,
// marked stale, for the restart time, and forwards to them meanwhile.
// The successor, started with Resume within that time, re-opens the
// sessions and confirms or withdraws each route. A router without
// graceful restart drops the routes when the session closes, as after
// Stop. Without Config.GracefulRestart, Release is Stop. Release is
// idempotent; after it the speaker is stopped.
func (s *Speaker) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.server == nil || s.cfg.GracefulRestart == 0 {
		s.stopLocked()
		return
	}
	s.cancel()
	if err := s.server.StopBgp(context.Background(), &api.StopBgpRequest{AllowGracefulRestart: true}); err != nil {
		s.log.Warn("bgp: closing the sessions for a graceful restart", "err", err)
	}
	// GoBGP's Stop ends what StopBgp leaves running (its BFD loop), and
	// repeats StopBgp, whose error ("not running") is expected here.
	s.gobgpLevel.Set(slog.LevelError + 1)
	s.server.Stop()
	s.server = nil
	s.state = stateStopped
	s.log.Info("bgp speaker released: sessions closed without withdrawing; routers with graceful restart keep the routes for the restart time",
		"routes", len(s.routes), "restart_time", s.cfg.GracefulRestart)
}

// Shutdown leaves gracefully: it withdraws every route, waits converge
// (DefaultConverge if zero) so that routers move traffic to other nodes
// while this one still serves, then closes the sessions. If ctx ends
// during the wait, the sessions close at once and ctx's error is
// returned. Announce and Withdraw fail with ErrStopped from the start of
// Shutdown.
func (s *Speaker) Shutdown(ctx context.Context, converge time.Duration) error {
	if converge == 0 {
		converge = DefaultConverge
	}
	s.mu.Lock()
	if s.state == stateStopped || s.state == stateDraining {
		s.mu.Unlock()
		return ErrStopped
	}
	running := s.server != nil
	var errs []error
	for _, p := range slices.SortedFunc(maps.Keys(s.routes), comparePrefix) {
		if err := s.withdrawLocked(p); err != nil {
			errs = append(errs, err)
		}
	}
	s.state = stateDraining
	if running {
		s.log.Info("bgp shutdown: routes withdrawn, waiting for peers to converge", "converge", converge)
	}
	s.mu.Unlock()

	if running {
		t := time.NewTimer(converge)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			errs = append(errs, fmt.Errorf("bgp: shutdown before peers converged: %w", ctx.Err()))
		}
	}
	s.Stop()
	return errors.Join(errs...)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

func communityStrings(cs []Community) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return out
}

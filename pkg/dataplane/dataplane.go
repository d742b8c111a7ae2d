// Package dataplane loads and drives weir's in-kernel layer 4 balancer: a
// program (bpf/weir.c, built for tc and for XDP; AttachHook chooses per
// interface) that translates TCP and UDP flows to virtual services
// in NAT mode, so backends need no changes, or (per service,
// Service.Forwarding) sends them by direct server return in an IP-in-IP or
// GUE (IP in UDP) tunnel, so backends see the client and answer it directly.
//
// The control plane computes a Maglev table per service and hands it over with
// SetService; the program picks a backend per new flow from that table,
// remembers the choice in a conntrack map, rewrites destination and source
// (to the service's SNAT address and a port it allocates), and translates the
// backend's replies back. Conntrack entries also cache the route (egress
// device and MAC addresses) for Options.FlowCacheTTL, so that an established
// packet costs one map lookup and no route lookup. Every map is pinned under
// Options.PinPath with a versioned name, so the kernel keeps forwarding while
// weir restarts, and the next weir process (or `weir status`) picks up the
// same state.
//
// Only Linux has an implementation; elsewhere every call fails with
// ErrUnsupported.
package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"
)

// Errors returned by this package, always wrapped with the offending value.
var (
	// ErrUnsupported reports that this OS or kernel cannot run the data plane.
	ErrUnsupported = errors.New("dataplane: eBPF data plane unsupported")
	// ErrInvalidOptions reports an Options value out of range.
	ErrInvalidOptions = errors.New("dataplane: invalid options")
	// ErrIncompatibleMaps reports pinned maps created with other Options,
	// or by a weir whose map layout differs under the same version.
	ErrIncompatibleMaps = errors.New("dataplane: pinned maps do not match options")
	// ErrInvalidService reports a Service that cannot be programmed.
	ErrInvalidService = errors.New("dataplane: invalid service")
	// ErrInvalidBackend reports a backend that cannot be programmed.
	ErrInvalidBackend = errors.New("dataplane: invalid backend")
	// ErrInvalidTable reports a Maglev table of the wrong size or content.
	ErrInvalidTable = errors.New("dataplane: invalid table")
	// ErrVIPInUse reports a VIP that another service already owns.
	ErrVIPInUse = errors.New("dataplane: VIP already in use")
	// ErrNoService reports a service id that is not programmed.
	ErrNoService = errors.New("dataplane: no such service")
	// ErrNoInterface reports a network interface that does not exist.
	ErrNoInterface = errors.New("dataplane: no such interface")
	// ErrClosed reports use of a Dataplane after Close.
	ErrClosed = errors.New("dataplane: closed")
)

// Defaults applied by Open to zero Options fields.
const (
	DefaultPinPath     = "/sys/fs/bpf/weir"
	DefaultMaxServices = 16
	DefaultMaxBackends = 256
	DefaultTableSize   = 65537
	DefaultMaxFlows    = 262144
	// DefaultFlowCacheTTL is how long an established flow trusts its cached
	// forwarding decision and SNAT port: long enough that the route lookup
	// is a rare cost, short enough that a neighbour or route change is
	// followed within a second.
	DefaultFlowCacheTTL = time.Second
	// DefaultClosedFlowTimeout is how long a closed TCP flow keeps its SNAT
	// port: long enough for the last ACK and a retransmitted FIN, short
	// enough that one backend sustains about 1800 new connections a second
	// on the default SNAT ports (80 % of 4536 ports over the timeout), and
	// 25800 on 1024-65535. See bpf/README.md on TIME_WAIT.
	DefaultClosedFlowTimeout = 2 * time.Second
	// DefaultTCPIdleTimeout is how long an open TCP flow may stay silent
	// before its SNAT port may go to another flow: RFC 5382's minimum for
	// a NAT's established-connection idle timeout, 2 hours 4 minutes, which
	// outlasts the default TCP keepalive interval.
	DefaultTCPIdleTimeout = 2*time.Hour + 4*time.Minute
	// DefaultUDPIdleTimeout is how long a UDP flow may stay silent before
	// its SNAT port may go to another flow: RFC 4787's minimum of 2 minutes.
	DefaultUDPIdleTimeout = 2 * time.Minute
)

// Upper bounds that keep every map index within 32 bits and map memory sane.
const (
	maxServicesLimit = 1 << 16
	maxBackendsLimit = 1 << 16
	tableSizeLimit   = 1 << 24
	maxFlowsLimit    = 1 << 26
	indexLimit       = 1 << 31
	// The flow cache TTL's range: below a millisecond the coarse clock the
	// program reads (one tick, 1-10 ms) could not tell it from zero; above
	// an hour a stale route would outlive any operator's patience.
	minFlowCacheTTL = time.Millisecond
	maxFlowCacheTTL = time.Hour
	// The idle timeouts' range: a flow's last-seen time is refreshed once a
	// second (WEIR_SEEN_REFRESH_NS), so below two seconds a flow sending
	// every second could look idle; above a day a dead flow holds its port
	// long after anyone could care.
	minIdleTimeout = 2 * time.Second
	maxIdleTimeout = 24 * time.Hour
)

// Options size the data plane. Zero fields take the defaults above. Maps
// pinned by an earlier Open must have been created with the same sizes.
type Options struct {
	// PinPath is the bpffs directory holding the maps and links; its parent
	// is mounted as bpffs when it is not one already.
	PinPath string
	// MaxServices bounds Service.ID.
	MaxServices uint32
	// MaxBackends bounds the backends of one service.
	MaxBackends uint32
	// TableSize is the Maglev table size M every SetService table must have.
	TableSize uint32
	// MaxFlows sizes the conntrack and reverse-NAT maps (LRU: the least
	// recently used flow is forgotten when they are full).
	MaxFlows uint32
	// FlowCacheTTL bounds how long an established flow trusts what its
	// conntrack entry caches: the egress device and MAC addresses from the
	// kernel's route and neighbour tables, and the ownership of its SNAT
	// port. Within it a packet costs one conntrack lookup and no route
	// lookup; after it the next packet looks both up again, so neighbour,
	// route and interface changes take effect within FlowCacheTTL. Table
	// changes (SetService, DeleteService) take effect at once regardless.
	// It is a property of the loaded program, not of the pinned maps.
	FlowCacheTTL time.Duration
	// ClosedFlowTimeout is how long a TCP flow that has been closed (an RST,
	// or a FIN each way) must stay silent before its SNAT port may be
	// reused for another flow to the same backend. Shorter sustains more
	// new connections per backend; longer avoids meeting the backend's
	// TIME_WAIT for the old connection (see bpf/README.md). Like the other
	// timeouts it is a property of the loaded program.
	ClosedFlowTimeout time.Duration
	// TCPIdleTimeout is how long an open TCP flow must stay silent before its
	// SNAT port may be reused; the flow then starts afresh (on a new port) if
	// it ever sends again.
	TCPIdleTimeout time.Duration
	// UDPIdleTimeout is how long a UDP flow must stay silent before its SNAT
	// port may be reused.
	UDPIdleTimeout time.Duration
}

// withDefaults returns o with zero fields defaulted, validated.
func (o Options) withDefaults() (Options, error) {
	if o.PinPath == "" {
		o.PinPath = DefaultPinPath
	}
	defaultZero(&o.MaxServices, DefaultMaxServices)
	defaultZero(&o.MaxBackends, DefaultMaxBackends)
	defaultZero(&o.TableSize, DefaultTableSize)
	defaultZero(&o.MaxFlows, DefaultMaxFlows)
	defaultZeroDuration(&o.FlowCacheTTL, DefaultFlowCacheTTL)
	defaultZeroDuration(&o.ClosedFlowTimeout, DefaultClosedFlowTimeout)
	defaultZeroDuration(&o.TCPIdleTimeout, DefaultTCPIdleTimeout)
	defaultZeroDuration(&o.UDPIdleTimeout, DefaultUDPIdleTimeout)
	if err := o.validate(); err != nil {
		return o, err
	}
	return o, o.validateTimeouts()
}

func defaultZero(v *uint32, def uint32) {
	if *v == 0 {
		*v = def
	}
}

func defaultZeroDuration(v *time.Duration, def time.Duration) {
	if *v == 0 {
		*v = def
	}
}

// validateTimeouts checks the idle timeouts of SNAT port reclaim.
func (o Options) validateTimeouts() error {
	timeouts := []struct {
		name  string
		value time.Duration
	}{
		{"ClosedFlowTimeout", o.ClosedFlowTimeout},
		{"TCPIdleTimeout", o.TCPIdleTimeout},
		{"UDPIdleTimeout", o.UDPIdleTimeout},
	}
	for _, t := range timeouts {
		if t.value < minIdleTimeout || t.value > maxIdleTimeout {
			return fmt.Errorf("%w: %s %s is outside [%s, %s]",
				ErrInvalidOptions, t.name, t.value, minIdleTimeout, maxIdleTimeout)
		}
	}
	if o.ClosedFlowTimeout > o.TCPIdleTimeout {
		// A closed flow is more surely over than an open one.
		return fmt.Errorf("%w: ClosedFlowTimeout %s exceeds TCPIdleTimeout %s",
			ErrInvalidOptions, o.ClosedFlowTimeout, o.TCPIdleTimeout)
	}
	return nil
}

func (o Options) validate() error {
	switch {
	case !filepath.IsAbs(o.PinPath) || filepath.Clean(o.PinPath) != o.PinPath || filepath.Dir(o.PinPath) == "/":
		// The parent may get a bpffs mounted on it: never the root.
		return fmt.Errorf("%w: PinPath %q must be a clean absolute path at least two levels deep",
			ErrInvalidOptions, o.PinPath)
	case o.MaxServices > maxServicesLimit:
		return fmt.Errorf("%w: MaxServices %d exceeds %d", ErrInvalidOptions, o.MaxServices, maxServicesLimit)
	case o.MaxBackends > maxBackendsLimit:
		return fmt.Errorf("%w: MaxBackends %d exceeds %d", ErrInvalidOptions, o.MaxBackends, maxBackendsLimit)
	case o.TableSize > tableSizeLimit:
		return fmt.Errorf("%w: TableSize %d exceeds %d", ErrInvalidOptions, o.TableSize, tableSizeLimit)
	case o.MaxFlows > maxFlowsLimit:
		return fmt.Errorf("%w: MaxFlows %d exceeds %d", ErrInvalidOptions, o.MaxFlows, maxFlowsLimit)
	case o.FlowCacheTTL < minFlowCacheTTL || o.FlowCacheTTL > maxFlowCacheTTL:
		return fmt.Errorf("%w: FlowCacheTTL %s is outside [%s, %s]",
			ErrInvalidOptions, o.FlowCacheTTL, minFlowCacheTTL, maxFlowCacheTTL)
	case uint64(o.halves())*uint64(o.TableSize) > indexLimit:
		return fmt.Errorf("%w: MaxServices %d × TableSize %d needs too large a table map",
			ErrInvalidOptions, o.MaxServices, o.TableSize)
	case uint64(o.halves())*uint64(o.MaxBackends) > indexLimit:
		return fmt.Errorf("%w: MaxServices %d × MaxBackends %d needs too large a backend map",
			ErrInvalidOptions, o.MaxServices, o.MaxBackends)
	}
	return nil
}

// halves is the number of double-buffered service halves: two per service.
func (o Options) halves() uint32 { return 2 * o.MaxServices }

// slotsPerService is the number of counter slots of one service: while a
// SetService switches tables, the old and the new backends are live at once.
func (o Options) slotsPerService() uint32 { return 2 * o.MaxBackends }

// Service is one virtual service as the data plane sees it.
type Service struct {
	// ID indexes the service in the maps; it must be below MaxServices.
	ID uint32
	// VIP is the address and port clients connect to.
	VIP netip.AddrPort
	// Proto is the IP protocol: 6 (TCP) or 17 (UDP).
	Proto uint8
	// SNAT is the balancer's own address, used as the source of packets
	// towards backends so that their replies come back through it (with
	// direct server return: the outer header's source). It must be of the
	// VIP's family.
	SNAT netip.Addr
	// SNATPorts are the source ports new flows get on SNAT; zero means
	// DefaultSNATPorts. Each port carries at most one flow to a given
	// backend address and port at a time. Where SNAT is an address of the
	// balancer host, keep them out of the kernel's ephemeral ports
	// (CheckHostSNATPorts checks). DSR services take none.
	SNATPorts PortRange
	// Forwarding is how packets reach the backends: ForwardingNAT (the
	// zero value), ForwardingDSRIPIP or ForwardingDSRGUE.
	Forwarding Forwarding
	// GUEPort is the UDP port the backends' fou receives GUE on, with
	// ForwardingDSRGUE; zero means DefaultGUEPort. Other modes take none.
	GUEPort uint16
}

// IP protocol numbers a Service may carry.
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// Counters are a service's or a backend's traffic, summed over CPUs.
type Counters struct {
	// Packets and Bytes count translated packets in both directions; bytes
	// include the Ethernet header.
	Packets, Bytes uint64
	// NewFlows counts conntrack entries created: new flows, and flows moved
	// off a backend that left the service.
	NewFlows uint64
	// Drops counts dropped packets by reason; every reason is present.
	Drops map[string]uint64
}

// ServiceState is a service as read back from the pinned maps.
type ServiceState struct {
	Service
	// Generation is the live generation; SetService returned it.
	Generation uint32
	// Backends are the live backends, in SetService order.
	Backends []netip.AddrPort
	// Stats are the service's counters.
	Stats Counters
	// BackendStats are the counters of Backends[i], kept for as long as the
	// backend stays in the service.
	BackendStats []Counters
}

// Drop reasons, in the order of enum drop_reason in bpf/weir.h.
const (
	DropTableEmpty    = "table_empty"
	DropNoBackend     = "no_backend"
	DropSNATExhausted = "snat_exhausted"
	DropRewriteFailed = "rewrite_failed"
	// DropDSRTooBig counts packets of DSR services that would exceed the
	// route's MTU once encapsulated. Those that forbid fragmenting (IPv4
	// DF, every IPv6 packet) were answered with ICMP fragmentation needed
	// or packet too big, carrying the MTU the client must use.
	DropDSRTooBig = "dsr_too_big"
)

// numDropReasons is DROP_REASONS in bpf/weir.h.
const numDropReasons = 5

// dropReasonNames maps enum drop_reason values to names.
func dropReasonNames() [numDropReasons]string {
	return [numDropReasons]string{DropTableEmpty, DropNoBackend, DropSNATExhausted, DropRewriteFailed, DropDSRTooBig}
}

// normalizedService validates svc against o and returns it with unmapped
// addresses, so that ::ffff:192.0.2.1 and 192.0.2.1 are one VIP.
func (o Options) normalizedService(svc Service) (Service, error) {
	vip := netip.AddrPortFrom(svc.VIP.Addr().Unmap(), svc.VIP.Port())
	snat := svc.SNAT.Unmap()
	switch {
	case svc.ID >= o.MaxServices:
		return svc, fmt.Errorf("%w: id %d is not below MaxServices %d", ErrInvalidService, svc.ID, o.MaxServices)
	case !usableAddr(vip.Addr()) || vip.Port() == 0:
		return svc, fmt.Errorf("%w: service %d: VIP %s", ErrInvalidService, svc.ID, svc.VIP)
	case svc.Proto != ProtoTCP && svc.Proto != ProtoUDP:
		return svc, fmt.Errorf("%w: service %d: protocol %d is neither TCP (6) nor UDP (17)",
			ErrInvalidService, svc.ID, svc.Proto)
	case !usableAddr(snat) || snat.Is4() != vip.Addr().Is4():
		return svc, fmt.Errorf("%w: service %d: SNAT address %s for VIP %s",
			ErrInvalidService, svc.ID, svc.SNAT, svc.VIP)
	case !svc.Forwarding.valid():
		return svc, fmt.Errorf("%w: service %d: unknown %s", ErrInvalidService, svc.ID, svc.Forwarding)
	case svc.GUEPort != 0 && svc.Forwarding != ForwardingDSRGUE:
		return svc, fmt.Errorf("%w: service %d: GUE port %d with %s forwarding, which sends no GUE",
			ErrInvalidService, svc.ID, svc.GUEPort, svc.Forwarding)
	case svc.Forwarding.IsDSR():
		// No port is translated, so none is handed out.
		svc.SNATPorts = PortRange{}
		if svc.Forwarding == ForwardingDSRGUE && svc.GUEPort == 0 {
			svc.GUEPort = DefaultGUEPort
		}
		svc.VIP, svc.SNAT = vip, snat
		return svc, nil
	}
	if svc.SNATPorts.IsZero() {
		svc.SNATPorts = DefaultSNATPorts
	}
	if !svc.SNATPorts.valid() {
		return svc, fmt.Errorf("%w: service %d: SNAT ports %d-%d: want 1 to 65535, the first not above the last",
			ErrInvalidService, svc.ID, svc.SNATPorts.First, svc.SNATPorts.Last)
	}
	svc.VIP, svc.SNAT = vip, snat
	return svc, nil
}

// normalizedBackends validates backends for svc and returns them unmapped.
func (o Options) normalizedBackends(svc Service, backends []netip.AddrPort) ([]netip.AddrPort, error) {
	if uint32(len(backends)) > o.MaxBackends {
		return nil, fmt.Errorf("%w: service %d: %d backends exceed MaxBackends %d",
			ErrInvalidBackend, svc.ID, len(backends), o.MaxBackends)
	}
	out := make([]netip.AddrPort, len(backends))
	seen := make(map[netip.AddrPort]struct{}, len(backends))
	for i, b := range backends {
		nb := netip.AddrPortFrom(b.Addr().Unmap(), b.Port())
		if !usableAddr(nb.Addr()) || nb.Port() == 0 || nb.Addr().Is4() != svc.VIP.Addr().Is4() {
			return nil, fmt.Errorf("%w: service %d: backend %s for VIP %s", ErrInvalidBackend, svc.ID, b, svc.VIP)
		}
		if svc.Forwarding.IsDSR() && nb.Port() != svc.VIP.Port() {
			// The packet arrives unchanged: addressed to the VIP's port.
			return nil, fmt.Errorf("%w: service %d: backend %s of a DSR service must listen on the VIP's port %d",
				ErrInvalidBackend, svc.ID, b, svc.VIP.Port())
		}
		if _, dup := seen[nb]; dup {
			return nil, fmt.Errorf("%w: service %d: backend %s listed twice", ErrInvalidBackend, svc.ID, b)
		}
		seen[nb] = struct{}{}
		out[i] = nb
	}
	return out, nil
}

// validateTable checks that table is a Maglev table over n backends: of
// length TableSize with every entry an index below n, or empty when n is 0.
func (o Options) validateTable(id uint32, table []uint32, n int) error {
	if n == 0 {
		if len(table) != 0 {
			return fmt.Errorf("%w: service %d: %d entries but no backends", ErrInvalidTable, id, len(table))
		}
		return nil
	}
	if uint32(len(table)) != o.TableSize || len(table) != int(o.TableSize) {
		return fmt.Errorf("%w: service %d: %d entries, want TableSize %d", ErrInvalidTable, id, len(table), o.TableSize)
	}
	for j, idx := range table {
		if idx >= uint32(n) {
			return fmt.Errorf("%w: service %d: entry %d is backend %d of %d", ErrInvalidTable, id, j, idx, n)
		}
	}
	return nil
}

// usableAddr reports whether a can be a VIP, SNAT address or backend.
func usableAddr(a netip.Addr) bool {
	return a.IsValid() && a.Zone() == "" && !a.IsUnspecified() && !a.IsMulticast()
}

// nextGeneration returns the generation after cur. It alternates halves
// (parity) and skips 0, which means "no service". A generation is never
// reused by one service (short of 2^32 changes): conntrack entries checked
// in a generation trust it for as long as it is live.
func nextGeneration(cur uint32) uint32 {
	next := cur + 1
	if next == 0 {
		next = 2
	}
	return next
}

// assignSlots gives every backend in next a counter slot below capacity:
// backends already live keep theirs (so their counters continue), new ones
// take the lowest slots no live backend holds. fresh lists the slots handed
// out anew, whose counters must start from zero.
func assignSlots(live map[netip.AddrPort]uint32, next []netip.AddrPort, capacity uint32) (slots, fresh []uint32, err error) {
	used := make(map[uint32]bool, len(live)+len(next))
	for _, s := range live {
		used[s] = true
	}
	slots = make([]uint32, len(next))
	var cand uint32
	for i, b := range next {
		if s, ok := live[b]; ok {
			slots[i] = s
			continue
		}
		for cand < capacity && used[cand] {
			cand++
		}
		if cand == capacity {
			return nil, nil, fmt.Errorf("%w: backend %s: all %d counter slots in use", ErrInvalidBackend, b, capacity)
		}
		used[cand] = true
		slots[i] = cand
		fresh = append(fresh, cand)
	}
	return slots, fresh, nil
}

// addr16 is an address as the maps store it: IPv4 in the first four bytes.
func addr16(a netip.Addr) [16]byte {
	var out [16]byte
	if a.Is4() {
		v4 := a.As4()
		copy(out[:], v4[:])
		return out
	}
	return a.As16()
}

// ipVersion is the ip_version field value for a.
func ipVersion(a netip.Addr) uint8 {
	if a.Is4() {
		return 4
	}
	return 6
}

// addrFrom16 decodes a stored address of the given ip_version.
func addrFrom16(b [16]byte, version uint8) netip.Addr {
	if version == 4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

package admin

import (
	"errors"
	"time"
)

// Errors a State returns; the API maps them to statuses (404, 400, 409).
var (
	// ErrUnknownService: no service of that name (404).
	ErrUnknownService = errors.New("unknown service")
	// ErrUnknownBackend: the service has no backend at that address (404).
	ErrUnknownBackend = errors.New("unknown backend")
	// ErrBadRequest: a value was malformed or out of range (400).
	ErrBadRequest = errors.New("bad request")
	// ErrNotSupported: the change does not apply to this service (409),
	// for example adding a backend to one discovered through DNS.
	ErrNotSupported = errors.New("not supported for this service")
)

// State is the running server as the admin API sees it: a snapshot to
// report, and the runtime changes an operator may make. Every change
// takes effect on request routing (and on an L4 service's BPF tables)
// before the call returns, and is kept as a runtime override that
// survives reloads and upgrades.
type State interface {
	// Status returns a consistent snapshot of every service.
	Status() Status
	// SetEnabled drains (false) or re-enables (true) a backend.
	SetEnabled(service, backend string, enabled bool) error
	// SetWeight changes a backend's weight (1 to lb.MaxWeight).
	SetWeight(service, backend string, weight int) error
	// AddBackend adds a backend to a service with static backends.
	AddBackend(service, backend string, weight int) error
	// RemoveBackend removes a backend from a service with static backends.
	RemoveBackend(service, backend string) error
}

// Status is the whole server: what GET /status returns as JSON and the
// status page shows.
type Status struct {
	// Version and Commit identify the running binary.
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	// PID is the serving process; Started when it started serving.
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Now is when the snapshot was taken.
	Now      time.Time       `json:"now"`
	Services []ServiceStatus `json:"services"`
	// BPF is the BPF data plane's hooks, nil when no l4 service runs on
	// it.
	BPF *BPFStatus `json:"bpf,omitempty"`
	// BGP is the BGP speaker's sessions and VIPs, nil without a bgp
	// block.
	BGP *BGPStatus `json:"bgp,omitempty"`
}

// BGPStatus is the BGP speaker: its sessions and the VIPs it announces.
type BGPStatus struct {
	Peers []BGPPeerStatus `json:"peers"`
	VIPs  []BGPVIPStatus  `json:"vips"`
}

// BGPPeerStatus is one BGP session.
type BGPPeerStatus struct {
	Address string `json:"address"`
	ASN     uint32 `json:"asn"`
	// State is idle, connect, active, opensent, openconfirm or
	// established.
	State string `json:"state"`
	// Uptime is how long the session has been established, in seconds.
	Uptime float64 `json:"uptime_seconds"`
}

// BGPVIPStatus is one VIP address: the host route of the l4 services with
// announce whose vip is on it.
type BGPVIPStatus struct {
	VIP         string   `json:"vip"`
	Announced   bool     `json:"announced"`
	Communities []string `json:"communities,omitempty"`
	// Services say, for each service on the address, its usable backends
	// and its min_backends, as "web 2/1": the route is announced while
	// one of them has enough.
	Services      string `json:"services"`
	Announcements uint64 `json:"announcements"`
	Withdrawals   uint64 `json:"withdrawals"`
}

// BPFStatus is the BPF data plane: where it is pinned and the interfaces
// its program hooks.
type BPFStatus struct {
	// PinPath is the bpffs directory of its maps and links (bpf.pin_path).
	PinPath string `json:"pin_path"`
	// Interfaces are the interfaces the configuration attaches the program
	// to and those it hooks, by name.
	Interfaces []InterfaceStatus `json:"interfaces"`
	// Error says why the hooks could not be read from the kernel; empty
	// when they were.
	Error string `json:"error,omitempty"`
}

// InterfaceStatus is one interface of the BPF data plane.
type InterfaceStatus struct {
	Name string `json:"name"`
	// Attach is the hook the configuration asks for (bpf.attach,
	// bpf.interfaces): tc, xdp or auto. It is empty on an interface the
	// configuration does not use, which a previous weir hooked and this
	// one detaches once its start settles.
	Attach string `json:"attach,omitempty"`
	// Hook is what runs there: tcx, tc filter, xdp native or xdp generic;
	// empty when nothing of weir's does.
	Hook string `json:"hook,omitempty"`
	// TC is, with XDP, the tc build's attachment behind it: tcx or tc
	// filter.
	TC string `json:"tc,omitempty"`
}

// ServiceStatus is one configured service.
type ServiceStatus struct {
	Name string `json:"name"`
	// Kind is the configured kind: http_proxy, respond or l4; or pool
	// for a named pool of upstreams:, whose backends the services and
	// routes naming it share.
	Kind string `json:"kind"`
	// Listeners are the configured listen addresses.
	Listeners []string `json:"listeners"`
	// Selection is the load-balancing algorithm, empty for respond.
	Selection string `json:"selection,omitempty"`
	// InFlight is the number of requests (L7) being served now.
	InFlight int64 `json:"in_flight"`
	// RequestRate and ErrorRate are requests per second over the last
	// minute or so; errors are responses of class 5xx and requests that
	// got no response.
	RequestRate float64 `json:"request_rate"`
	ErrorRate   float64 `json:"error_rate"`
	// DataPlane is, for an L4 service, "bpf" or "userspace".
	DataPlane string `json:"data_plane,omitempty"`
	// Generation is an L4 service's BPF table generation.
	Generation uint64 `json:"generation,omitempty"`
	// L4 holds an L4 service's counters, nil for L7 services.
	L4       *L4Counters     `json:"l4,omitempty"`
	Backends []BackendStatus `json:"backends"`
	// Limits is an HTTP service's overload protection, nil for others.
	Limits *LimitsStatus `json:"limits,omitempty"`
	// Queue is the wait queue of a pool whose backends have
	// max_connections; nil without.
	Queue *QueueStatus `json:"queue,omitempty"`
	// Retry holds the counts of the retry policies that govern this
	// target's requests: a pool's own (shown on the pool, or on the
	// service of an inline upstream) and a service's routes' own; nil
	// when none does.
	Retry *RetryStatus `json:"retry,omitempty"`
}

// QueueStatus is the queue where a pool's requests wait while every
// backend they may go to is at its max_connections.
type QueueStatus struct {
	// Length is how many wait now, at most Size, each for up to Timeout.
	Length  int           `json:"length"`
	Size    int           `json:"size"`
	Timeout time.Duration `json:"timeout_ns"`
	// Timeouts and Full count the requests answered 503: after waiting
	// Timeout, or at once with the queue full. Waited counts every
	// request that waited.
	Timeouts uint64 `json:"timeouts"`
	Full     uint64 `json:"full"`
	Waited   uint64 `json:"waited"`
}

// RetryStatus counts the retries of a target's retry policies since they
// were built (the last start or reload).
type RetryStatus struct {
	// Retries counts the retries made, by the reason the attempt before
	// failed: connect, reset, timeout, 502, 503, 504.
	Retries map[string]uint64 `json:"retries"`
	// Total is the sum of Retries.
	Total uint64 `json:"total"`
	// BudgetExhausted counts the retries the retry budget refused.
	BudgetExhausted uint64 `json:"budget_exhausted"`
}

// BackendStatus is one backend of a service.
type BackendStatus struct {
	Addr    string `json:"addr"`
	Weight  int    `json:"weight"`
	Healthy bool   `json:"healthy"`
	// Enabled is false while the backend is drained (by the admin API or
	// by discovery).
	Enabled bool `json:"enabled"`
	// Drained is true when an operator drained it through the API.
	Drained bool `json:"drained"`
	// Ejected is true while passive health keeps the backend out, until
	// EjectedUntil at the latest; Ejections counts its ejections since it
	// joined. Healthy stays the active checks' verdict: a backend serves
	// when Healthy && Enabled && !Ejected.
	Ejected      bool      `json:"ejected"`
	EjectedUntil time.Time `json:"ejected_until,omitzero"`
	Ejections    int       `json:"ejections"`
	// Backup marks a backup backend, selected only while no primary of
	// its service is usable.
	Backup   bool  `json:"backup"`
	InFlight int64 `json:"in_flight"`
	// RequestRate and ErrorRate: as in ServiceStatus, for this backend.
	RequestRate float64 `json:"request_rate"`
	ErrorRate   float64 `json:"error_rate"`
	// LastCheck is when the last health check started (zero: none yet),
	// LastCheckLatency how long it took, LastError its error ("" when it
	// passed).
	LastCheck        time.Time     `json:"last_check,omitzero"`
	LastCheckLatency time.Duration `json:"last_check_latency_ns,omitempty"`
	LastError        string        `json:"last_error,omitempty"`
	// L4 holds an L4 backend's counters, nil for L7 backends.
	L4 *L4Counters `json:"l4,omitempty"`
	// MaxConnections is the backend's limit of requests in flight
	// (max_connections; 0: none), and Connections how many hold one of
	// its slots now (from selection, connecting included, to the end of
	// the exchange).
	MaxConnections int64 `json:"max_connections,omitempty"`
	Connections    int64 `json:"connections,omitempty"`
}

// L4Counters are the packet counters of an L4 service or backend, summed
// over CPUs (BPF) or read from the userspace proxy.
type L4Counters struct {
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	NewFlows uint64 `json:"new_flows"`
	Drops    uint64 `json:"drops"`
}

package l4

import (
	"sync/atomic"

	"github.com/weir-lb/weir/pkg/lb"
)

// Stats is a snapshot of a proxy's counters. A TCPProxy leaves the UDP
// fields at zero and a UDPProxy the TCP ones.
type Stats struct {
	// Connections counts TCP connections accepted; ActiveConnections is
	// the number open now, connecting ones included.
	Connections, ActiveConnections uint64
	// ConnectFailures counts failed attempts to connect to a backend,
	// including those a retry on another backend made up for.
	ConnectFailures uint64
	// IdleTimeouts counts TCP connections closed because no byte moved
	// either way for IdleTimeout.
	IdleTimeouts uint64

	// BytesIn counts bytes forwarded from clients to backends, BytesOut
	// bytes forwarded from backends to clients. A TCP connection adds its
	// bytes as they move, a chunk (up to 1 MiB) at a time.
	BytesIn, BytesOut uint64
	// Datagrams counts UDP datagrams forwarded to backends, Replies those
	// forwarded back to clients.
	Datagrams, Replies uint64

	// Flows counts UDP flows opened (a move opens one); ActiveFlows is the
	// number open now.
	Flows, ActiveFlows uint64
	// ExpiredFlows counts flows closed after IdleTimeout without traffic;
	// MovedFlows counts flows moved to another backend because theirs
	// stopped being usable.
	ExpiredFlows, MovedFlows uint64

	// Drops counts what the proxy refused: TCP connections closed without
	// being served, UDP datagrams not forwarded (either way).
	Drops uint64
	// NoBackend counts the connections and datagrams dropped because no
	// backend was usable; FlowLimitDrops the datagrams dropped because
	// MaxFlows flows were already open. Both are included in Drops.
	NoBackend, FlowLimitDrops uint64
}

// counters are a proxy's live statistics, updated with atomic adds.
type counters struct {
	connections, activeConnections, connectFailures, idleTimeouts atomic.Uint64
	flows, activeFlows, expiredFlows, movedFlows                  atomic.Uint64
	drops, noBackend, flowLimitDrops                              atomic.Uint64

	// The hot counters: one group is written for every datagram from
	// clients (by the UDP reader), the other for every reply (by the flow
	// goroutines). Padding keeps the groups on separate cache lines so
	// the two sides do not contend for one.
	_                  [64]byte
	bytesIn, datagrams atomic.Uint64
	_                  [48]byte
	bytesOut, replies  atomic.Uint64
	_                  [48]byte
}

// Snapshot returns a plain copy of the counters. Each value is read
// atomically; the set is not one instant, which no counter user needs.
func (c *counters) Snapshot() Stats {
	return Stats{
		Connections:       c.connections.Load(),
		ActiveConnections: c.activeConnections.Load(),
		ConnectFailures:   c.connectFailures.Load(),
		IdleTimeouts:      c.idleTimeouts.Load(),
		BytesIn:           c.bytesIn.Load(),
		BytesOut:          c.bytesOut.Load(),
		Datagrams:         c.datagrams.Load(),
		Replies:           c.replies.Load(),
		Flows:             c.flows.Load(),
		ActiveFlows:       c.activeFlows.Load(),
		ExpiredFlows:      c.expiredFlows.Load(),
		MovedFlows:        c.movedFlows.Load(),
		Drops:             c.drops.Load(),
		NoBackend:         c.noBackend.Load(),
		FlowLimitDrops:    c.flowLimitDrops.Load(),
	}
}

// decrement subtracts one from a gauge.
func decrement(g *atomic.Uint64) { g.Add(^uint64(0)) }

// BackendCounters count one backend's share of a userspace proxy's
// traffic: the flows sent to it (TCP connections, UDP flows), the bytes
// forwarded to it, and the datagrams (UDP). A proxy counts into them when
// its Selector's backends carry them: make the LoadBalancer with
// NewBackendCounters as lb.Options.Attach, and read them back through
// lb.Backend.Ext.
type BackendCounters struct {
	flows, bytes, packets atomic.Uint64
}

// NewBackendCounters returns fresh counters for a backend: an
// lb.Options.Attach.
func NewBackendCounters(lb.Backend) any { return new(BackendCounters) }

// BackendStats is a snapshot of a backend's counters.
type BackendStats struct {
	// Flows counts TCP connections or UDP flows sent to the backend;
	// Bytes the bytes forwarded to it; Packets the datagrams (UDP only).
	Flows, Bytes, Packets uint64
}

// Snapshot returns the counters' values.
func (c *BackendCounters) Snapshot() BackendStats {
	return BackendStats{Flows: c.flows.Load(), Bytes: c.bytes.Load(), Packets: c.packets.Load()}
}

// countersOf returns b's counters, nil when its LoadBalancer attached
// none.
func countersOf(b *lb.Backend) *BackendCounters {
	c, _ := b.Ext().(*BackendCounters)
	return c
}

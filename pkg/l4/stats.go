package l4

import "sync/atomic"

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

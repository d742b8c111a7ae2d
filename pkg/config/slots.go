package config

import (
	"math"
	"time"
)

// queueKeys are the keys of an upstream's queue mapping.
var queueKeys = []string{"size", "timeout"}

// The queue's defaults. A waiting request is a parked goroutine and its
// buffers, a few KiB: 1024 of them bound a pool's queue to a few MiB. The
// timeout, HAProxy's "timeout queue", bounds how long a client waits for
// a full backend before a 503 it may retry elsewhere; 5s rides out a
// burst without holding clients as long as the default read timeout.
const (
	DefaultQueueSize    = 1024
	DefaultQueueTimeout = 5 * time.Second
)

// ConnLimits are an http_proxy upstream's per-backend connection limits
// and its wait queue, parsed from max_connections_per_backend, each
// backend's max_connections and queue.
type ConnLimits struct {
	// MaxConnectionsPerBackend is the limit of every backend that sets
	// none of its own (key max_connections_per_backend); 0: none.
	MaxConnectionsPerBackend int
	// QueueSize bounds the requests waiting for a slot when every
	// backend they may go to is full (key queue.size, default 1024; 0:
	// no queue, a 503 at once). QueueTimeout is how long one waits
	// before a 503 (key queue.timeout, default 5s).
	QueueSize    int
	QueueTimeout time.Duration
}

// connLimits reads max_connections_per_backend and queue. It leaves
// u.Limits nil when no backend has a limit, and refuses a queue then:
// nothing would ever wait in it. Backends must have been read.
func (p *parser) connLimits(m *mapping, u *Upstream) {
	l := ConnLimits{QueueSize: DefaultQueueSize, QueueTimeout: DefaultQueueTimeout}
	m.integer("max_connections_per_backend", &l.MaxConnectionsPerBackend, 1, math.MaxInt32)
	limited := l.MaxConnectionsPerBackend > 0
	for _, b := range u.Backends {
		limited = limited || b.MaxConnections > 0
	}
	if qn := m.get("queue"); qn != nil {
		q := p.mapping(qn, m.at("queue"), queueKeys)
		if q != nil {
			q.integer("size", &l.QueueSize, 0, math.MaxInt32)
			q.duration("timeout", &l.QueueTimeout, true)
		}
		if q != nil && !limited && !m.has("max_connections_per_backend") {
			p.errorf(m.keys["queue"], m.at("queue"),
				"no backend has a connection limit, so no request would ever wait in the queue; set max_connections_per_backend (or max_connections on backends), or remove queue")
		}
	}
	if limited {
		u.Limits = &l
	}
}

package server

import (
	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/lb"
)

// queuer is what the server reads of a pool's wait queue; every
// *lb.LoadBalancer has it.
type queuer interface {
	Queue() lb.QueueStatus
}

// connLimits sets the per-backend connection limits and the wait queue
// of pool name from its configuration, when any backend has a limit.
func (s *Server) connLimits(name string, up *config.Upstream, opts *lb.Options) {
	l := up.Limits
	if l == nil {
		return
	}
	opts.Limits = &lb.ConnLimits{MaxConnections: l.MaxConnectionsPerBackend, QueueSize: l.QueueSize, QueueTimeout: l.QueueTimeout}
	if s.metrics != nil {
		opts.Limits.Waited = s.metrics.QueueWaited(name)
	}
}

// watchQueue reports pool name's wait queue in the metrics, when it has
// one.
func (s *Server) watchQueue(name string, bal balancer) {
	if q, ok := bal.(queuer); ok && limited(bal) {
		s.metrics.WatchQueue(name, q.Queue)
	}
}

// limited reports whether bal bounds its backends' connections.
func limited(bal balancer) bool {
	l, ok := bal.(interface{ Limited() bool })
	return ok && l.Limited()
}

// slotSelector is the selection taking connection slots of pl, nil when
// its backends have no limits.
func slotSelector(pl *pool) l7.SlotSelector {
	if !limited(pl.bal) {
		return nil
	}
	return pl.bal.(l7.SlotSelector)
}

// queueStatus reports bal's wait queue for the admin status; nil when its
// backends have no limits.
func queueStatus(bal any) *admin.QueueStatus {
	q, ok := bal.(queuer)
	if !ok {
		return nil
	}
	if l, ok := bal.(interface{ Limited() bool }); !ok || !l.Limited() {
		return nil
	}
	st := q.Queue()
	return &admin.QueueStatus{Length: st.Length, Size: st.Size, Timeout: st.Timeout,
		Timeouts: st.Timeouts, Full: st.Full, Waited: st.Waited}
}

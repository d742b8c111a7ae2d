package server

import (
	"maps"

	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/dataplane"
	"github.com/weir-lb/weir/pkg/l4"
	"github.com/weir-lb/weir/pkg/metrics"
)

// Data plane names, as metrics and the status report them.
const (
	dataPlaneBPF       = "bpf"
	dataPlaneUserspace = "userspace"
)

// l4Reading is one l4 service's counters at one time: what metrics
// exports, and the service's totals for the status report.
type l4Reading struct {
	stats  metrics.L4Stats
	totals admin.L4Counters
}

// backends returns the per-backend counters by address.
func (r l4Reading) backends() map[string]*admin.L4Counters {
	out := make(map[string]*admin.L4Counters, len(r.stats.Backends))
	for _, b := range r.stats.Backends {
		out[b.Addr] = &admin.L4Counters{Packets: b.Packets, Bytes: b.Bytes, NewFlows: b.NewFlows}
	}
	return out
}

// L4Stats returns the counters of every l4 service, in configuration
// order: from the BPF per-CPU maps, summed over CPUs, or from the
// userspace proxy. It is a metrics.L4Source.
func (s *Server) L4Stats() []metrics.L4Stats {
	readings := s.readL4()
	out := make([]metrics.L4Stats, 0, len(s.l4))
	for _, svc := range s.l4 {
		if r, ok := readings[svc.cfg.Name]; ok {
			out = append(out, r.stats)
		}
	}
	return out
}

// readL4 reads every l4 service's counters by service name, reading the
// pinned maps once for all of them.
func (s *Server) readL4() map[string]l4Reading {
	out := make(map[string]l4Reading, len(s.l4))
	var pinned map[uint32]dataplane.ServiceState
	for _, svc := range s.l4 {
		if svc.bpf == nil {
			out[svc.cfg.Name] = svc.userspaceReading()
			continue
		}
		if pinned == nil {
			pinned = s.pinnedServices()
		}
		out[svc.cfg.Name] = svc.bpfReading(pinned[svc.bpf.id])
	}
	return out
}

// pinnedServices reads the BPF data plane's services by id; on a failure
// (logged) every service reads as zero rather than failing the report.
func (s *Server) pinnedServices() map[uint32]dataplane.ServiceState {
	out := map[uint32]dataplane.ServiceState{}
	if s.kernel == nil {
		return out
	}
	states, err := s.kernel.dp.Services()
	if err != nil {
		s.log.Warn("reading the BPF data plane's counters", "err", err)
		return out
	}
	for _, st := range states {
		out[st.ID] = st
	}
	return out
}

// bpfReading is the counters of the service's slot in the pinned maps
// (zero before its first table).
func (svc *l4Service) bpfReading(st dataplane.ServiceState) l4Reading {
	r := l4Reading{stats: metrics.L4Stats{Service: svc.cfg.Name, DataPlane: dataPlaneBPF,
		Generation: uint64(st.Generation), Drops: maps.Clone(st.Stats.Drops)}}
	if r.stats.Drops == nil {
		r.stats.Drops = map[string]uint64{}
	}
	for i, b := range st.Backends {
		var c dataplane.Counters
		if i < len(st.BackendStats) {
			c = st.BackendStats[i]
		}
		r.stats.Backends = append(r.stats.Backends, metrics.L4BackendStats{Addr: b.String(), Packets: c.Packets, Bytes: c.Bytes, NewFlows: c.NewFlows})
	}
	r.totals = admin.L4Counters{Packets: st.Stats.Packets, Bytes: st.Stats.Bytes, NewFlows: st.Stats.NewFlows}
	for _, n := range st.Stats.Drops {
		r.totals.Drops += n
	}
	return r
}

// userspaceReading is the userspace proxy's counters: the proxy's, and
// each backend's share (l4.BackendCounters, attached to the backends).
// It counts no packets for TCP.
func (svc *l4Service) userspaceReading() l4Reading {
	r := l4Reading{stats: metrics.L4Stats{Service: svc.cfg.Name, DataPlane: dataPlaneUserspace, Drops: map[string]uint64{}}}
	for _, b := range svc.lb.Backends() {
		if c, ok := b.Ext().(*l4.BackendCounters); ok {
			st := c.Snapshot()
			r.stats.Backends = append(r.stats.Backends, metrics.L4BackendStats{Addr: b.Addr, Packets: st.Packets, Bytes: st.Bytes, NewFlows: st.Flows})
		}
	}
	switch {
	case svc.tcp != nil:
		st := svc.tcp.Stats()
		r.totals = admin.L4Counters{Bytes: st.BytesIn + st.BytesOut, NewFlows: st.Connections, Drops: st.Drops}
		r.stats.Drops["no_backend"] = st.NoBackend
		r.stats.Drops["refused"] = st.Drops - st.NoBackend
	case svc.udp != nil:
		st := svc.udp.Stats()
		r.totals = admin.L4Counters{Packets: st.Datagrams + st.Replies, Bytes: st.BytesIn + st.BytesOut, NewFlows: st.Flows, Drops: st.Drops}
		r.stats.Drops["no_backend"] = st.NoBackend
		r.stats.Drops["flow_limit"] = st.FlowLimitDrops
		r.stats.Drops["refused"] = st.Drops - st.NoBackend - st.FlowLimitDrops
	}
	return r
}

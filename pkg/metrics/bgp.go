package metrics

import "github.com/prometheus/client_golang/prometheus"

// BGPStats is the BGP speaker's state, read at scrape time.
type BGPStats struct {
	VIPs  []BGPVIPStats
	Peers []BGPPeerStats
}

// BGPVIPStats is one announced VIP address (the /32 or /128 of one or
// more l4 services' vip).
type BGPVIPStats struct {
	// VIP is the address, as "192.0.2.10".
	VIP string
	// Announced is true while the host route is announced.
	Announced bool
	// Announcements and Withdrawals count the route's changes since the
	// process started.
	Announcements, Withdrawals uint64
}

// BGPPeerStats is one BGP session.
type BGPPeerStats struct {
	// Peer is the router's address.
	Peer string
	// State is the session's state: idle, connect, active, opensent,
	// openconfirm or established.
	State string
}

// BGPSource returns the BGP speaker's state.
type BGPSource func() BGPStats

var bgpDescs = struct {
	announced, announcements, withdrawals, peerUp, peerState *prometheus.Desc
}{
	announced: prometheus.NewDesc("weir_bgp_vip_announced", "1 while the VIP's host route is announced to the BGP peers, 0 while it is withdrawn.",
		[]string{"vip"}, nil),
	announcements: prometheus.NewDesc("weir_bgp_announcements_total", "Times the VIP's host route was announced.", []string{"vip"}, nil),
	withdrawals:   prometheus.NewDesc("weir_bgp_withdrawals_total", "Times the VIP's host route was withdrawn.", []string{"vip"}, nil),
	peerUp:        prometheus.NewDesc("weir_bgp_peer_up", "1 while the BGP session with the peer is established, 0 otherwise.", []string{"peer"}, nil),
	peerState: prometheus.NewDesc("weir_bgp_peer_state", "Always 1; state names the BGP session's state: idle, connect, active, opensent, openconfirm or established.",
		[]string{"peer", "state"}, nil),
}

// WatchBGP adds the BGP speaker's state, read at every scrape.
func (m *Metrics) WatchBGP(src BGPSource) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bgp = append(m.bgp, src)
}

func collectBGP(ch chan<- prometheus.Metric, sources []BGPSource) {
	d := &bgpDescs
	for _, src := range sources {
		st := src()
		for _, v := range st.VIPs {
			ch <- prometheus.MustNewConstMetric(d.announced, prometheus.GaugeValue, boolValue(v.Announced), v.VIP)
			ch <- prometheus.MustNewConstMetric(d.announcements, prometheus.CounterValue, float64(v.Announcements), v.VIP)
			ch <- prometheus.MustNewConstMetric(d.withdrawals, prometheus.CounterValue, float64(v.Withdrawals), v.VIP)
		}
		for _, p := range st.Peers {
			ch <- prometheus.MustNewConstMetric(d.peerUp, prometheus.GaugeValue, boolValue(p.State == "established"), p.Peer)
			ch <- prometheus.MustNewConstMetric(d.peerState, prometheus.GaugeValue, 1, p.Peer, p.State)
		}
	}
}

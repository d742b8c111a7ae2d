package metrics_test

import (
	"strings"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/metrics"
)

// TestBGPMetrics reads a BGP source at scrape time: each VIP's
// announcement state and counts, and each session's state, which
// promtool accepts.
func TestBGPMetrics(t *testing.T) {
	m := metrics.New(metrics.Build{Version: "test"})
	st := metrics.BGPStats{
		VIPs: []metrics.BGPVIPStats{
			{VIP: "192.0.2.10", Announced: true, Announcements: 3, Withdrawals: 2},
			{VIP: "2001:db8::10", Announcements: 1, Withdrawals: 1},
		},
		Peers: []metrics.BGPPeerStats{{Peer: "198.51.100.1", State: "established"}, {Peer: "2001:db8::1", State: "active"}},
	}
	m.WatchBGP(func() metrics.BGPStats { return st })
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"weir_bgp_vip_announced", map[string]string{"vip": "192.0.2.10"}, 1},
		{"weir_bgp_vip_announced", map[string]string{"vip": "2001:db8::10"}, 0},
		{"weir_bgp_announcements_total", map[string]string{"vip": "192.0.2.10"}, 3},
		{"weir_bgp_withdrawals_total", map[string]string{"vip": "192.0.2.10"}, 2},
		{"weir_bgp_peer_up", map[string]string{"peer": "198.51.100.1"}, 1},
		{"weir_bgp_peer_up", map[string]string{"peer": "2001:db8::1"}, 0},
		{"weir_bgp_peer_state", map[string]string{"peer": "2001:db8::1", "state": "active"}, 1},
	} {
		if got := value(t, m, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	text := scrape(t, "http://"+serveMetrics(t, m)+"/metrics", "")
	for _, want := range []string{
		"# TYPE weir_bgp_announcements_total counter",
		"# TYPE weir_bgp_vip_announced gauge",
		`weir_bgp_peer_state{peer="198.51.100.1",state="established"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	testenv.Promtool(t, text)
}

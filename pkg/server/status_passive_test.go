package server

import (
	"context"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/lb"
)

// TestServiceStatusMapsPassiveHealthAndBackups: the admin status carries
// lb.Status's ejection and the backend's backup role, and keeps healthy
// as the active checks' verdict.
func TestServiceStatusMapsPassiveHealthAndBackups(t *testing.T) {
	const ejected, primary, backup = "192.0.2.1:80", "192.0.2.2:80", "198.51.100.1:80"
	bk := lb.MustBackend(backup, 1)
	bk.Backup = true
	d, err := lb.NewStatic(lb.MustBackend(ejected, 1), lb.MustBackend(primary, 1), bk)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	// A clock never advanced: an ejection lasts until the test ends.
	bal, err := lb.New(&lb.RoundRobin{}, lb.Options{Discovery: d, Clock: lb.NewManualClock(now),
		Outlier: &lb.OutlierDetection{ConsecutiveGatewayFailures: 1, BaseEjection: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bal.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, b := range bal.Current() {
		if b.Addr == ejected {
			b.Report(lb.OutcomeGatewayFailure)
		}
	}
	ss := (&Server{}).serviceStatus(target{cfg: &config.Service{Name: "web", Kind: config.KindHTTPProxy}, lb: bal}, nil)
	want := map[string]struct {
		ejected   bool
		until     time.Time
		ejections int
		backup    bool
	}{
		ejected: {true, now.Add(30 * time.Second), 1, false},
		primary: {false, time.Time{}, 0, false},
		backup:  {false, time.Time{}, 0, true},
	}
	if len(ss.Backends) != len(want) {
		t.Fatalf("%d backends, want %d: %+v", len(ss.Backends), len(want), ss.Backends)
	}
	for _, b := range ss.Backends {
		w := want[b.Addr]
		if b.Ejected != w.ejected || !b.EjectedUntil.Equal(w.until) || b.Ejections != w.ejections || b.Backup != w.backup || !b.Healthy || !b.Enabled {
			t.Errorf("%s: %+v, want ejected %v until %v (%d ejections), backup %v, healthy and enabled",
				b.Addr, b, w.ejected, w.until, w.ejections, w.backup)
		}
	}
}

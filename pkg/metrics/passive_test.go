package metrics_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/metrics"
)

// TestEjectionAndBackupGauges ejects a primary by passive health and
// checks the scrape-time families of every backend: an ejected backend
// stays up and is ejected, and the backup is marked. The exposition
// passes promtool.
func TestEjectionAndBackupGauges(t *testing.T) {
	const (
		ejected = "192.0.2.1:80"
		primary = "192.0.2.2:80"
		backup  = "198.51.100.1:80"
	)
	bk := lb.MustBackend(backup, 1)
	bk.Backup = true
	static, err := lb.NewStatic(lb.MustBackend(ejected, 1), lb.MustBackend(primary, 1), bk)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Build{Version: "test"})
	// A clock never advanced: an ejection lasts until the test ends.
	opts := lb.Options{Discovery: static, Clock: lb.NewManualClock(time.Unix(1_800_000_000, 0)),
		Outlier: &lb.OutlierDetection{ConsecutiveGatewayFailures: 2, BaseEjection: time.Minute}}
	m.Balancer("web", &opts, nil)
	bal, err := lb.New(&lb.RoundRobin{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := bal.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.WatchBalancer("web", bal.Status)
	for _, b := range bal.Current() {
		if b.Addr == ejected {
			b.Report(lb.OutcomeGatewayFailure)
			b.Report(lb.OutcomeGatewayFailure)
		}
	}

	tests := []struct {
		backend                             string
		up, ejectedNow, ejections, isBackup float64
	}{
		{ejected, 1, 1, 1, 0},
		{primary, 1, 0, 0, 0},
		{backup, 1, 0, 0, 1},
	}
	for _, tc := range tests {
		labels := map[string]string{"service": "web", "backend": tc.backend}
		for name, want := range map[string]float64{
			"weir_backend_up":              tc.up,
			"weir_backend_ejected":         tc.ejectedNow,
			"weir_backend_ejections_total": tc.ejections,
			"weir_backend_backup":          tc.isBackup,
		} {
			if got := value(t, m, name, labels); got != want {
				t.Errorf("%s{backend=%q} = %v, want %v", name, tc.backend, got, want)
			}
		}
	}

	target := serveMetrics(t, m)
	text := scrape(t, "http://"+target+"/metrics", "")
	for _, want := range []string{
		"# TYPE weir_backend_ejections_total counter",
		`weir_backend_ejected{backend="192.0.2.1:80",service="web"} 1`,
		`weir_backend_backup{backend="198.51.100.1:80",service="web"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	testenv.Promtool(t, text)
}

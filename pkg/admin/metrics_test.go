package admin

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-lb/weir/internal/testenv"
)

// TestMetrics checks that /metrics serves the Gatherer in the format the
// scraper asks for: OpenMetrics when it accepts it, else the text format.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounter(prometheus.CounterOpts{Name: "weir_admin_test_requests_total", Help: "Requests the test made."})
	reg.MustRegister(requests)
	requests.Add(3)

	var log testenv.Buffer
	opts := options(&log)
	opts.Gatherer = reg
	e := serve(t, opts, &log, true)

	tests := []struct {
		name, accept string
		contentType  string // prefix
		eof          bool   // ends in "# EOF"
	}{
		{"default", "", "text/plain; version=0.0.4", false},
		{"text", "text/plain", "text/plain; version=0.0.4", false},
		{"openmetrics", "application/openmetrics-text;version=1.0.0", "application/openmetrics-text; version=1.0.0", true},
		{"prometheus scraper", "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
			"application/openmetrics-text; version=1.0.0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do(t, "GET", "/metrics", "", "Accept", tt.accept)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, tt.contentType) {
				t.Errorf("Content-Type %q, want %s", got, tt.contentType)
			}
			if got := strings.HasSuffix(body, "# EOF\n"); got != tt.eof {
				t.Errorf("ends in # EOF: %t, want %t:\n%s", got, tt.eof, body)
			}
			if !strings.Contains(body, "weir_admin_test_requests_total 3") {
				t.Errorf("the counter is missing:\n%s", body)
			}
		})
	}
}

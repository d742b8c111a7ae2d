package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/metrics"
)

// TestPrometheusScrapes runs a real Prometheus server (Debian's
// prometheus package) against weir's metrics and asks its query API for
// the request rate, as an operator's dashboard would.
func TestPrometheusScrapes(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		testenv.SkipOrFail(t, "prometheus (Debian package prometheus) is not installed")
		return
	}
	m := metrics.New(metrics.Build{Version: "test"})
	p := startProxy(t, m, origin(t, "a"))
	target := serveMetrics(t, m)
	api := startPrometheus(t, bin, target)

	// Traffic for as long as it takes Prometheus to see a rate: it needs
	// two scrapes inside the rate window. Bounded: 30 s at most.
	const query = `sum(rate(weir_http_requests_total{service="web",code="2xx"}[10s]))`
	deadline := time.Now().Add(30 * time.Second)
	for {
		get(t, p.addr, 20)
		rate, ok := queryScalar(t, api, query)
		if ok && rate > 0 {
			t.Logf("Prometheus reports %.1f requests/s", rate)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus never reported a request rate for %s", query)
		}
		time.Sleep(200 * time.Millisecond)
	}
	up, ok := queryScalar(t, api, `up{job="weir"}`)
	if !ok || up != 1 {
		t.Errorf("up{job=weir} = %v (%v), want 1: the scrape failed", up, ok)
	}
}

// serveMetrics serves m's registry on loopback and returns host:port.
func serveMetrics(t *testing.T, m *metrics.Metrics) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// startPrometheus runs Prometheus scraping target every second and
// returns the base URL of its HTTP API once it is ready.
func startPrometheus(t *testing.T, bin, target string) string {
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: weir\n    static_configs:\n      - targets: [%q]\n", target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	out, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(out.Name())
			t.Logf("prometheus log:\n%s", log)
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s not ready after 30 s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// queryScalar runs an instant query whose result is one sample.
func queryScalar(t *testing.T, api, query string) (float64, bool) {
	resp, err := http.Get(api + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("query %s: %v", query, err)
	}
	if r.Status != "success" || len(r.Data.Result) != 1 {
		return 0, false
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

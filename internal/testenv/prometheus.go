package testenv

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
	"strings"
	"testing"
	"time"
)

// PrometheusJob is the job name under which Prometheus scrapes the
// target: up{job="weir"} says whether its last scrape succeeded.
const PrometheusJob = "weir"

// Prometheus runs a real Prometheus server (Debian's prometheus package)
// on a free loopback port, scraping http://target/metrics every second
// as job PrometheusJob, and returns the base URL of its HTTP API once it
// is ready. It skips t when prometheus is not installed, or fails it
// when privileged tests are required. The server stops when t ends; its
// log is shown if t failed.
func Prometheus(t testing.TB, target string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		SkipOrFail(t, "test needs prometheus (Debian package prometheus)")
		return ""
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: %s\n    static_configs:\n      - targets: [%q]\n", PrometheusJob, target)
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
		cancel()
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		out.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		out.Close()
		if t.Failed() {
			log, _ := os.ReadFile(out.Name())
			t.Logf("prometheus log:\n%s", log)
		}
	})
	base := "http://" + addr
	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s not ready after 30 s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PromQuery runs an instant query on the Prometheus API at api (as
// Prometheus returns it) whose result is a single sample, and returns its
// value; ok is false while the result is empty or holds several samples.
func PromQuery(t testing.TB, api, query string) (v float64, ok bool) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	resp, err := c.Get(api + "/api/v1/query?query=" + url.QueryEscape(query))
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
	v, err = strconv.ParseFloat(s, 64)
	return v, err == nil
}

// Promtool lints an exposition in the Prometheus text format with
// `promtool check metrics`, failing t with promtool's findings. It skips
// t when promtool is not installed, or fails it when privileged tests
// are required.
func Promtool(t testing.TB, exposition string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		SkipOrFail(t, "test needs promtool (Debian package prometheus)")
		return
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

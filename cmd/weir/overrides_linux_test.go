package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/server"
)

// tally counts the answers of a bounded load by backend, and failures.
type tally struct {
	mu     sync.Mutex
	by     map[string]int
	failed int
	errs   []string
}

func (t *tally) add(body string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.failed++
		if len(t.errs) < 5 {
			t.errs = append(t.errs, err.Error())
		}
		return
	}
	t.by[body]++
}

func (t *tally) snapshot() (map[string]int, int, []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	by := map[string]int{}
	for k, v := range t.by {
		by[k] = v
	}
	return by, t.failed, append([]string(nil), t.errs...)
}

// loadUntil runs clients keep-alive clients against url until stop is
// closed (each stops after maxRequests), counting into a tally.
func loadUntil(url string, clients, maxRequests int, stop <-chan struct{}) (*tally, func()) {
	res := &tally{by: map[string]int{}}
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
			defer c.CloseIdleConnections()
			for range maxRequests {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err != nil {
					res.add("", err)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
				}
				res.add(string(body), err)
			}
		})
	}
	return res, wg.Wait
}

// inProcessWeir runs one weir's lifecycle (process.run) inside the test,
// as main would, logging into logs.
func inProcessWeir(t *testing.T, conf string, takeOver bool, logs io.Writer) (*process, chan int) {
	t.Helper()
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logs, nil)).With("weir", map[bool]string{false: "old", true: "new"}[takeOver])
	srv, err := server.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cfg: cfg, confPath: conf, srv: srv, log: log, upgrade: takeOver}
	exited := make(chan int, 1)
	go func() { exited <- p.run() }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			srv.Close()
		}
	})
	return p, exited
}

// waitReady waits for p's server to serve, or its run to end.
func waitReady(t *testing.T, p *process, exited <-chan int, logs *testenv.Buffer) {
	t.Helper()
	select {
	case <-p.srv.Ready():
	case code := <-exited:
		t.Fatalf("weir exited with %d before serving\n%s", code, logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("weir did not serve within 20s\n%s", logs)
	}
}

// TestUpgradeKeepsRuntimeOverridesAndHealth is issue 20's end-to-end
// proof, on the real lifecycle code (handOver, bind): one backend
// drained through runtime control and another found down by its checks
// stay out of traffic across an upgrade under load, with no request
// lost; the down one returns once it passes a check.
//
// The health check needs three failures to take a backend down: a
// successor that started every backend healthy, as it did before the
// state handoff, would send the down one traffic until its third check.
func TestUpgradeKeepsRuntimeOverridesAndHealth(t *testing.T) {
	dir := t.TempDir()
	a, b, c := testenv.StartNamedBackend(t, "a"), testenv.StartNamedBackend(t, "b"), testenv.StartNamedBackend(t, "c")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := filepath.Join(dir, "weir.yaml")
	yaml := fmt.Sprintf(`version: 1
pid_file: %s
upgrade_sock: %s
grace_period_seconds: 10
graceful_shutdown_timeout_seconds: 5
services:
  - name: lb
    kind: http_proxy
    listen: ["%s"]
    upstream:
      backends: ["%s", "%s", "%s"]
      health_check: {type: http, path: /healthz, interval: 100ms, timeout: 100ms, consecutive_failure: 3}
`, filepath.Join(dir, "weir.pid"), filepath.Join(dir, "upgrade.sock"), addr, a.Addr, b.Addr, c.Addr)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	old, oldExited := inProcessWeir(t, conf, false, &logs)
	waitReady(t, old, oldExited, &logs)

	if err := old.srv.SetEnabled("lb", a.Addr, false); err != nil {
		t.Fatal(err)
	}
	c.Down.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for !backendDown(old.srv, c.Addr) {
		if time.Now().After(deadline) {
			t.Fatalf("the old weir did not find c down within 5s\n%s", &logs)
		}
		time.Sleep(10 * time.Millisecond)
	}

	stop := make(chan struct{})
	res, wait := loadUntil("http://"+addr+"/", 4, 100_000, stop)
	start := time.Now()
	succ, succExited := inProcessWeir(t, conf, true, &logs)
	go old.upgradeTo(nil)
	waitReady(t, succ, succExited, &logs)
	select {
	case code := <-oldExited:
		if code != 0 {
			t.Fatalf("the old weir exited with %d\n%s", code, &logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the old weir did not exit within 20s of the upgrade\n%s", &logs)
	}
	t.Logf("upgrade done in %v", time.Since(start))
	// The successor alone serves now: let it serve a while, still under
	// load, through several of its own health rounds.
	before, _, _ := res.snapshot()
	deadline = time.Now().Add(10 * time.Second)
	for {
		now, _, _ := res.snapshot()
		if now["b"]-before["b"] >= 300 && time.Since(start) > 500*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the successor served %d requests in 10s, want 300\n%s", now["b"]-before["b"], &logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wait()
	by, failed, errs := res.snapshot()
	t.Logf("load across the upgrade: %v, %d failed", by, failed)
	if failed > 0 {
		t.Errorf("%d requests failed across the upgrade: %q\n%s", failed, errs, &logs)
	}
	if by["a"] > 0 || by["c"] > 0 || by["b"] == 0 {
		t.Errorf("requests went %v: want b only (a drained, c down)\n%s", by, &logs)
	}

	// c comes back once it passes a check; a stays drained.
	c.Down.Store(false)
	cl := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	seen := map[string]int{}
	back := time.Now()
	for attempts := 0; seen["c"] == 0; attempts++ {
		if attempts == 20_000 || time.Since(back) > 5*time.Second {
			t.Fatalf("c got no traffic within 5s of passing its checks: %v\n%s", seen, &logs)
		}
		resp, err := cl.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen[string(body)]++
	}
	t.Logf("c served again %v after its checks passed", time.Since(back))
	if seen["a"] > 0 {
		t.Errorf("the drained backend a got traffic after the upgrade: %v", seen)
	}
	st := succ.srv.Status()
	for _, be := range st.Services[0].Backends {
		if be.Addr == a.Addr && !be.Drained {
			t.Errorf("the successor's status shows a not drained: %+v", be)
		}
	}
	succ.srv.Close()
}

// backendDown reports whether srv's service lb has addr unhealthy.
func backendDown(srv *server.Server, addr string) bool {
	for _, s := range srv.Status().Services {
		for _, be := range s.Backends {
			if be.Addr == addr {
				return !be.Healthy
			}
		}
	}
	return false
}

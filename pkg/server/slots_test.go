package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/metrics"
)

// heldBackend is an HTTP backend on loopback that holds every request
// until the test releases one, then answers its name; it counts the
// requests it holds at once.
type heldBackend struct {
	name    string
	addr    string
	arrived chan string
	release chan struct{}
	now     atomic.Int64
	peak    atomic.Int64
	served  atomic.Int64
}

func startHeldBackend(t *testing.T, name string, arrived chan string) *heldBackend {
	t.Helper()
	b := &heldBackend{name: name, arrived: arrived, release: make(chan struct{}, 16)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := b.now.Add(1)
		for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
		}
		b.arrived <- b.name
		select {
		case <-b.release:
		case <-time.After(passiveTimeout):
		}
		b.now.Add(-1)
		b.served.Add(1)
		io.WriteString(w, b.name)
	}), ReadHeaderTimeout: passiveTimeout}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

// getOnce sends one GET on a connection of its own and returns the status
// and body.
func getOnce(t *testing.T, url string) (int, string) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: passiveTimeout}
	resp, err := c.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

type result struct {
	code int
	body string
}

// getAsync sends getOnce in a goroutine, its result to out.
func getAsync(t *testing.T, wg *sync.WaitGroup, url string, out chan<- result) {
	wg.Go(func() {
		code, body := getOnce(t, url)
		out <- result{code, body}
	})
}

// poolQueue returns the admin status of the pool named name.
func poolStatus(t *testing.T, srv *Server, name string) admin.ServiceStatus {
	t.Helper()
	for _, s := range srv.Status().Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no pool %s in the status", name)
	return admin.ServiceStatus{}
}

// TestMaxConnectionsAndQueueFromYAML: pool a's backend has
// max_connections 2 and a queue of 2. It never holds more than 2
// requests; the 3rd and 4th wait and are served as it releases; the 5th
// is answered 503 at once. Pool t's queue times out: 503. Pool s's two
// backends of max_connections 1 each take one request each: the second
// spills to the backend with room. The metrics and the admin status say
// so.
func TestMaxConnectionsAndQueueFromYAML(t *testing.T) {
	arrivedA, arrivedT, arrivedS := make(chan string, 16), make(chan string, 16), make(chan string, 16)
	a := startHeldBackend(t, "a", arrivedA)
	tb := startHeldBackend(t, "t", arrivedT)
	s1, s2 := startHeldBackend(t, "s1", arrivedS), startHeldBackend(t, "s2", arrivedS)
	port := freePorts(t, 1)[0]
	m := metrics.New(metrics.Build{Version: "test"})
	srv := startFrom(t, fmt.Sprintf(`version: 1
upstreams:
  a:
    backends: [{addr: %q, max_connections: 2}]
    queue: {size: 2, timeout: 1m}
  t:
    backends: [%q]
    max_connections_per_backend: 1
    queue: {size: 4, timeout: 50ms}
  s:
    backends: [{addr: %q, max_connections: 1}, {addr: %q, max_connections: 1}]
    queue: {size: 0}
services:
  - name: web
    kind: http_proxy
    listen: ["127.0.0.1:%d"]
    routes:
      - {match: {path: {prefix: /t}}, upstream: t}
      - {match: {path: {prefix: /s}}, upstream: s}
      - upstream: a
`, a.addr, tb.addr, s1.addr, s2.addr, port), Options{Metrics: m})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		v, ok := metricValue(t, m, name, labels)
		if !ok {
			t.Fatalf("no series %s%v", name, labels)
		}
		return v
	}
	pool := map[string]string{"service": "a"}

	t.Run("queue", func(t *testing.T) {
		var wg sync.WaitGroup
		results := make(chan result, 4)
		getAsync(t, &wg, base+"/", results)
		getAsync(t, &wg, base+"/", results)
		<-arrivedA
		<-arrivedA
		getAsync(t, &wg, base+"/", results)
		getAsync(t, &wg, base+"/", results)
		waitFor(t, "two requests queue", func() bool { return poolStatus(t, srv, "a").Queue.Length == 2 })
		st := poolStatus(t, srv, "a")
		if st.Backends[0].MaxConnections != 2 || st.Backends[0].Connections != 2 || st.Queue.Size != 2 {
			t.Errorf("status %+v, queue %+v: want 2 of 2 connections and a queue of 2", st.Backends[0], *st.Queue)
		}
		if v := value("weir_http_queue_length", pool); v != 2 {
			t.Errorf("weir_http_queue_length = %v, want 2", v)
		}
		if code, body := getOnce(t, base+"/"); code != 503 {
			t.Fatalf("with the backend full and the queue full: %d %q, want 503", code, body)
		}
		for range 4 {
			a.release <- struct{}{}
		}
		wg.Wait()
		close(results)
		for r := range results {
			if r.code != 200 || r.body != "a" {
				t.Errorf("response %d %q, want 200 from a", r.code, r.body)
			}
		}
		if p, n := a.peak.Load(), a.served.Load(); p != 2 || n != 4 {
			t.Errorf("the backend held %d requests at once (limit 2) and served %d (want 4)", p, n)
		}
		for name, want := range map[string]float64{"weir_http_queue_full_total": 1, "weir_http_queue_waits_total": 2,
			"weir_http_queue_timeouts_total": 0, "weir_http_queue_length": 0, "weir_http_queue_size": 2} {
			if v := value(name, pool); v != want {
				t.Errorf("%s = %v, want %v", name, v, want)
			}
		}
		if v := value("weir_backend_max_connections", map[string]string{"service": "a", "backend": a.addr}); v != 2 {
			t.Errorf("weir_backend_max_connections = %v, want 2", v)
		}
		if v := value("weir_http_queue_wait_seconds", map[string]string{"service": "a", "result": "slot"}); v != 2 {
			t.Errorf("queue waits timed: %v, want 2", v)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		var wg sync.WaitGroup
		results := make(chan result, 1)
		getAsync(t, &wg, base+"/t", results)
		<-arrivedT
		if code, _ := getOnce(t, base+"/t"); code != 503 {
			t.Fatalf("past the queue timeout: %d, want 503", code)
		}
		tb.release <- struct{}{}
		wg.Wait()
		if r := <-results; r.code != 200 {
			t.Errorf("the held request: %d", r.code)
		}
		tl := map[string]string{"service": "t"}
		if v := value("weir_http_queue_timeouts_total", tl); v != 1 {
			t.Errorf("weir_http_queue_timeouts_total = %v, want 1", v)
		}
		if v := value("weir_http_queue_wait_seconds", map[string]string{"service": "t", "result": "timeout"}); v != 1 {
			t.Errorf("timed-out waits: %v, want 1", v)
		}
		if _, ok := metricValue(t, m, "weir_backend_max_connections", map[string]string{"service": "t", "backend": tb.addr}); !ok {
			t.Error("no weir_backend_max_connections for the pool default")
		}
		if st := poolStatus(t, srv, "t"); st.Backends[0].Ejected || st.Queue.Timeouts != 1 || st.Queue.Length != 0 {
			t.Errorf("status %+v queue %+v: want one timeout, no ejection", st.Backends[0], *st.Queue)
		}
	})

	t.Run("spill", func(t *testing.T) {
		var wg sync.WaitGroup
		results := make(chan result, 2)
		getAsync(t, &wg, base+"/s", results)
		getAsync(t, &wg, base+"/s", results)
		got := map[string]bool{<-arrivedS: true, <-arrivedS: true}
		if !got["s1"] || !got["s2"] {
			t.Errorf("two requests went to %v, want one on each backend", got)
		}
		if code, _ := getOnce(t, base+"/s"); code != 503 {
			t.Errorf("with both full and no queue: %d, want 503", code)
		}
		s1.release <- struct{}{}
		s2.release <- struct{}{}
		wg.Wait()
		close(results)
		for r := range results {
			if r.code != 200 {
				t.Errorf("response %d", r.code)
			}
		}
		if s1.peak.Load() != 1 || s2.peak.Load() != 1 {
			t.Errorf("peaks %d and %d, limit 1 each", s1.peak.Load(), s2.peak.Load())
		}
	})
}

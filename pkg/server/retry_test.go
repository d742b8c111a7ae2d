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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/metrics"
)

// retryYAML is a service whose one route goes to pool web, three
// backends with a retry policy on 503 (attempts 3, budget percent 20 and
// min_concurrency 3: Envoy's).
func retryYAML(port int, addrs []string) string {
	return fmt.Sprintf(`version: 1
upstreams:
  web:
    backends: [%q, %q, %q]
    retry: {on: [connect, 503], attempts: 3, budget: {percent: 20, min_concurrency: 3}}
services:
  - name: front
    kind: http_proxy
    listen: ["127.0.0.1:%d"]
    routes:
      - {name: all, upstream: web}
`, addrs[0], addrs[1], addrs[2], port)
}

// counterValue sums the samples of the counter family name whose labels
// include every pair of want.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// poolRetry returns the retry counts of pool name in the status.
func poolRetry(t *testing.T, srv *Server, name string) *admin.RetryStatus {
	t.Helper()
	for _, ss := range srv.Status().Services {
		if ss.Name == name && ss.Kind == string(kindPool) {
			if ss.Retry == nil {
				t.Fatalf("pool %s has no retry status", name)
			}
			return ss.Retry
		}
	}
	t.Fatalf("no pool %s in the status", name)
	return nil
}

// TestRetryOneBackendOfThreeFailing: with one backend of three answering
// 503 to everything, every GET succeeds; each 503 was retried once, and
// the metrics and the pool's status count those retries.
func TestRetryOneBackendOfThreeFailing(t *testing.T) {
	good1, good2, bad := startNameBackend(t, "good1"), startNameBackend(t, "good2"), startNameBackend(t, "bad")
	bad.status.Store(503)
	port := freePorts(t, 1)[0]
	m := metrics.New(metrics.Build{Version: "test"})
	srv := startFrom(t, retryYAML(port, []string{good1.addr, good2.addr, bad.addr}), Options{Metrics: m})
	pc := newProxyClient(t, port)
	const n = 60
	got := pc.shares(n) // fails the test on any status but 200
	if got["bad"] != 0 || got["good1"]+got["good2"] != n {
		t.Fatalf("answers %v; want all %d from the two good backends", got, n)
	}
	retried := bad.hits.Load()
	if retried == 0 {
		t.Error("the failing backend saw no request")
	}
	if total := good1.hits.Load() + good2.hits.Load() + retried; total != n+retried {
		t.Errorf("the backends saw %d requests for %d GETs and %d retries", total, n, retried)
	}
	if v := counterValue(t, m.Registry, "weir_http_retries_total", map[string]string{"service": "front", "reason": "503"}); v != float64(retried) {
		t.Errorf("weir_http_retries_total{reason=503} = %v, want %d", v, retried)
	}
	if v := counterValue(t, m.Registry, "weir_http_retry_budget_exhausted_total", map[string]string{"service": "front"}); v != 0 {
		t.Errorf("weir_http_retry_budget_exhausted_total = %v, want 0", v)
	}
	if st := poolRetry(t, srv, "web"); st.Retries["503"] != uint64(retried) || st.Total != uint64(retried) || st.BudgetExhausted != 0 {
		t.Errorf("pool status %+v, want %d retries on 503", st, retried)
	}
}

// gatedBackend answers 503 to every request, each once the test lets it
// go: a request arrives by sending its own gate on arrived, and is
// answered when the test closes the gate.
type gatedBackend struct {
	addr string
	hits atomic.Int64
}

func startGatedBackends(t *testing.T, n int) ([]*gatedBackend, chan chan struct{}) {
	arrived := make(chan chan struct{}, 64)
	var out []*gatedBackend
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b := &gatedBackend{addr: ln.Addr().String()}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.hits.Add(1)
			gate := make(chan struct{})
			arrived <- gate
			select {
			case <-gate:
			case <-time.After(passiveTimeout):
			}
			w.WriteHeader(503)
		}), ReadHeaderTimeout: passiveTimeout}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		out = append(out, b)
	}
	return out, arrived
}

// TestRetryBudgetCapsTheLoadWhenAllFail: every backend answers 503.
// Rounds of 8 concurrent GETs are held at the backends until all 8 have
// arrived, then let go together. The budget allows max(min_concurrency 3,
// ⌊20 % × 8⌋ = 1) = 3 retries at once: exactly 3 requests are retried,
// the other 5 answered 503 at once (budget refusals); the 3 hold their
// slots through their second try and take them again for the third. A
// round thus costs the backends 8 + 3 + 3 = 14 requests, where retries
// without a budget would cost 8 × 3 = 24. The test then runs 8 clients ×
// 200 requests without gates, and checks the counts add up: every
// backend request is a first try or a counted retry, and the budget
// refused some.
func TestRetryBudgetCapsTheLoadWhenAllFail(t *testing.T) {
	backends, arrived := startGatedBackends(t, 3)
	port := freePorts(t, 1)[0]
	m := metrics.New(metrics.Build{Version: "test"})
	srv := startFrom(t, retryYAML(port, []string{backends[0].addr, backends[1].addr, backends[2].addr}), Options{Metrics: m})
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}, Timeout: passiveTimeout}
	hits := func() int64 {
		var n int64
		for _, b := range backends {
			n += b.hits.Load()
		}
		return n
	}
	// wait returns the gates of the next n requests to arrive.
	wait := func(what string, n int) []chan struct{} {
		t.Helper()
		var gates []chan struct{}
		for i := range n {
			select {
			case g := <-arrived:
				gates = append(gates, g)
			case <-time.After(passiveTimeout):
				req, ret := srv.poolOrder[0].retry.Budget.Active()
				t.Fatalf("%s: %d of %d arrived; status %+v, budget %d requests %d retries", what, i, n, poolRetry(t, srv, "web"), req, ret)
			}
		}
		return gates
	}
	let := func(gates []chan struct{}) {
		for _, g := range gates {
			close(g)
		}
	}

	const clients, rounds = 8, 5
	budget := srv.poolOrder[0].retry.Budget
	for round := range rounds {
		// A request is answered before it ends (and frees its budget
		// slot): a round starts once the last one's have all ended.
		waitFor(t, "the last round's requests ended", func() bool {
			req, ret := budget.Active()
			return req == 0 && ret == 0
		})
		before := hits()
		answered := make(chan int, clients)
		for range clients {
			go func() {
				resp, err := client.Get(url)
				if err != nil {
					answered <- 0
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				answered <- resp.StatusCode
			}()
		}
		let(wait("first tries", clients))
		retried := wait("retries", 3) // the budget's three
		codes := make(chan int, clients)
		for i := range clients - 3 { // the refused answer now
			select {
			case c := <-answered:
				codes <- c
			case <-time.After(passiveTimeout):
				t.Fatalf("round %d: %d of %d refused requests answered", round, i, clients-3)
			}
		}
		if n := len(arrived); n != 0 {
			st := poolRetry(t, srv, "web")
			t.Fatalf("round %d: status %+v, %d more requests reached the backends than the budget allows", round, st, n)
		}
		let(retried)
		let(wait("third tries", 3))
		for range 3 {
			select {
			case c := <-answered:
				codes <- c
			case <-time.After(passiveTimeout):
				t.Fatalf("round %d: a retried request was not answered", round)
			}
		}
		close(codes)
		for c := range codes {
			if c != 503 {
				t.Fatalf("round %d: status %d, want the last 503 relayed", round, c)
			}
		}
		if got := hits() - before; got != clients+3+3 {
			t.Fatalf("round %d: the backends saw %d requests, want %d", round, got, clients+3+3)
		}
	}
	// A request is counted once it has ended, after its answer.
	waitFor(t, "the metrics count every round's refusals and retries", func() bool {
		return counterValue(t, m.Registry, "weir_http_retry_budget_exhausted_total", map[string]string{"service": "front"}) == rounds*(clients-3) &&
			counterValue(t, m.Registry, "weir_http_retries_total", map[string]string{"service": "front", "reason": "503"}) == rounds*6
	})
	if st := poolRetry(t, srv, "web"); st.BudgetExhausted != rounds*(clients-3) || st.Retries["503"] != rounds*6 {
		t.Errorf("pool status %+v, want %d refusals and %d retries", st, rounds*(clients-3), rounds*6)
	}

	// Free running: every request is let go at once.
	go func() {
		for {
			select {
			case g := <-arrived:
				close(g)
			case <-time.After(passiveTimeout):
				return
			}
		}
	}()
	const perClient = 200
	before, retriesBefore := hits(), poolRetry(t, srv, "web").Total
	deniedBefore := poolRetry(t, srv, "web").BudgetExhausted
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perClient {
				resp, err := client.Get(url)
				if err != nil {
					bad.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 503 {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every request ended", func() bool {
		req, _ := budget.Active()
		return req == 0
	})
	if bad.Load() != 0 {
		t.Fatalf("%d requests did not get the backends' 503", bad.Load())
	}
	requests := int64(clients * perClient)
	got := hits() - before
	retries := int64(poolRetry(t, srv, "web").Total - retriesBefore)
	denied := poolRetry(t, srv, "web").BudgetExhausted - deniedBefore
	if got != requests+retries {
		t.Errorf("the backends saw %d requests for %d requests and %d retries", got, requests, retries)
	}
	if denied == 0 || got >= requests*3 {
		t.Errorf("%d refusals, %d backend requests for %d requests: the budget never cut in", denied, got, requests)
	}
	t.Logf("%d requests, all failing: %d backend requests (%.0f%% extra; no budget: 200%%), %d retries refused",
		requests, got, 100*float64(got-requests)/float64(requests), denied)
}

package main

// End-to-end tests of weir's observability (issue 20): the status page in
// a real browser, /metrics scraped by a real Prometheus, access logs and
// their rotation, a stalled access log, and the admin token, each on a
// real weir process (this test binary, see TestMain) in front of HTTP
// backends the test runs and counts.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/weir-lb/weir/internal/testenv"
)

// obsWeir is a weir of these tests: its configuration, admin address
// (empty without one), process and log.
type obsWeir struct {
	conf, admin string
	proc        *weirProc
	logs        weirLog
}

// startObsWeir writes a configuration of body (the services, the admin
// block, whatever else the test needs) after the settings every test
// shares, and starts weir on it; it returns once weir serves (it has
// written its pid file). "ADMIN" in body stands for a free loopback
// address, the admin endpoint's.
func startObsWeir(t *testing.T, body string) *obsWeir {
	t.Helper()
	dir := t.TempDir() // mode 0700: a safe home for upgrade_sock
	w := &obsWeir{conf: filepath.Join(dir, "weir.yaml")}
	head := fmt.Sprintf("version: 1\nthreads: 2\npid_file: %s\nupgrade_sock: %s\ngraceful_shutdown_timeout_seconds: 2\n",
		filepath.Join(dir, "weir.pid"), filepath.Join(dir, "upgrade.sock"))
	if os.Geteuid() == 0 {
		// Listener steering pins go to a private bpffs, gone with the test.
		head += fmt.Sprintf("bpf: {pin_path: %s}\n", filepath.Join(testenv.BPFFS(t), "weir"))
	}
	if strings.Contains(body, "ADMIN") {
		w.admin = freeAddr(t)
		body = strings.ReplaceAll(body, "ADMIN", w.admin)
	}
	if err := os.WriteFile(w.conf, []byte(head+body), 0o644); err != nil {
		t.Fatal(err)
	}
	w.logs = logFile(t)
	w.proc = startWeir(t, w.logs, "-c", w.conf)
	lab := &upgradeLab{pidFile: filepath.Join(dir, "weir.pid")}
	lab.waitPIDFile(t, w.proc.cmd.Process.Pid)
	return w
}

// stop stops weir with SIGTERM and checks it exits 0.
func (w *obsWeir) stop(t *testing.T) {
	t.Helper()
	w.proc.signal(t, syscall.SIGTERM)
	if err := w.proc.waitExit(t, 20*time.Second); err != nil {
		t.Errorf("weir exited with %v\n%s", err, w.logs)
	}
}

// adminGet GETs path on the admin endpoint and returns the status and
// body.
func (w *obsWeir) adminGet(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := adminClient.Get("http://" + w.admin + path)
	if err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, w.logs)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

var adminClient = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}

// metricsText scrapes weir's /metrics, in the Prometheus text format.
func (w *obsWeir) metricsText(t *testing.T) string {
	t.Helper()
	code, body := w.adminGet(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	return body
}

// sample is one sample of a Prometheus text exposition.
type sample struct {
	labels map[string]string
	value  float64
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// samples returns the samples of the metric name in a text exposition
// whose labels include every label of match.
func samples(t *testing.T, text, name string, match map[string]string) []sample {
	t.Helper()
	var out []sample
	for _, line := range strings.Split(text, "\n") {
		m := sampleLine.FindStringSubmatch(line)
		if m == nil || m[1] != name {
			continue
		}
		s := sample{labels: map[string]string{}}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			s.labels[p[1]] = p[2]
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		s.value = v
		ok := true
		for k, want := range match {
			ok = ok && s.labels[k] == want
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// countingBackend is an HTTP backend on loopback that counts the
// requests it serves and records, by request target, the X-Request-Id
// each came with. It answers its own address, with the status the query
// asks for (?code=201), and drops the connection without an answer for
// targets under /fail/. It can be stopped and started again on the same
// address.
type countingBackend struct {
	addr   string
	served atomic.Int64
	mu     sync.Mutex
	ids    map[string][]string // request target -> X-Request-Id of each arrival
	srv    *http.Server
}

func startCountingBackend(t *testing.T) *countingBackend {
	t.Helper()
	b := &countingBackend{ids: map[string][]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	b.serve(ln)
	t.Cleanup(b.stop)
	return b
}

func (b *countingBackend) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(b.handle)}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go srv.Serve(ln)
}

func (b *countingBackend) handle(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	b.mu.Lock()
	b.ids[r.RequestURI] = append(b.ids[r.RequestURI], r.Header.Get("X-Request-Id"))
	b.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/fail/") {
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
		return
	}
	b.served.Add(1)
	code := http.StatusOK
	if c, err := strconv.Atoi(r.URL.Query().Get("code")); err == nil {
		code = c
	}
	w.WriteHeader(code)
	io.WriteString(w, b.addr)
}

// stop closes the listener and every connection: the address refuses.
func (b *countingBackend) stop() {
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	srv.Close()
}

// restart listens on the same address again.
func (b *countingBackend) restart(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", b.addr)
		if err == nil {
			b.serve(ln)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen on %s again: %v", b.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// arrivals returns the X-Request-Id of each arrival of target.
func (b *countingBackend) arrivals(target string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.ids[target])
}

// newClient is a client of its own keep-alive connection.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, MaxConnsPerHost: 1}, Timeout: 10 * time.Second}
}

// getOK GETs http://addr/ n times on c and fails t unless each answer is
// a 200 from one of the backends.
func getOK(t *testing.T, c *http.Client, addr string, n int, backends ...*countingBackend) {
	t.Helper()
	for i := range n {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !slices.ContainsFunc(backends, func(b *countingBackend) bool { return b.addr == string(body) }) {
			t.Fatalf("request %d: %d %q %v", i, resp.StatusCode, body, err)
		}
	}
}

// ---------------------------------------------------------------------
// The status page.

// statusRows parses a status page (a browser's DOM) and returns the data
// attributes of its backend rows by "service backend".
func statusRows(t *testing.T, page string) map[string]map[string]string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]map[string]string{}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode || n.Data != "tr" {
			continue
		}
		attrs := map[string]string{}
		for _, a := range n.Attr {
			attrs[a.Key] = a.Val
		}
		if _, ok := attrs["data-backend"]; ok {
			rows[attrs["data-service"]+" "+attrs["data-backend"]] = attrs
		}
	}
	return rows
}

// statusJSON is the part of /status these tests read.
type statusJSON struct {
	Services []struct {
		Name     string
		Backends []struct {
			Addr      string     `json:"addr"`
			Healthy   bool       `json:"healthy"`
			Enabled   bool       `json:"enabled"`
			Drained   bool       `json:"drained"`
			LastCheck *time.Time `json:"last_check"`
		}
	}
}

func (w *obsWeir) status(t *testing.T) statusJSON {
	t.Helper()
	code, body := w.adminGet(t, "/status")
	if code != http.StatusOK {
		t.Fatalf("GET /status: %d %s", code, body)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	return st
}

// TestStatusPageInBrowser loads weir's status page in headless Chromium
// while one of two real backends goes down and comes back, and reads each
// backend's health from the DOM the browser built.
func TestStatusPageInBrowser(t *testing.T) {
	testenv.Chromium(t)
	a, b := startCountingBackend(t), startCountingBackend(t)
	w := startObsWeir(t, fmt.Sprintf(`admin: {listen: ADMIN}
services:
  - name: web
    kind: http_proxy
    listen: ["%s"]
    upstream:
      backends: ["%s", "%s"]
      # Two failures in a row: a check that times out while Chromium
      # starts (and takes both CPUs) does not take a live backend down.
      health_check: {type: tcp, interval: 200ms, timeout: 200ms, consecutive_failure: 2}
`, freeAddr(t), a.addr, b.addr))
	// Both backends checked once: their health is what the checks found,
	// not the initial assumption.
	deadline := time.Now().Add(10 * time.Second)
	for checked := 0; checked < 2; {
		checked = 0
		for _, s := range w.status(t).Services {
			for _, be := range s.Backends {
				if be.LastCheck != nil && be.Healthy {
					checked++
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backends were not both checked healthy within 10s: %+v", w.status(t))
		}
		time.Sleep(50 * time.Millisecond)
	}

	url := "http://" + w.admin + "/"
	// health loads the page until b's row shows want (each load is a
	// fresh Chromium; bounded by count and time), checking a's row stays
	// up, and returns the number of loads.
	health := func(want string) int {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for loads := 1; ; loads++ {
			rows := statusRows(t, testenv.DumpDOM(t, url))
			ra, rb := rows["web "+a.addr], rows["web "+b.addr]
			if ra == nil || rb == nil {
				t.Fatalf("no row for web %s or web %s in the page; rows: %v", a.addr, b.addr, rows)
			}
			if ra["data-health"] != "up" {
				t.Fatalf("backend %s shows data-health=%q, want up (it never stopped)", a.addr, ra["data-health"])
			}
			if rb["data-health"] == want {
				return loads
			}
			if loads == 20 || time.Now().After(deadline) {
				t.Fatalf("after %d loads backend %s still shows data-health=%q, want %q", loads, b.addr, rb["data-health"], want)
			}
		}
	}
	t.Logf("both up: %d page loads", health("up"))
	b.stop()
	stopped := time.Now()
	n := health("down")
	t.Logf("%s down on the page after %d loads, %v", b.addr, n, time.Since(stopped).Round(time.Millisecond))
	b.restart(t)
	restarted := time.Now()
	n = health("up")
	t.Logf("%s up again on the page after %d loads, %v", b.addr, n, time.Since(restarted).Round(time.Millisecond))
	w.stop(t)
}

// ---------------------------------------------------------------------
// Metrics.

// TestMetricsScrapedByPrometheus counts requests through weir, reads
// them back from /metrics by backend, as the backends counted them,
// lints the exposition with promtool, and has a real Prometheus scrape
// weir's admin endpoint and report a request rate.
func TestMetricsScrapedByPrometheus(t *testing.T) {
	a, b := startCountingBackend(t), startCountingBackend(t)
	addr := freeAddr(t)
	w := startObsWeir(t, fmt.Sprintf(`admin: {listen: ADMIN}
services:
  - name: web
    kind: http_proxy
    listen: ["%s"]
    upstream:
      backends: ["%s", "%s"]
`, addr, a.addr, b.addr))

	const n = 50
	c := newClient()
	getOK(t, c, addr, n, a, b)
	if got := a.served.Load() + b.served.Load(); got != n {
		t.Fatalf("the backends served %d requests, want %d", got, n)
	}
	// A request is counted as it ends, which may be just after its
	// client has the response: poll for the last ones.
	var text string
	var byBackend map[string]float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		text = w.metricsText(t)
		byBackend = map[string]float64{}
		total := 0.0
		for _, s := range samples(t, text, "weir_http_requests_total", map[string]string{"service": "web", "code": "2xx"}) {
			byBackend[s.labels["backend"]] += s.value
			total += s.value
		}
		if total == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("weir_http_requests_total{service=web,code=2xx} sums to %v, want %d:\n%s", total, n, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, be := range []*countingBackend{a, b} {
		if got, want := byBackend[be.addr], float64(be.served.Load()); got != want {
			t.Errorf("weir_http_requests_total{backend=%q,code=2xx} = %v, but the backend served %v", be.addr, got, want)
		}
	}
	t.Logf("%d requests: backend %s served %d, %s %d; /metrics agrees", n, a.addr, a.served.Load(), b.addr, b.served.Load())
	// Every class of every backend is exported from the start, at 0;
	// only the two backends' 2xx may have counted anything.
	for _, s := range samples(t, text, "weir_http_requests_total", map[string]string{"service": "web"}) {
		if s.value != 0 && s.labels["code"] != "2xx" {
			t.Errorf("weir_http_requests_total%v = %v, want 0: every request was answered 200", s.labels, s.value)
		}
	}
	testenv.Promtool(t, text)

	api := testenv.Prometheus(t, w.admin)
	const query = `sum(rate(weir_http_requests_total{service="web"}[10s]))`
	deadline = time.Now().Add(30 * time.Second)
	start, sent := time.Now(), 0
	for {
		getOK(t, c, addr, 20, a, b) // bounded: at most 20 a round, 30 s of rounds
		sent += 20
		if rate, ok := testenv.PromQuery(t, api, query); ok && rate > 0 {
			t.Logf("Prometheus reports %.1f requests/s after %v (%d requests sent meanwhile)", rate, time.Since(start).Round(time.Millisecond), sent)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus reported no positive %s within 30s\n%s", query, w.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if up, ok := testenv.PromQuery(t, api, `up{job="`+testenv.PrometheusJob+`"}`); !ok || up != 1 {
		t.Errorf("up{job=%q} = %v (%v), want 1: Prometheus's scrapes of weir failed", testenv.PrometheusJob, up, ok)
	}
	w.stop(t)
}

// ---------------------------------------------------------------------
// Access logs.

// accessLine is a line of the json access log, the keys these tests read.
type accessLine struct {
	Service   string `json:"service"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	Status    int    `json:"status"`
	Upstream  string `json:"upstream"`
	RequestID string `json:"request_id"`
	Attempts  int    `json:"attempts"`
}

// readAccessLog parses every line of a json access log; it fails t on a
// line that does not parse, or a last line without its newline.
func readAccessLog(t *testing.T, path string) []accessLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []accessLine
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			// A line being written: the caller polls again.
			break
		}
		var l accessLine
		if err := json.Unmarshal(data[:i], &l); err != nil {
			t.Fatalf("%s: line %q: %v", path, data[:i], err)
		}
		lines = append(lines, l)
		data = data[i+1:]
	}
	return lines
}

// requestIDs returns the request_id of each line of a text error log
// that has one, as keys counted.
func requestIDs(t *testing.T, path string) map[string]int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, m := range regexp.MustCompile(`request_id=(\S+)`).FindAllStringSubmatch(string(data), -1) {
		ids[m[1]]++
	}
	return ids
}

// logReq is one request of the access-log test and what its client saw.
type logReq struct {
	method, target string
	id             string // sent in X-Request-Id; empty: none
	code           int    // status the backend answers (502 from weir for /fail/)
	gotID          string // X-Request-Id of the response
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// sendLogged sends r through weir at addr on c and records the response's
// X-Request-Id.
func sendLogged(t *testing.T, c *http.Client, addr string, r *logReq) {
	t.Helper()
	var body io.Reader
	if r.method == http.MethodPost || r.method == http.MethodPut {
		body = strings.NewReader("payload")
	}
	req, err := http.NewRequest(r.method, "http://"+addr+r.target, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.id != "" {
		req.Header.Set("X-Request-Id", r.id)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.target, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != r.code {
		t.Fatalf("%s %s: status %d, want %d", r.method, r.target, resp.StatusCode, r.code)
	}
	r.gotID = resp.Header.Get("X-Request-Id")
}

// logPhase builds the requests of one phase of the access-log test: every
// method, with and without a client's request id, several statuses, and
// one request the backend drops (weir answers 502 and logs a warning).
func logPhase(phase string) []*logReq {
	var reqs []*logReq
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete}
	codes := []int{200, 201, 404, 503}
	for i := range 8 {
		r := &logReq{method: methods[i%len(methods)], code: codes[i/2%len(codes)]}
		r.target = fmt.Sprintf("/%s/%d?code=%d", phase, i, r.code)
		if i%2 == 0 {
			r.id = fmt.Sprintf("client-%s-%d", phase, i)
		}
		reqs = append(reqs, r)
	}
	for i, id := range []string{fmt.Sprintf("client-%s-fail", phase), ""} {
		reqs = append(reqs, &logReq{method: http.MethodGet, target: fmt.Sprintf("/fail/%s/%d", phase, i), id: id, code: http.StatusBadGateway})
	}
	return reqs
}

// waitFor polls cond until it holds, failing t with what() after within.
func waitFor(t *testing.T, within time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkLogged checks that the json access log lines are exactly the
// requests reqs, one line each, with the method, target, status,
// upstream and request id each had: the id the backend received and the
// client got back.
func checkLogged(t *testing.T, file string, lines []accessLine, reqs []*logReq, backends []*countingBackend) {
	t.Helper()
	byTarget := map[string][]accessLine{}
	for _, l := range lines {
		byTarget[l.Path] = append(byTarget[l.Path], l)
	}
	for _, r := range reqs {
		got := byTarget[r.target]
		delete(byTarget, r.target)
		if len(got) != 1 {
			t.Errorf("%s: %d lines for %s %s, want 1: %+v", file, len(got), r.method, r.target, got)
			continue
		}
		l := got[0]
		if l.Service != "web" || l.Method != r.method || l.Status != r.code {
			t.Errorf("%s: %s %s logged as service %q method %q status %d, want web %s %d", file, r.method, r.target, l.Service, l.Method, l.Status, r.method, r.code)
		}
		switch {
		case r.id != "" && l.RequestID != r.id:
			t.Errorf("%s: %s logged request_id %q, want the client's %q", file, r.target, l.RequestID, r.id)
		case r.id == "" && !generatedID.MatchString(l.RequestID):
			t.Errorf("%s: %s logged request_id %q, want 32 hex digits of weir's", file, r.target, l.RequestID)
		}
		if r.gotID != l.RequestID {
			t.Errorf("%s: %s logged request_id %q, the client got X-Request-Id %q", file, r.target, l.RequestID, r.gotID)
		}
		// The backend that served it received it with that id, once. A
		// request the backend dropped is sent again (it was a GET without
		// a body, on a reused connection, so it may never have arrived),
		// every time with the same id, and the upstream logged is the one
		// tried last: one of those it arrived at.
		var arrivals, upstreams []string
		for _, b := range backends {
			for _, id := range b.arrivals(r.target) {
				arrivals = append(arrivals, b.addr+" "+id)
				if id != l.RequestID {
					t.Errorf("%s: %s logged request_id %q, backend %s received it with X-Request-Id %q", file, r.target, l.RequestID, b.addr, id)
				}
				upstreams = append(upstreams, b.addr)
			}
		}
		if r.code != http.StatusBadGateway && len(arrivals) != 1 || !slices.Contains(upstreams, l.Upstream) {
			t.Errorf("%s: %s logged upstream %s, but the backends received it as %q", file, r.target, l.Upstream, arrivals)
		}
		if l.Attempts != len(arrivals) {
			t.Errorf("%s: %s logged %d attempts, but the backends received it %d times: %q", file, r.target, l.Attempts, len(arrivals), arrivals)
		}
	}
	for target, ls := range byTarget {
		t.Errorf("%s: %d lines for %s, a request not sent in this phase: %+v", file, len(ls), target, ls)
	}
}

// TestAccessLogAndSIGUSR1 checks the json access log line of each request
// against what the client and the backend saw, then rotates the access
// log and the error log as logrotate does (rename, SIGUSR1) — once while
// idle, once under load — and checks that every line is in exactly one
// file: the old lines in the renamed files, the new ones in new files at
// the original paths.
func TestAccessLogAndSIGUSR1(t *testing.T) {
	a, b := startCountingBackend(t), startCountingBackend(t)
	backends := []*countingBackend{a, b}
	addr := freeAddr(t)
	logDir := t.TempDir()
	access, errLog := filepath.Join(logDir, "access.log"), filepath.Join(logDir, "error.log")
	w := startObsWeir(t, fmt.Sprintf(`error_log: %s
services:
  - name: web
    kind: http_proxy
    listen: ["%s"]
    access_log: {path: %s, format: json}
    upstream:
      backends: ["%s", "%s"]
`, errLog, addr, access, a.addr, b.addr))
	c := newClient()

	// send sends a phase's requests and waits until the access log file
	// has every line and the error log each failure's warning.
	send := func(phase, accessFile, errFile string, before int) []*logReq {
		t.Helper()
		reqs := logPhase(phase)
		for _, r := range reqs {
			sendLogged(t, c, addr, r)
		}
		waitFor(t, 10*time.Second, func() bool {
			ids := requestIDs(t, errFile)
			for _, r := range reqs {
				if strings.HasPrefix(r.target, "/fail/") && ids[r.gotID] == 0 {
					return false
				}
			}
			return len(readAccessLog(t, accessFile)) >= before+len(reqs)
		}, func() string {
			return fmt.Sprintf("phase %s: %s has %d lines, want %d; %s has request ids %v", phase, accessFile, len(readAccessLog(t, accessFile)), before+len(reqs), errFile, requestIDs(t, errFile))
		})
		return reqs
	}
	// failures are the warnings the error log should hold: one per
	// dropped request.
	failures := func(reqs ...[]*logReq) map[string]int {
		want := map[string]int{}
		for _, rs := range reqs {
			for _, r := range rs {
				if strings.HasPrefix(r.target, "/fail/") {
					want[r.gotID]++
				}
			}
		}
		return want
	}

	before := send("before", access, errLog, 0)
	if err := os.Rename(access, access+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(errLog, errLog+".1"); err != nil {
		t.Fatal(err)
	}
	// Until SIGUSR1, weir goes on writing to the renamed files.
	between := send("between", access+".1", errLog+".1", len(before))
	w.proc.signal(t, syscall.SIGUSR1)
	const reopened = "SIGUSR1: reopened the logs"
	waitFor(t, 10*time.Second, func() bool {
		data, _ := os.ReadFile(errLog)
		return strings.Contains(string(data), reopened)
	}, func() string { return "no new " + errLog + " saying " + reopened + "\n" + w.logs.String() })
	after := send("after", access, errLog, 0)

	checkLogged(t, access+".1", readAccessLog(t, access+".1"), append(slices.Clone(before), between...), backends)
	checkLogged(t, access, readAccessLog(t, access), after, backends)
	if got, want := requestIDs(t, errLog+".1"), failures(before, between); !mapsEqual(got, want) {
		t.Errorf("%s.1 has request ids %v, want %v (the failures before SIGUSR1)", errLog, got, want)
	}
	if got, want := requestIDs(t, errLog), failures(after); !mapsEqual(got, want) {
		t.Errorf("%s has request ids %v, want %v (the failures after SIGUSR1)", errLog, got, want)
	}
	old, _ := os.ReadFile(errLog + ".1")
	cur, _ := os.ReadFile(errLog)
	if strings.Contains(string(old), reopened) || strings.Count(string(cur), reopened) != 1 {
		t.Errorf("%q should be in the new error log once and not in the old one;\nold:\n%s\nnew:\n%s", reopened, old, cur)
	}
	if t.Failed() {
		return
	}
	t.Logf("idle rotation: %d + %d lines stayed in the renamed file, %d went to the new one", len(before), len(between), len(after))

	// Again under load: 4 keep-alive clients of 150 requests each, and
	// the rotation once a quarter of them are done. Every request has
	// its line in exactly one of the two files. Halfway, each client
	// waits until weir has reopened its logs, so that whatever the
	// machine's speed some lines are due to the new file.
	const clients, each = 4, 150
	var done atomic.Int64
	errs := make(chan error, clients)
	rotated := make(chan struct{})
	var rotatedOnce sync.Once
	rotate := func() { rotatedOnce.Do(func() { close(rotated) }) }
	defer rotate()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c := newClient()
			for j := range each {
				if j == each/2 {
					select {
					case <-rotated:
					case <-time.After(20 * time.Second):
						errs <- fmt.Errorf("client %d: weir did not reopen its logs within 20s", i)
						return
					}
				}
				resp, err := c.Get(fmt.Sprintf("http://%s/load/%d/%d", addr, i, j))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					errs <- fmt.Errorf("client %d request %d: %w", i, j, err)
					return
				}
				done.Add(1)
			}
		})
	}
	waitFor(t, 30*time.Second, func() bool { return done.Load() >= clients*each/4 || len(errs) > 0 },
		func() string { return fmt.Sprintf("only %d requests done", done.Load()) })
	if err := os.Rename(access, access+".2"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(errLog, errLog+".2"); err != nil {
		t.Fatal(err)
	}
	w.proc.signal(t, syscall.SIGUSR1)
	rotatedAt := done.Load()
	waitFor(t, 10*time.Second, func() bool {
		data, _ := os.ReadFile(errLog)
		return strings.Contains(string(data), reopened)
	}, func() string { return "no new " + errLog + " saying " + reopened + "\n" + w.logs.String() })
	rotate()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every line of the load, in one file or the other.
	var oldLines, newLines []accessLine
	waitFor(t, 10*time.Second, func() bool {
		_, err := os.Stat(access)
		if err != nil {
			return false
		}
		oldLines, newLines = readAccessLog(t, access+".2"), readAccessLog(t, access)
		return len(oldLines)+len(newLines) >= len(after)+clients*each
	}, func() string {
		return fmt.Sprintf("%s.2 and %s hold %d and %d lines, want %d in all", access, access, len(oldLines), len(newLines), len(after)+clients*each)
	})
	seen := map[string]string{}
	for file, lines := range map[string][]accessLine{access + ".2": oldLines, access: newLines} {
		for _, l := range lines {
			if !strings.HasPrefix(l.Path, "/load/") {
				if file == access {
					t.Errorf("%s: line of an earlier request %s: %+v", file, l.Path, l)
				}
				continue
			}
			if prev, dup := seen[l.Path]; dup {
				t.Errorf("%s logged in %s and again in %s", l.Path, prev, file)
			}
			seen[l.Path] = file
		}
	}
	if len(seen) != clients*each {
		t.Errorf("%d requests of the load logged, want %d", len(seen), clients*each)
	}
	if len(newLines) == 0 {
		t.Errorf("no line of the load in the new %s: SIGUSR1 did not reopen it", access)
	}
	t.Logf("rotation under load (after %d of %d requests): %d lines in the renamed file, %d in the new one",
		rotatedAt, clients*each, len(oldLines)-len(after), len(newLines))
	w.stop(t)
}

// mapsEqual reports whether a and b hold the same counts.
func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// timedLoad sends n GETs for / to addr over clients keep-alive
// connections, each checked to be a 200 from backend, and returns how
// long they took; it fails t at the first failure, or if they take over
// limit.
func timedLoad(t *testing.T, addr string, clients, n int, backend *countingBackend, limit time.Duration) time.Duration {
	t.Helper()
	var next atomic.Int64
	errs := make(chan error, clients)
	deadline := time.Now().Add(limit)
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			c := newClient()
			defer c.CloseIdleConnections()
			for next.Add(1) <= int64(n) {
				if time.Now().After(deadline) {
					errs <- fmt.Errorf("%d requests took over %v", n, limit)
					return
				}
				resp, err := c.Get("http://" + addr + "/")
				if err != nil {
					errs <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || string(body) != backend.addr {
					errs <- fmt.Errorf("status %d body %q err %v", resp.StatusCode, body, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatalf("load on %s: %v", addr, err)
	}
	return elapsed
}

// TestAccessLogStalledDoesNotSlowRequests gives weir an access log that
// is a FIFO nobody reads: once the pipe and weir's queue are full, lines
// are dropped (and counted), and requests go on at the speed of a weir
// without an access log.
func TestAccessLogStalledDoesNotSlowRequests(t *testing.T) {
	backend := startCountingBackend(t)
	fifo := filepath.Join(t.TempDir(), "access.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A reader that never reads: weir can open the FIFO for writing, and
	// its writes stall once the pipe is full.
	reader, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	service := `admin: {listen: ADMIN}
services:
  - name: web
    kind: http_proxy
    listen: ["%s"]
%s    upstream:
      backends: ["%s"]
`
	plainAddr, stalledAddr := freeAddr(t), freeAddr(t)
	plain := startObsWeir(t, fmt.Sprintf(service, plainAddr, "", backend.addr))
	stalled := startObsWeir(t, fmt.Sprintf(service, stalledAddr, fmt.Sprintf("    access_log: {path: %s, format: json}\n", fifo), backend.addr))

	// More requests than the queue (4096 lines) and the pipe (64 KiB)
	// hold together, so that lines must be dropped.
	const clients, n = 4, 6000
	timedLoad(t, plainAddr, clients, 200, backend, 20*time.Second) // warm both up
	timedLoad(t, stalledAddr, clients, 200, backend, 20*time.Second)
	plainTime := timedLoad(t, plainAddr, clients, n, backend, 60*time.Second)
	stalledTime := timedLoad(t, stalledAddr, clients, n, backend, 60*time.Second)
	ratio := stalledTime.Seconds() / plainTime.Seconds()
	t.Logf("%d requests over %d connections: %v (%.0f/s) without an access log, %v (%.0f/s) with a stalled one: ratio %.2f",
		n, clients, plainTime.Round(time.Millisecond), n/plainTime.Seconds(), stalledTime.Round(time.Millisecond), n/stalledTime.Seconds(), ratio)
	if ratio > 3 {
		t.Errorf("requests with a stalled access log took %.2f times as long as without one, want under 3", ratio)
	}

	var dropped float64
	waitFor(t, 10*time.Second, func() bool {
		dropped = 0
		for _, s := range samples(t, stalled.metricsText(t), "weir_access_log_dropped_total", nil) {
			dropped += s.value
		}
		return dropped > 0
	}, func() string {
		return fmt.Sprintf("weir_access_log_dropped_total is %v after %d requests to a stalled access log:\n%s", dropped, n+200, strings.Join(grepLines(stalled.metricsText(t), "weir_access_log"), "\n"))
	})
	t.Logf("weir_access_log_dropped_total %v of %d lines", dropped, n+200)
	if s := samples(t, stalled.metricsText(t), "weir_access_log_dropped_total", map[string]string{"path": fifo}); len(s) != 1 {
		t.Errorf("no weir_access_log_dropped_total{path=%q}:\n%s", fifo, strings.Join(grepLines(stalled.metricsText(t), "weir_access_log"), "\n"))
	}
	stopping := time.Now()
	plain.stop(t)
	plainStop := time.Since(stopping)
	// The stalled weir's exit waits for the access log's close timeout
	// (2 s) at most, on top of the shutdown (bounded by 2 s too).
	stopping = time.Now()
	stalled.stop(t)
	stalledStop := time.Since(stopping)
	t.Logf("SIGTERM to exit: %v without an access log, %v with the stalled one", plainStop.Round(time.Millisecond), stalledStop.Round(time.Millisecond))
	if stalledStop > 8*time.Second {
		t.Errorf("the weir with the stalled access log took %v to stop, want about its close timeout (2 s) more than the other's", stalledStop)
	}
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// ---------------------------------------------------------------------
// The admin token.

// adminPost POSTs to path on w's admin endpoint with header Authorization
// set to auth (none when empty), and returns the status, the
// WWW-Authenticate header and the body.
func adminPost(t *testing.T, w *obsWeir, path, auth string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+w.admin+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(body)
}

// writeToken writes a token file of mode perm.
func writeToken(t *testing.T, dir, token string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("token-%d-%o", len(token), perm))
	if err := os.WriteFile(p, []byte(token+"\n"), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return p
}

// TestAdminTokenRules: with token_file, a drain without the token (or
// with a wrong one) gets 401 and changes nothing; with it, 200, and the
// drained backend gets no more requests. And weir -t refuses an admin
// address other hosts can reach without token_file.
func TestAdminTokenRules(t *testing.T) {
	const token = "s3cr3t-t0ken-0f-32-bytes-exactly"
	a, b := startCountingBackend(t), startCountingBackend(t)
	addr := freeAddr(t)
	tokenFile := writeToken(t, t.TempDir(), token, 0o600)
	w := startObsWeir(t, fmt.Sprintf(`admin:
  listen: ADMIN
  token_file: %s
services:
  - name: web
    kind: http_proxy
    listen: ["%s"]
    upstream:
      backends: ["%s", "%s"]
      selection: round_robin
`, tokenFile, addr, a.addr, b.addr))
	c := newClient()
	// share sends 20 requests and returns how many each backend served.
	share := func() (int64, int64) {
		t.Helper()
		a0, b0 := a.served.Load(), b.served.Load()
		getOK(t, c, addr, 20, a, b)
		return a.served.Load() - a0, b.served.Load() - b0
	}
	if da, db := share(); da != 10 || db != 10 {
		t.Fatalf("round robin over two backends: %d and %d of 20 requests, want 10 each", da, db)
	}
	drain := "/api/v1/services/web/backends/" + a.addr + "/drain"
	for _, tc := range []struct{ name, auth string }{
		{"no token", ""},
		{"wrong token", "Bearer " + strings.Repeat("x", len(token))},
		{"token one byte short", "Bearer " + token[:len(token)-1]},
		{"not a bearer token", "Basic " + token},
	} {
		code, challenge, body := adminPost(t, w, drain, tc.auth)
		if code != http.StatusUnauthorized || !strings.HasPrefix(challenge, "Bearer") {
			t.Errorf("%s: POST drain: %d, WWW-Authenticate %q, %s; want 401 with a Bearer challenge", tc.name, code, challenge, body)
		}
		if da, db := share(); da != 10 || db != 10 {
			t.Errorf("%s: after the refused drain: %d and %d of 20 requests, want 10 each", tc.name, da, db)
		}
	}
	for _, s := range w.status(t).Services {
		for _, be := range s.Backends {
			if !be.Enabled || be.Drained {
				t.Errorf("after refused drains /status says %s enabled=%v drained=%v", be.Addr, be.Enabled, be.Drained)
			}
		}
	}

	code, _, body := adminPost(t, w, drain, "Bearer "+token)
	var answer struct {
		OK      bool `json:"ok"`
		Current struct {
			Drained bool `json:"drained"`
		} `json:"current"`
	}
	if err := json.Unmarshal([]byte(body), &answer); code != http.StatusOK || err != nil || !answer.OK || !answer.Current.Drained {
		t.Fatalf("POST drain with the token: %d %s (%v), want 200, ok, drained", code, body, err)
	}
	if da, db := share(); da != 0 || db != 20 {
		t.Errorf("after the drain: %s served %d and %s %d of 20 requests, want 0 and 20", a.addr, da, b.addr, db)
	}
	if logs := w.logs.String(); strings.Contains(logs, token) {
		t.Errorf("weir's log holds the token:\n%s", logs)
	} else if n := strings.Count(logs, "admin: request refused"); n < 4 {
		t.Errorf("%d refusals logged, want 4:\n%s", n, logs)
	}
	w.stop(t)

	t.Run("weir -t", func(t *testing.T) {
		dir := t.TempDir()
		good := writeToken(t, dir, token, 0o600)
		for _, tc := range []struct {
			name  string
			admin string
			code  int
			want  string // in the output
		}{
			{"all addresses without token_file", "{listen: 0.0.0.0:%s}", 1, "token_file"},
			{"all addresses with token_file", "{listen: 0.0.0.0:%s, token_file: " + good + "}", 0, "is valid"},
			{"loopback without token_file", "{listen: 127.0.0.1:%s}", 0, "is valid"},
			{"token file others may read", "{listen: 0.0.0.0:%s, token_file: " + writeToken(t, dir, token, 0o644) + "}", 1, "chmod 600"},
			{"short token", "{listen: 0.0.0.0:%s, token_file: " + writeToken(t, dir, token[:8], 0o600) + "}", 1, "shorter"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, port, _ := net.SplitHostPort(freeAddr(t))
				conf := filepath.Join(dir, "weir.yaml")
				yaml := fmt.Sprintf("version: 1\npid_file: %s\nupgrade_sock: %s\nadmin: %s\nservices:\n  - {name: web, kind: respond, listen: [\"%s\"]}\n",
					filepath.Join(dir, "weir.pid"), filepath.Join(dir, "upgrade.sock"), fmt.Sprintf(tc.admin, port), freeAddr(t))
				if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(os.Args[0], "-t", "-c", conf)
				cmd.Env = append(os.Environ(), "WEIR_TEST_RUN_MAIN=1")
				out, err := cmd.CombinedOutput()
				code := 0
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					code = exit.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				if code != tc.code || !strings.Contains(string(out), tc.want) {
					t.Errorf("weir -t with admin %s: exit %d, want %d with %q:\n%s", fmt.Sprintf(tc.admin, port), code, tc.code, tc.want, out)
				}
				if strings.Contains(string(out), token[:8]) {
					t.Errorf("weir -t printed the token:\n%s", out)
				}
			})
		}
	})
}

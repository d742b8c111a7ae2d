package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
)

// fakeState is a State over a Status held in memory, recording every
// change it is asked for. Service "dns" refuses additions and removals
// (discovered backends), service "broken" fails every change.
type fakeState struct {
	mu     sync.Mutex
	status Status
	calls  []string
}

var _ State = (*fakeState)(nil)

// testNow is the fake's clock: snapshots are taken at this instant.
var testNow = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// newFake returns a fakeState with an HTTP service of three backends
// (up, down, drained), a DNS-discovered one, an L4 one and a broken one.
func newFake() *fakeState {
	return &fakeState{status: Status{
		Version: "v1.2.3", PID: 4242, Started: testNow.Add(-time.Hour), Now: testNow,
		Services: []ServiceStatus{
			{
				Name: "web", Kind: "http_proxy", Listeners: []string{"127.0.0.1:6188"}, Selection: "round_robin",
				InFlight: 3, RequestRate: 12.5, ErrorRate: 0.25,
				Backends: []BackendStatus{
					{Addr: "127.0.0.1:8081", Weight: 1, Healthy: true, Enabled: true, InFlight: 2, RequestRate: 10,
						LastCheck: testNow.Add(-1500 * time.Millisecond), LastCheckLatency: 1234 * time.Microsecond},
					{Addr: "[::1]:8082", Weight: 2, Healthy: false, Enabled: true, ErrorRate: 0.25,
						LastCheck: testNow.Add(-time.Second), LastCheckLatency: time.Second, LastError: "dial tcp [::1]:8082: connection refused"},
					{Addr: "unix:/run/app.sock", Weight: 1, Healthy: true, Enabled: false, Drained: true},
				},
			},
			{
				Name: "dns", Kind: "http_proxy", Listeners: []string{"127.0.0.1:6189"}, Selection: "maglev",
				Backends: []BackendStatus{{Addr: "192.0.2.10:80", Weight: 1, Healthy: true, Enabled: true}},
			},
			{
				Name: "vip", Kind: "l4", Listeners: []string{"192.0.2.1:53"}, Selection: "maglev", DataPlane: "bpf", Generation: 7,
				L4: &L4Counters{Packets: 1000, Bytes: 3 << 20, NewFlows: 40, Drops: 2},
				Backends: []BackendStatus{{Addr: "10.0.0.1:53", Weight: 1, Healthy: true, Enabled: true,
					L4: &L4Counters{Packets: 1000, Bytes: 3 << 20, NewFlows: 40}}},
			},
			{
				Name: "broken", Kind: "http_proxy", Listeners: []string{"127.0.0.1:6190"},
				Backends: []BackendStatus{{Addr: "127.0.0.1:9", Weight: 1, Enabled: true}},
			},
		},
		BPF: &BPFStatus{PinPath: "/sys/fs/bpf/weir", Interfaces: []InterfaceStatus{
			{Name: "eth0", Attach: "xdp", Hook: "xdp native", TC: "tcx"},
			{Name: "eth1", Attach: "auto", Hook: "tcx"},
			{Name: "eth2", Hook: "tc filter"}, // hooked, no longer configured
			{Name: "eth3", Attach: "xdp"},     // configured, nothing runs
			{Name: "eth4", Attach: "xdp", Hook: "xdp generic", TC: "tcx"},
		}},
	}}
}

// Status returns a deep enough copy that callers cannot change the fake.
func (f *fakeState) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	st.Services = slices.Clone(st.Services)
	for i := range st.Services {
		st.Services[i].Backends = slices.Clone(st.Services[i].Backends)
	}
	if st.BPF != nil {
		bpf := *st.BPF
		bpf.Interfaces = slices.Clone(bpf.Interfaces)
		st.BPF = &bpf
	}
	return st
}

// record notes a call; f.mu is held.
func (f *fakeState) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

// Calls returns the changes asked for so far.
func (f *fakeState) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// find returns a service and the index of one of its backends (-1 when
// it has none at addr); f.mu is held.
func (f *fakeState) find(svc, addr string) (*ServiceStatus, int, error) {
	for i := range f.status.Services {
		s := &f.status.Services[i]
		if s.Name != svc {
			continue
		}
		if s.Name == "broken" {
			return nil, 0, errors.New("bpf map update: no space left on device")
		}
		return s, slices.IndexFunc(s.Backends, func(b BackendStatus) bool { return b.Addr == addr }), nil
	}
	return nil, 0, fmt.Errorf("service %q: %w", svc, ErrUnknownService)
}

// backend returns one backend of a service; f.mu is held.
func (f *fakeState) backend(svc, addr string) (*BackendStatus, error) {
	s, i, err := f.find(svc, addr)
	if err != nil {
		return nil, err
	}
	if i < 0 {
		return nil, fmt.Errorf("backend %q: %w", addr, ErrUnknownBackend)
	}
	return &s.Backends[i], nil
}

// checkWeight applies lb's bounds.
func checkWeight(w int) error {
	if w < 1 || w > 10000 {
		return fmt.Errorf("weight %d is not between 1 and 10000: %w", w, ErrBadRequest)
	}
	return nil
}

func (f *fakeState) SetEnabled(svc, addr string, enabled bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("SetEnabled(%s, %s, %t)", svc, addr, enabled)
	b, err := f.backend(svc, addr)
	if err != nil {
		return err
	}
	b.Enabled, b.Drained = enabled, !enabled
	return nil
}

func (f *fakeState) SetWeight(svc, addr string, weight int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("SetWeight(%s, %s, %d)", svc, addr, weight)
	if err := checkWeight(weight); err != nil {
		return err
	}
	b, err := f.backend(svc, addr)
	if err != nil {
		return err
	}
	b.Weight = weight
	return nil
}

func (f *fakeState) AddBackend(svc, addr string, weight int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("AddBackend(%s, %s, %d)", svc, addr, weight)
	if err := checkWeight(weight); err != nil {
		return err
	}
	s, i, err := f.find(svc, addr)
	switch {
	case err != nil:
		return err
	case s.Name == "dns":
		return fmt.Errorf("service %s discovers its backends through DNS: %w", svc, ErrNotSupported)
	case i >= 0:
		return fmt.Errorf("backend %s already serves %s: %w", addr, svc, ErrBadRequest)
	}
	s.Backends = append(s.Backends, BackendStatus{Addr: addr, Weight: weight, Enabled: true})
	return nil
}

func (f *fakeState) RemoveBackend(svc, addr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("RemoveBackend(%s, %s)", svc, addr)
	s, i, err := f.find(svc, addr)
	switch {
	case err != nil:
		return err
	case s.Name == "dns":
		return fmt.Errorf("service %s discovers its backends through DNS: %w", svc, ErrNotSupported)
	case i < 0:
		return fmt.Errorf("backend %q: %w", addr, ErrUnknownBackend)
	}
	s.Backends = slices.Delete(s.Backends, i, i+1)
	return nil
}

// SetHealth marks a backend up or down, as a health check would.
func (f *fakeState) SetHealth(svc, addr string, healthy bool, lastErr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.backend(svc, addr)
	if err != nil {
		panic(err)
	}
	b.Healthy, b.LastError = healthy, lastErr
}

// SetEjected ejects a backend by passive health until until, or ends its
// ejection for the zero time.
func (f *fakeState) SetEjected(svc, addr string, until time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.backend(svc, addr)
	if err != nil {
		panic(err)
	}
	b.Ejected, b.EjectedUntil = !until.IsZero(), until
	if b.Ejected {
		b.Ejections++
	}
}

// addBackup adds a healthy backup backend to svc.
func (f *fakeState) addBackup(svc, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.status.Services {
		if s := &f.status.Services[i]; s.Name == svc {
			s.Backends = append(s.Backends, BackendStatus{Addr: addr, Weight: 1, Healthy: true, Enabled: true, Backup: true})
			return
		}
	}
	panic("no service " + svc)
}

// testToken is the token of the tests that configure one.
const testToken = "t0ken-for-tests-only-0123456789"

// endpoint is a Handler serving on a loopback socket for one test.
type endpoint struct {
	h     *Handler
	state *fakeState
	log   *testenv.Buffer
	addr  string // host:port
}

// options returns Options for a fresh fake, logging into log.
func options(log io.Writer) Options {
	return Options{
		State:   newFake(),
		Logger:  slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Version: "test",
	}
}

// serve starts a Handler for opts on 127.0.0.1, served with the given
// loopback flag, and stops it when the test ends; opts.State must be a
// *fakeState and opts.Logger write to log.
func serve(t testing.TB, opts Options, log *testenv.Buffer, loopback bool, tweak ...func(*Handler)) *endpoint {
	t.Helper()
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tweak {
		f(h)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	run(t, h, l, loopback)
	return &endpoint{h: h, state: opts.State.(*fakeState), log: log, addr: l.Addr().String()}
}

// run serves h on l until the test ends, then shuts it down and checks
// that Serve returned http.ErrServerClosed.
func run(t testing.TB, h *Handler, l net.Listener, loopback bool) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- h.Serve(l, loopback) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
			}
		case <-ctx.Done():
			t.Error("Serve did not return after Shutdown")
		}
	})
}

// client is an HTTP client with no proxy and no connection reuse, so
// that every test request stands alone.
var client = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	Timeout:   10 * time.Second,
}

// do sends one request to the endpoint and returns the response with its
// body read. headers are name, value pairs; "Host" sets the Host header.
func (e *endpoint) do(t testing.TB, method, target, body string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+e.addr+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(data)
}

// raw sends request, written out in full, on a connection of its own and
// returns the response with its body read: for request targets that an
// http.Client would rewrite.
func raw(t testing.TB, addr, request string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(data)
}

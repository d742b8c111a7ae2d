package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/config"
)

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// startServer parses yaml, binds and serves it; the returned cancel
// function shuts it down gracefully and waits.
func startServer(t *testing.T, yaml string) (stop func() error) {
	t.Helper()
	return startServerLogging(t, yaml, nil)
}

// listenFrom builds the Server of yaml, logging to log, and binds its
// listeners.
func listenFrom(t *testing.T, yaml string, log *slog.Logger) *Server {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	srv, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	return srv
}

// startServerLogging is startServer with the server's log.
func startServerLogging(t *testing.T, yaml string, log *slog.Logger) (stop func() error) {
	t.Helper()
	srv := listenFrom(t, yaml, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	var serveErr error
	stop = func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() { stop() })
	return stop
}

func quickstart(t *testing.T, lbPort, aPort, bPort, deadPort int) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "quickstart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer(
		"127.0.0.1:6188", fmt.Sprintf("127.0.0.1:%d", lbPort),
		"127.0.0.1:8001", fmt.Sprintf("127.0.0.1:%d", aPort),
		"127.0.0.1:8002", fmt.Sprintf("127.0.0.1:%d", bPort),
		"127.0.0.1:8003", fmt.Sprintf("127.0.0.1:%d", deadPort),
	)
	return r.Replace(string(data))
}

// TestQuickstart runs examples/quickstart.yaml (on free ports): after the
// first health round, requests alternate between the two live backends
// and none fails.
func TestQuickstart(t *testing.T) {
	p := freePorts(t, 4)
	startServer(t, quickstart(t, p[0], p[1], p[2], p[3]))
	url := fmt.Sprintf("http://127.0.0.1:%d/", p[0])
	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}

	// The broken backend is healthy until its first check fails, which
	// the runner does at once; wait until a full rotation shows no 502.
	deadline := time.Now().Add(3 * time.Second)
	for {
		ok := true
		for range 3 {
			if code, _ := fetch(c, url); code != 200 {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("requests still failed 3s after start: the broken backend was not taken out")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var bodies []string
	for range 10 {
		code, body := fetch(c, url)
		if code != 200 {
			t.Fatalf("status %d after the first health round, body %q", code, body)
		}
		bodies = append(bodies, body)
	}
	for i, b := range bodies {
		if b != "hello from a\n" && b != "hello from b\n" {
			t.Fatalf("unexpected body %q", b)
		}
		if i > 0 && b == bodies[i-1] {
			t.Fatalf("responses did not alternate: %q", bodies)
		}
	}
}

func fetch(c *http.Client, url string) (int, string) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestGracefulShutdownFinishesRequestsInFlight stops the server while a
// request waits on a slow upstream: the request completes, then Serve
// returns.
func TestGracefulShutdownFinishesRequestsInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go slow.Serve(ln)
	defer slow.Close()

	port := freePorts(t, 1)[0]
	stop := startServer(t, fmt.Sprintf(`
version: 1
graceful_shutdown_timeout_seconds: 10
services:
  - name: lb
    kind: http_proxy
    listen: ["127.0.0.1:%d"]
    upstream:
      backends: ["%s"]
`, port, ln.Addr()))

	result := make(chan string, 1)
	go func() {
		c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
		code, body := fetch(c, fmt.Sprintf("http://127.0.0.1:%d/", port))
		result <- fmt.Sprint(code, " ", body)
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()

	// New connections are refused once shutdown began, while the request
	// in flight still waits.
	waitRefused(t, fmt.Sprintf("127.0.0.1:%d", port))
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) while a request was in flight", err)
	default:
	}
	close(release)
	if got := <-result; got != "200 finished" {
		t.Fatalf("in-flight request got %q, want 200 finished", got)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the last request finished")
	}
}

func waitRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s still accepted connections 3s after shutdown began", addr)
}

func TestListenConflictIsReported(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg, err := config.Parse("busy.yaml", []byte(fmt.Sprintf(`
version: 1
services:
  - name: a
    kind: respond
    listen: ["%s"]
`, busy.Addr())))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Listen()
	if err == nil || !strings.Contains(err.Error(), busy.Addr().String()) || !strings.Contains(err.Error(), "busy.yaml:6:") {
		t.Fatalf("Listen = %v, want an error naming the address and its position", err)
	}
}

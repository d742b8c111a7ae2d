package testenv

import (
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// Get sends one GET for / to addr (host:port) on a connection of its own,
// bounded by timeout, and returns the status and the body.
func Get(addr string, timeout time.Duration) (int, string, error) {
	c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: timeout}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// Backend starts an HTTP server on loopback that answers body to every
// request until the test ends, and returns its address.
func Backend(t testing.TB, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// NamedBackend is an HTTP backend on loopback that answers its name to
// every request, and fails its health check path (/healthz, 503) while
// Down is set.
type NamedBackend struct {
	Name string
	Addr string
	Down atomic.Bool
}

// StartNamedBackend starts a NamedBackend until the test ends.
func StartNamedBackend(t testing.TB, name string) *NamedBackend {
	t.Helper()
	b := &NamedBackend{Name: name}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && b.Down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, name)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	b.Addr = ln.Addr().String()
	return b
}

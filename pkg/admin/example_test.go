package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-lb/weir/pkg/admin"
)

// oneBackend is a State with one service, web, of one backend: enough
// to show the API.
type oneBackend struct {
	mu      sync.Mutex
	enabled bool
}

var _ admin.State = (*oneBackend)(nil)

func (s *oneBackend) Status() admin.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return admin.Status{Services: []admin.ServiceStatus{{
		Name: "web", Kind: "http_proxy", Listeners: []string{"127.0.0.1:6188"},
		Backends: []admin.BackendStatus{{Addr: "127.0.0.1:8081", Weight: 1, Healthy: true, Enabled: s.enabled, Drained: !s.enabled}},
	}}}
}

func (s *oneBackend) SetEnabled(service, backend string, enabled bool) error {
	if service != "web" {
		return admin.ErrUnknownService
	}
	if backend != "127.0.0.1:8081" {
		return admin.ErrUnknownBackend
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enabled = enabled
	return nil
}

func (s *oneBackend) SetWeight(string, string, int) error  { return admin.ErrNotSupported }
func (s *oneBackend) AddBackend(string, string, int) error { return admin.ErrNotSupported }
func (s *oneBackend) RemoveBackend(string, string) error   { return admin.ErrNotSupported }

// Drain a backend, then read the status back. httptest serves on
// loopback, where neither needs a token.
func Example() {
	h, err := admin.New(admin.Options{
		State:  &oneBackend{enabled: true},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/api/v1/services/web/backends/127.0.0.1:8081/drain", "", nil)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("drain:", resp.Status)

	resp, err = http.Post(srv.URL+"/api/v1/services/web/backends/127.0.0.1:9999/drain", "", nil)
	if err != nil {
		log.Fatal(err)
	}
	var failure struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&failure)
	resp.Body.Close()
	fmt.Println("drain another:", resp.Status, failure.Error)

	resp, err = http.Get(srv.URL + "/status")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var st admin.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		log.Fatal(err)
	}
	for _, b := range st.Services[0].Backends {
		fmt.Printf("%s enabled=%t drained=%t\n", b.Addr, b.Enabled, b.Drained)
	}
	// Output:
	// drain: 200 OK
	// drain another: 404 Not Found drain backend 127.0.0.1:9999 of service web: unknown backend
	// 127.0.0.1:8081 enabled=false drained=true
}

// Serve the endpoint the way weir does: on loopback and a Unix socket,
// with a token for changes, until shutdown.
func ExampleHandler_Serve() {
	token, err := os.ReadFile("/etc/weir/admin.token")
	if err != nil {
		log.Fatal(err)
	}
	h, err := admin.New(admin.Options{
		State:    &oneBackend{enabled: true},
		Gatherer: prometheus.NewRegistry(),
		Token:    token,
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, addr := range []struct{ network, address string }{
		{"tcp", "127.0.0.1:9901"},
		{"unix", "/run/weir/admin.sock"},
	} {
		l, err := net.Listen(addr.network, addr.address)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			if err := h.Serve(l, true); err != http.ErrServerClosed {
				log.Print(err)
			}
		}()
	}
	// ... until weir stops:
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.Shutdown(ctx)
}

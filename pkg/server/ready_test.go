package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/dnstest"
	"github.com/weir-lb/weir/internal/testenv"
)

// readyTestWait bounds every wait of these tests: far above anything that
// should happen, so that only a hang trips it.
const readyTestWait = 20 * time.Second

// twoServices is a configuration of two http_proxy services: "static",
// with static backend, and "discovered", which resolves name through the
// resolver at dnsAddr.
func twoServices(staticPort, dnsPort int, backend, name, dnsAddr string) string {
	return fmt.Sprintf(`
version: 1
services:
  - name: static
    kind: http_proxy
    listen: ["127.0.0.1:%d"]
    upstream:
      backends: ["%s"]
  - name: discovered
    kind: http_proxy
    listen: ["127.0.0.1:%d"]
    upstream:
      discovery: {type: dns, names: ["%s"], server: "%s", network: ip4}
`, staticPort, backend, dnsPort, name, dnsAddr)
}

// serveFrom binds yaml's listeners and returns the server and a function
// that starts serving, returning the instant it did so.
func serveFrom(t *testing.T, yaml string) (*Server, func() time.Time) {
	t.Helper()
	srv := listenFrom(t, yaml, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := false
	t.Cleanup(func() {
		cancel()
		if !started {
			srv.Close()
			return
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(readyTestWait):
			t.Error("Serve did not return after its context ended")
		}
	})
	return srv, func() time.Time {
		started = true
		t0 := time.Now()
		go func() { done <- srv.Serve(ctx) }()
		return t0
	}
}

// A resolver that answers nothing, or garbage, holds up only the service
// that asks it: a service with static backends answers at once (the first
// request is already queued when serving starts, so what it measures is
// the time from Serve to the answer). The bound, 1.5 s, is far below the
// DNS timeout (5 s) that the whole server used to wait for.
func TestStaticServiceDoesNotWaitForAnotherServicesDNS(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode dnstest.Mode
	}{{"silent resolver", dnstest.Silent}, {"garbage resolver", dnstest.Garbage}} {
		t.Run(tc.name, func(t *testing.T) {
			resolver := dnstest.Start(t, tc.mode, nil)
			backend := testenv.Backend(t, "static backend")
			p := freePorts(t, 2)
			srv, serve := serveFrom(t, twoServices(p[0], p[1], backend, "app.weir.test.:80", resolver.Addr))

			t0 := serve()
			code, body, err := testenv.Get(fmt.Sprintf("127.0.0.1:%d", p[0]), readyTestWait)
			elapsed := time.Since(t0)
			if err != nil || code != 200 || body != "static backend" {
				t.Fatalf("static service: %d %q %v, want 200 \"static backend\"", code, body, err)
			}
			if elapsed > 1500*time.Millisecond {
				t.Fatalf("the static service answered %v after Serve began: it waited for the other service's DNS", elapsed.Round(time.Millisecond))
			}
			select {
			case <-resolver.Asked():
			case <-time.After(readyTestWait):
				t.Fatal("the DNS service never asked its resolver")
			}
			select {
			case <-srv.Ready():
				t.Fatal("Ready closed while a service still waits for its first discovery")
			default:
			}
			t.Logf("static service answered %v after Serve began", elapsed.Round(time.Millisecond))
		})
	}
}

// A DNS-discovered service serves only once its own first discovery is
// done: a request queued while its resolver holds the answer is answered
// by the discovered backend, not with a 503 from an empty pool; the
// static service serves meanwhile, and Ready waits for both.
func TestDNSServiceWaitsForItsOwnFirstDiscovery(t *testing.T) {
	backend := testenv.Backend(t, "discovered backend")
	_, port, _ := net.SplitHostPort(backend)
	resolver := dnstest.Start(t, dnstest.Hold, map[string]string{"app.weir.test.": "127.0.0.1"})
	static := testenv.Backend(t, "static backend")
	p := freePorts(t, 2)
	srv, serve := serveFrom(t, twoServices(p[0], p[1], static, "app.weir.test.:"+port, resolver.Addr))

	serve()
	select {
	case <-resolver.Asked():
	case <-time.After(readyTestWait):
		t.Fatal("the DNS service never asked its resolver")
	}
	if code, body, err := testenv.Get(fmt.Sprintf("127.0.0.1:%d", p[0]), readyTestWait); err != nil || code != 200 || body != "static backend" {
		t.Fatalf("static service while the resolver holds its answer: %d %q %v", code, body, err)
	}
	select {
	case <-srv.Ready():
		t.Fatal("Ready closed while the DNS service waits for its first discovery")
	default:
	}

	// The request reaches the DNS service's listen queue before the answer
	// is let go; it must be served with the discovered backend.
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p[1]), readyTestWait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(readyTestWait))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: discovered\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resolver.SetMode(dnstest.Answer)
	reply, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading the DNS service's answer: %v", err)
	}
	if !strings.HasPrefix(string(reply), "HTTP/1.1 200 ") || !strings.HasSuffix(string(reply), "discovered backend") {
		t.Fatalf("the DNS service answered %q, want 200 from the discovered backend", reply)
	}
	select {
	case <-srv.Ready():
	case <-time.After(readyTestWait):
		t.Fatal("Ready did not close once every service served")
	}
}

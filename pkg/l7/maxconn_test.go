package l7

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/limit"
)

// connCounter is an Observer counting connections opened and closed.
type connCounter struct{ opened, closed atomic.Int64 }

func (o *connCounter) ConnOpened()                                     { o.opened.Add(1) }
func (o *connCounter) ConnClosed()                                     { o.closed.Add(1) }
func (o *connCounter) Handshake(state *tls.ConnectionState, err error) {}
func (o *connCounter) StreamOpened()                                   {}
func (o *connCounter) RequestStarted(s *Session)                       {}
func (o *connCounter) RequestDone(s *Session, err error)               {}

var _ Observer = (*connCounter)(nil)

// gatedProxy serves a Respond on loopback with a gate of max slots and
// returns its address, server, observer and gate, and a channel Serve's
// result arrives on.
func gatedProxy(t *testing.T, max int) (string, *Server, *connCounter, *limit.Gate, <-chan error) {
	t.Helper()
	gate, err := limit.NewGate(max)
	if err != nil {
		t.Fatal(err)
	}
	obs := &connCounter{}
	srv := &Server{Proxy: &Respond{Status: 200, Body: []byte("ok")}, IdleTimeout: time.Minute, Observer: obs}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeWith(ln, ListenerOptions{Gate: gate}) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), srv, obs, gate, served
}

// waitFor polls cond until it holds, failing after 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 5s", what)
		}
	}
}

func TestMaxConnectionsQueuesInTheKernelAndResumes(t *testing.T) {
	addr, _, obs, gate, _ := gatedProxy(t, 2)
	a, b := dialKeepAlive(t, addr), dialKeepAlive(t, addr)
	for _, k := range []*keepAliveConn{a, b} {
		if resp, err := k.do(); err != nil || resp.StatusCode != 200 {
			t.Fatalf("a client under the limit: %v, %v", resp, err)
		}
	}
	// Both idle keep-alive connections hold their slots.
	if n := gate.InUse(); n != 2 {
		t.Fatalf("gate in use = %d, want 2", n)
	}

	// The third connects (the kernel queues it) but is not accepted.
	c := dialKeepAlive(t, addr)
	if _, err := c.c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	c.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.r.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third client at the limit read %v, want no answer (deadline exceeded)", err)
	}
	if n := obs.opened.Load(); n != 2 {
		t.Fatalf("connections opened at the limit = %d, want 2", n)
	}

	// One closes: the third is accepted and answered.
	a.c.Close()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := readResponse(c)
	if err != nil || resp != 200 {
		t.Fatalf("third client after one closed: %d, %v", resp, err)
	}
	if n := obs.opened.Load(); n != 3 {
		t.Fatalf("connections opened = %d, want 3", n)
	}
	if n := gate.InUse(); n != 2 {
		t.Fatalf("gate in use = %d, want 2 (b and the third)", n)
	}
}

// readResponse reads the response to a request already sent on k.
func readResponse(k *keepAliveConn) (int, error) {
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.ReadAll(resp.Body)
	return resp.StatusCode, err
}

func TestMaxConnectionsStopWakesTheWaitingAcceptLoop(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(*Server) error
	}{
		{"Shutdown", func(s *Server) error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return s.Shutdown(ctx)
		}},
		{"Close", (*Server).Close},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, srv, obs, gate, served := gatedProxy(t, 1)
			k := dialKeepAlive(t, addr)
			if resp, err := k.do(); err != nil || resp.StatusCode != 200 {
				t.Fatalf("a client under the limit: %v, %v", resp, err)
			}
			// The loop now waits in Acquire (the one slot is k's).
			waitFor(t, "at the limit", func() bool { return gate.InUse() == 1 && obs.opened.Load() == 1 })
			stopped := make(chan error, 1)
			go func() { stopped <- tc.stop(srv) }()
			select {
			case err := <-served:
				if !errors.Is(err, ErrServerClosed) {
					t.Fatalf("Serve returned %v, want ErrServerClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve still waits for a slot 5s after the server stopped")
			}
			if err := <-stopped; err != nil {
				t.Fatalf("stop: %v", err)
			}
			// Every slot is back once the connections are gone.
			if n := gate.InUse(); n != 0 {
				t.Fatalf("gate in use after stop = %d, want 0", n)
			}
		})
	}
}

// TestMaxConnectionsSharedGateServesEveryListener: two listeners share a
// gate of 2 (as the SO_REUSEPORT sockets of one configured listener do);
// once the second has served a connection, two arrive on the first. A loop that held a slot while
// waiting in Accept on the idle second listener would leave the second
// connection unserved.
func TestMaxConnectionsSharedGateServesEveryListener(t *testing.T) {
	gate, err := limit.NewGate(2)
	if err != nil {
		t.Fatal(err)
	}
	obs := &connCounter{}
	srv := &Server{Proxy: &Respond{Status: 200, Body: []byte("ok")}, IdleTimeout: time.Minute, Observer: obs}
	var addrs []string
	served := make(chan error, 2)
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		go func() { served <- srv.ServeWith(ln, ListenerOptions{Gate: gate}) }()
	}
	t.Cleanup(func() { srv.Close(); <-served; <-served })
	// One connection to the second listener, served and closed, has its
	// loop running and back in Accept.
	first := dialKeepAlive(t, addrs[1])
	if resp, err := first.do(); err != nil || resp.StatusCode != 200 {
		t.Fatalf("a client of the second listener: %v, %v", resp, err)
	}
	first.c.Close()
	waitFor(t, "closed", func() bool { return obs.closed.Load() == 1 })
	a, b := dialKeepAlive(t, addrs[0]), dialKeepAlive(t, addrs[0])
	for i, k := range []*keepAliveConn{a, b} {
		if resp, err := k.do(); err != nil || resp.StatusCode != 200 {
			t.Fatalf("client %d under the shared limit: %v, %v", i, resp, err)
		}
	}
	if n := gate.InUse(); n != 2 {
		t.Fatalf("gate in use = %d, want 2", n)
	}
}

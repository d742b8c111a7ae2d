package l7

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// goQuiet lets a keep-alive connection stay silent past shedAfter, so
// that it sheds its buffers and waits on a fresh goroutine. The passing of
// time is the input here, not a stand-in for an event: there is nothing
// to synchronise on, because going quiet is the absence of traffic.
func goQuiet() { time.Sleep(3 * shedAfter) }

// respondServer serves fixed answers and stops when the test ends.
func respondServer(t *testing.T, idle time.Duration) (*Server, string) {
	t.Helper()
	srv := &Server{Proxy: &Respond{Status: 200, Body: []byte("ok")}, IdleTimeout: idle}
	return srv, startProxy(t, srv)
}

// A connection that went quiet serves its next requests as before, one at
// a time or pipelined.
func TestQuietConnectionServesTheNextRequests(t *testing.T) {
	tests := []struct {
		name      string
		pipelined int
	}{
		{"one request", 1},
		{"three pipelined requests", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := respondServer(t, time.Minute)
			k := dialKeepAlive(t, addr)
			for round := range 2 {
				if _, err := k.do(); err != nil {
					t.Fatalf("round %d, first request: %v", round, err)
				}
				goQuiet()
				for range tc.pipelined {
					fmt.Fprint(k.c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				}
				for i := range tc.pipelined {
					resp, err := readOK(k)
					if err != nil {
						t.Fatalf("round %d, request %d after going quiet: %v", round, i, err)
					}
					if resp != "ok" {
						t.Fatalf("round %d, request %d: body %q, want ok", round, i, resp)
					}
				}
			}
		})
	}
}

// readOK reads one response from k and returns its body, failing on a
// status other than 200.
func readOK(k *keepAliveConn) (string, error) {
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// A quiet connection still ends at the idle timeout, with a FIN.
func TestQuietConnectionClosesAtTheIdleTimeout(t *testing.T) {
	const idle = 4 * shedAfter
	_, addr := respondServer(t, idle)
	k := dialKeepAlive(t, addr)
	if _, err := k.do(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := k.r.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	if waited := time.Since(start); waited < idle*3/4 || waited > 5*time.Second {
		t.Fatalf("closed after %v, want about the %v idle timeout", waited, idle)
	}
}

// Shutdown ends a quiet connection without a reset and returns; Close
// cuts one and returns: a connection waiting in the quiet set, on no
// goroutine, is still the server's to end.
func TestQuietConnectionsEndWithTheServer(t *testing.T) {
	tests := []struct {
		name string
		stop func(*Server) error
	}{
		{"Shutdown", func(s *Server) error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return s.Shutdown(ctx)
		}},
		{"Close", func(s *Server) error { return s.Close() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := respondServer(t, time.Minute)
			k := dialKeepAlive(t, addr)
			if _, err := k.do(); err != nil {
				t.Fatal(err)
			}
			goQuiet()
			done := make(chan error, 1)
			go func() { done <- tc.stop(srv) }()
			_, err := k.r.ReadByte()
			if err != io.EOF && !(tc.name == "Close" && errors.Is(err, syscall.ECONNRESET)) {
				t.Fatalf("quiet connection after %s: %v, want EOF", tc.name, err)
			}
			k.c.Close()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s did not return within 5s", tc.name)
			}
		})
	}
}

// A client that goes away while its connection is quiet leaves no
// connection behind.
func TestQuietConnectionNoticesTheClientLeaving(t *testing.T) {
	srv, addr := respondServer(t, time.Minute)
	k := dialKeepAlive(t, addr)
	if _, err := k.do(); err != nil {
		t.Fatal(err)
	}
	goQuiet()
	k.c.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		srv.mu.Lock()
		open := len(srv.conns)
		srv.mu.Unlock()
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open 5s after the client left", open)
		}
	}
}

// A client that sends a last request and closes its side at once must
// still be answered: the quiet set closes a connection whose client left
// only when nothing came before the FIN.
func TestQuietConnectionAnswersARequestSentWithTheFIN(t *testing.T) {
	_, addr := respondServer(t, time.Minute)
	k := dialKeepAlive(t, addr)
	if _, err := k.do(); err != nil {
		t.Fatal(err)
	}
	goQuiet()
	if _, err := io.WriteString(k.c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	k.c.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		t.Fatalf("last request before the FIN: %v", err)
	}
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

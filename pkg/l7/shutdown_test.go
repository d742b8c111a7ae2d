package l7

import (
	"bufio"
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

// shutdownProxy serves a Respond on loopback and returns its address and
// a function that starts a graceful Shutdown in the background.
func shutdownProxy(t *testing.T) (addr string, shutdown func() <-chan error) {
	t.Helper()
	srv := &Server{Proxy: &Respond{Status: 200, Body: []byte("ok")}, IdleTimeout: time.Minute}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-served })
	return ln.Addr().String(), func() <-chan error {
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done <- srv.Shutdown(ctx)
		}()
		return done
	}
}

// keepAliveConn is a raw HTTP/1.1 client connection.
type keepAliveConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAliveConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &keepAliveConn{c: c, r: bufio.NewReader(c)}
}

func (k *keepAliveConn) do() (*http.Response, error) {
	if _, err := fmt.Fprint(k.c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.ReadAll(resp.Body)
	return resp, err
}

// waitNotAccepting polls until addr refuses connections: Shutdown has
// begun.
func waitNotAccepting(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		c.Close()
	}
	t.Fatalf("%s still accepts 5s after Shutdown", addr)
}

// A keep-alive client that sends its next request soon after a graceful
// shutdown began is answered, with Connection: close, instead of losing
// the race with a close: an upgrade under load makes no client retry.
func TestShutdownAnswersTheNextRequestOfABusyKeepAliveClient(t *testing.T) {
	addr, shutdown := shutdownProxy(t)
	k := dialKeepAlive(t, addr)
	if _, err := k.do(); err != nil {
		t.Fatal(err)
	}
	done := shutdown()
	waitNotAccepting(t, addr)
	resp, err := k.do()
	if err != nil {
		t.Fatalf("request during the shutdown grace: %v", err)
	}
	if resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("status %d, Connection: close %v; want 200 and close", resp.StatusCode, resp.Close)
	}
	if _, err := k.r.ReadByte(); err != io.EOF {
		t.Fatalf("after the last response: %v, want EOF", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// A connection that stays idle through the grace is closed with a FIN,
// and Shutdown returns soon after, not at the idle timeout. A request
// sent after that close is not answered, but it meets an orderly close
// (EOF), never a reset, so the client knows it was not processed.
func TestShutdownClosesIdleConnectionsWithoutAReset(t *testing.T) {
	addr, shutdown := shutdownProxy(t)
	k := dialKeepAlive(t, addr)
	if _, err := k.do(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	done := shutdown()
	if _, err := k.r.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection during shutdown: %v, want EOF", err)
	}
	if waited := time.Since(start); waited < shutdownIdleGrace/2 {
		t.Fatalf("idle connection closed after %v, before the %v grace", waited, shutdownIdleGrace)
	}
	// The server lingers: a late request is read and dropped, not reset.
	fmt.Fprint(k.c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := k.r.ReadByte(); errors.Is(err, syscall.ECONNRESET) || err != io.EOF {
		t.Fatalf("late request: %v, want EOF", err)
	}
	k.c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return within 5s of its idle connection closing")
	}
}

// A Serve that starts once Shutdown has begun returns ErrServerClosed and
// closes its listener, which then refuses connections: a listener
// registered too late to be closed by Shutdown must not go on queueing
// them.
func TestServeAfterShutdownClosesItsListener(t *testing.T) {
	srv := &Server{Proxy: &Respond{Status: 200}}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err == nil {
		c.Close()
		t.Fatalf("%s accepted a connection after Serve returned", ln.Addr())
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Serve returned: %v, want connection refused", err)
	}
}

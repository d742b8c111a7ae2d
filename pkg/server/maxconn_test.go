package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// keepAlive is a raw HTTP/1.1 keep-alive client connection.
type keepAlive struct {
	c net.Conn
	r *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &keepAlive{c: c, r: bufio.NewReader(c)}
}

func (k *keepAlive) send() error {
	_, err := fmt.Fprint(k.c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	return err
}

func (k *keepAlive) read() (string, error) {
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return "", err
	}
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// TestMaxConnectionsFromTheConfiguration: a listener with
// max_connections: 2 holds two keep-alive connections and leaves a third
// in the kernel's queue until one of them closes, while the service's
// other listener, without a limit, goes on serving; every socket of a
// listener shares its one limit.
func TestMaxConnectionsFromTheConfiguration(t *testing.T) {
	p := freePorts(t, 2)
	limited, open := fmt.Sprintf("127.0.0.1:%d", p[0]), fmt.Sprintf("127.0.0.1:%d", p[1])
	srv := listenFrom(t, fmt.Sprintf(`version: 1
threads: 2
services:
  - name: a
    kind: respond
    body: "ok"
    listen:
      - {addr: %q, max_connections: 2}
      - %q
`, limited, open), nil)
	svc := srv.services[0]
	gate := svc.serveOpts[0].Gate
	if gate == nil || gate.Max() != 2 {
		t.Fatalf("the limited listener's gate is %v, want one of 2", gate)
	}
	for i, m := range svc.sockets {
		want := gate
		if m.index == 1 {
			want = nil
		}
		if got := svc.serveOpts[i].Gate; got != want {
			t.Errorf("socket %d of listener %d has gate %p, want %p (one per configured listener)", m.member, m.index, got, want)
		}
	}
	serveUntilReady(t, srv)

	a, b := dialKeepAlive(t, limited), dialKeepAlive(t, limited)
	for _, k := range []*keepAlive{a, b} {
		if err := k.send(); err != nil {
			t.Fatal(err)
		}
		if body, err := k.read(); err != nil || body != "ok" {
			t.Fatalf("a client under the limit: %q, %v", body, err)
		}
	}
	if n := gate.InUse(); n != 2 {
		t.Fatalf("gate in use = %d, want 2", n)
	}
	c := dialKeepAlive(t, limited) // queued by the kernel, not accepted
	if err := c.send(); err != nil {
		t.Fatal(err)
	}
	c.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.r.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a third client at the limit read %v, want no answer", err)
	}
	other := dialKeepAlive(t, open)
	if err := other.send(); err != nil {
		t.Fatal(err)
	}
	if body, err := other.read(); err != nil || body != "ok" {
		t.Fatalf("the listener without a limit: %q, %v", body, err)
	}

	a.c.Close()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if body, err := c.read(); err != nil || body != "ok" {
		t.Fatalf("the third client after one closed: %q, %v (gate in use %d, sockets %d)", body, err, gate.InUse(), len(svc.sockets))
	}
}

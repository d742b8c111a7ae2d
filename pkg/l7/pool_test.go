package l7

import (
	"io"
	"net"
	"testing"
	"time"
)

// pipeConn is an upstreamConn over one end of a net.Pipe, as the pool's
// dial would build it, and the other end.
func pipeConn(t *testing.T, p *Pool) (*upstreamConn, net.Conn) {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	uc := newUpstreamConn(client, client, poolKey{addr: "pipe"})
	uc.unshed(&p.bufs)
	return uc, server
}

// An idle pooled connection holds no write buffer, and gets one back,
// working, when it is reused; one with bytes still buffered keeps them.
func TestIdleUpstreamConnectionsShedTheirBuffers(t *testing.T) {
	tests := []struct {
		name     string
		pending  string // written but not flushed before the put
		wantShed bool
	}{
		{"flushed", "", true},
		{"bytes still buffered", "x", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPool(4)
			t.Cleanup(p.Close)
			uc, server := pipeConn(t, p)
			uc.w.WriteString(tc.pending)
			p.put(uc)
			if shed := uc.w == nil; shed != tc.wantShed {
				t.Fatalf("after put: writer shed %v, want %v", shed, tc.wantShed)
			}
			got := p.get(uc.key, time.Minute)
			if got != uc {
				t.Fatalf("get returned %p, want the pooled %p", got, uc)
			}
			if uc.w == nil {
				t.Fatal("a reused connection has no writer")
			}
			if n := uc.w.Buffered(); n != len(tc.pending) {
				t.Fatalf("reused writer holds %d bytes, want the %d left in it", n, len(tc.pending))
			}
			const msg = "GET / HTTP/1.1\r\n\r\n"
			done := make(chan error, 1)
			go func() {
				uc.w.WriteString(msg)
				done <- uc.w.Flush()
			}()
			buf := make([]byte, len(tc.pending)+len(msg))
			if _, err := io.ReadFull(server, buf); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if string(buf) != tc.pending+msg {
				t.Fatalf("upstream read %q, want %q", buf, tc.pending+msg)
			}
		})
	}
}

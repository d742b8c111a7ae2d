package l7

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/lb"
	"golang.org/x/sys/unix"
)

// The last response of a connection that closes after it, when small and
// of known length, reaches the client in the segment that carries the FIN:
// the client receives the SYN-ACK and that one segment, nothing else. A
// larger or streamed last response still arrives whole before the FIN,
// and a keep-alive response leaves at once, without one.
func TestLastResponseLeavesWithTheFIN(t *testing.T) {
	origin := startProxy(t, &Server{Proxy: &Respond{Status: 200, Body: []byte("from origin")}})
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<10) // 64 KiB
	tests := []struct {
		name    string
		proxy   Proxy
		request string
		body    string
		// segments is what the client must receive in all (SYN-ACK
		// included) once it has read to EOF; 0: not checked.
		segments uint32
	}{
		{"answered, Connection: close", &Respond{Status: 200, Body: []byte("ok")},
			"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "ok", 2},
		{"answered, HTTP/1.0", &Respond{Status: 200, Body: []byte("ok")},
			"GET / HTTP/1.0\r\nHost: x\r\n\r\n", "ok", 2},
		{"answered without a body", &Respond{Status: 204},
			"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "", 2},
		{"proxied, Connection: close", nil,
			"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "from origin", 2},
		{"answered, 64 KiB body", &Respond{Status: 200, Body: big},
			"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", string(big), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.proxy
			if p == nil {
				p = &Balanced{LB: balancedPool(t, &lb.RoundRobin{}, lb.Options{}, origin)}
			}
			addr := startDelayedAckProxy(t, &Server{Proxy: p})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, tc.request); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(c)
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || string(body) != tc.body {
				t.Fatalf("body %.20q (%d bytes), %v; want %.20q (%d bytes)", body, len(body), err, tc.body, len(tc.body))
			}
			if n, err := r.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
				t.Fatalf("after the response: %d bytes, %v; want EOF", n, err)
			}
			if got := testenv.TCPInfo(t, c.(*net.TCPConn)).Segs_in; tc.segments != 0 && got != tc.segments {
				t.Errorf("client received %d segments, want %d (SYN-ACK, then the response with the FIN)", got, tc.segments)
			}
		})
	}
	t.Run("keep-alive", func(t *testing.T) {
		addr := startDelayedAckProxy(t, &Server{Proxy: &Respond{Status: 200, Body: []byte("ok")}})
		k := dialKeepAlive(t, addr)
		for i := range 2 {
			resp, err := k.do()
			if err != nil || resp.Close {
				t.Fatalf("request %d: close %v, %v; want a kept-alive response", i, resp != nil && resp.Close, err)
			}
		}
	})
}

// startDelayedAckProxy serves srv like startProxy, on a listener whose
// connections start in delayed-ACK mode as weir's do (pkg/reuseport), so
// that no acknowledgement of the request comes before the response.
func startDelayedAckProxy(t *testing.T, srv *Server) string {
	t.Helper()
	// Plain TCP, as pkg/reuseport binds: MPTCP, which Go listens with by
	// default, has no TCP_QUICKACK.
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testenv.SetSockopt(t, ln.(*net.TCPListener), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 0)
	return serveOn(t, srv, ln)
}

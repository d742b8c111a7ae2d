package l4

import (
	"io"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
)

// backendStats reads the counters attached to addr's backend.
func backendStats(t testing.TB, pool *lb.LoadBalancer[lb.Maglev], addr string) BackendStats {
	t.Helper()
	for _, b := range pool.Backends() {
		if b.Addr == addr {
			return b.Ext().(*BackendCounters).Snapshot()
		}
	}
	t.Fatalf("no backend %s", addr)
	return BackendStats{}
}

// TestBackendCountersTCP: each connection counts as a flow of the backend
// that served it, with the bytes sent to it.
func TestBackendCountersTCP(t *testing.T) {
	forEachEngine(t, func(t *testing.T, portable bool) {
		be := startTCPBackend(t, "127.0.0.1", echo)
		pool := newPool(t, nil, []string{be.addr})
		addr := serveTCP(t, &TCPProxy{portable: portable, LB: pool}, "127.0.0.1")
		for range 3 {
			c := dialTCP(t, addr)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			c.CloseWrite()
			if got, err := io.ReadAll(c); err != nil || string(got) != "hello" {
				t.Fatalf("echo: %q %v", got, err)
			}
			c.Close()
		}
		eventually(t, "3 flows and 15 bytes counted", func() bool {
			st := backendStats(t, pool, be.addr)
			return st.Flows == 3 && st.Bytes == 15
		})
	})
}

// TestBackendCountersUDP: a flow's datagrams count as its backend's.
func TestBackendCountersUDP(t *testing.T) {
	be := startUDPBackend(t, "127.0.0.1", 7)
	pool := newPool(t, nil, []string{be.LocalAddr().String()})
	addr := serveUDP(t, &UDPProxy{LB: pool}, "127.0.0.1")
	c := dialUDP(t, addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	for range 4 {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	// The proxy counts a datagram after sending it on, so the reply
	// can come back before the count of the last.
	eventually(t, "1 flow, 4 packets and 16 bytes counted", func() bool {
		st := backendStats(t, pool, be.LocalAddr().String())
		return st.Flows == 1 && st.Packets == 4 && st.Bytes == 16
	})
}

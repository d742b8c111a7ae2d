package l4

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
)

// Datagrams from many clients reach the backends Maglev picks for them;
// every reply returns to the client that asked, and a client's flow
// stays on one backend.
func TestUDPEcho(t *testing.T) {
	for _, host := range loopbacks(t) {
		t.Run(host, func(t *testing.T) {
			var addrs []string
			for i := range 3 {
				addrs = append(addrs, startUDPBackend(t, host, byte(i)).LocalAddr().String())
			}
			pool := newPool(t, nil, addrs)
			proxy := &UDPProxy{LB: pool}
			addr := serveUDP(t, proxy, host)

			// Add clients until they span at least two backends.
			reached := map[byte]bool{}
			clients := 0
			for ; clients < 64 && (clients < 12 || len(reached) < 2); clients++ {
				c := dialUDP(t, addr)
				want := expectedBackend(t, pool, clientAddrPort(c))
				for j := range 3 {
					// The payload names the client, so a reply sent to the
					// wrong client fails the comparison in udpRoundTrip.
					id := udpRoundTrip(t, c, "client "+itoa(clients)+" datagram "+itoa(j))
					if addrs[id] != want {
						t.Fatalf("client %d datagram %d reached %s, want %s", clients, j, addrs[id], want)
					}
					reached[id] = true
				}
			}
			if len(reached) < 2 {
				t.Fatalf("%d clients all reached one backend", clients)
			}
			// A datagram is counted once sent, which may be just after
			// the client got the reply.
			eventually(t, "every datagram counted", func() bool {
				s := proxy.Stats()
				return s.Datagrams == uint64(3*clients) && s.Replies == uint64(3*clients)
			})
			s := proxy.Stats()
			if s.Flows != uint64(clients) || s.ActiveFlows != uint64(clients) ||
				s.Datagrams != uint64(3*clients) || s.Replies != uint64(3*clients) || s.Drops != 0 {
				t.Errorf("stats %+v: want %d flows and %d datagrams each way, no drops", s, clients, 3*clients)
			}
		})
	}
}

// A flow without traffic for IdleTimeout ends and releases its backend;
// the client's next datagram opens a new one.
func TestUDPFlowExpires(t *testing.T) {
	backend := startUDPBackend(t, "127.0.0.1", 0).LocalAddr().String()
	pool := newPool(t, nil, []string{backend})
	proxy := &UDPProxy{LB: pool, IdleTimeout: 50 * time.Millisecond}
	c := dialUDP(t, serveUDP(t, proxy, "127.0.0.1"))

	udpRoundTrip(t, c, "first")
	if n := inFlight(t, pool, backend); n != 1 {
		t.Errorf("in flight = %d with one flow open, want 1", n)
	}
	eventually(t, "the flow to expire", func() bool {
		s := proxy.Stats()
		return s.ActiveFlows == 0 && s.ExpiredFlows == 1
	})
	if n := inFlight(t, pool, backend); n != 0 {
		t.Errorf("in flight = %d after the flow expired, want 0", n)
	}
	udpRoundTrip(t, c, "again")
	if s := proxy.Stats(); s.Flows != 2 || s.ActiveFlows != 1 {
		t.Errorf("stats %+v: want a second flow, open", s)
	}
}

// Traffic keeps a flow open past IdleTimeout.
func TestUDPActiveFlowStays(t *testing.T) {
	backend := startUDPBackend(t, "127.0.0.1", 0).LocalAddr().String()
	const idle = 200 * time.Millisecond
	proxy := &UDPProxy{LB: newPool(t, nil, []string{backend}), IdleTimeout: idle}
	c := dialUDP(t, serveUDP(t, proxy, "127.0.0.1"))
	tick := time.NewTicker(idle / 5)
	defer tick.Stop()
	for i := range 15 { // three timeouts
		<-tick.C
		udpRoundTrip(t, c, "ping "+itoa(i))
	}
	if s := proxy.Stats(); s.Flows != 1 || s.ExpiredFlows != 0 {
		t.Errorf("stats %+v: the active flow expired", s)
	}
}

// When health checks mark a flow's backend down, the flow's next datagram
// moves it to a live backend, and the dead one is released.
func TestUDPFlowMovesOffDeadBackend(t *testing.T) {
	for _, host := range loopbacks(t) {
		t.Run(host, func(t *testing.T) {
			conns := []*net.UDPConn{startUDPBackend(t, host, 0), startUDPBackend(t, host, 1)}
			addrs := []string{conns[0].LocalAddr().String(), conns[1].LocalAddr().String()}
			check := &switchCheck{}
			pool := newPool(t, check, addrs)
			proxy := &UDPProxy{LB: pool}
			c := dialUDP(t, serveUDP(t, proxy, host))

			first := udpRoundTrip(t, c, "before")
			conns[first].Close()                       // the backend dies…
			check.setDown(t, pool, addrs[first], true) // …and its checks notice
			if second := udpRoundTrip(t, c, "after"); second == first {
				t.Fatalf("the flow stayed on the dead backend %s", addrs[first])
			}
			if s := proxy.Stats(); s.MovedFlows != 1 || s.ActiveFlows != 1 || s.Flows != 2 {
				t.Errorf("stats %+v: want one flow, moved once", s)
			}
			if n := inFlight(t, pool, addrs[first]); n != 0 {
				t.Errorf("the dead backend has %d in flight, want 0", n)
			}
			if n := inFlight(t, pool, addrs[1-first]); n != 1 {
				t.Errorf("the live backend has %d in flight, want 1", n)
			}
		})
	}
}

// A datagram that would open a flow beyond MaxFlows is dropped and
// counted; the open flows keep working.
func TestUDPMaxFlows(t *testing.T) {
	backend := startUDPBackend(t, "127.0.0.1", 0).LocalAddr().String()
	proxy := &UDPProxy{LB: newPool(t, nil, []string{backend}), MaxFlows: 2}
	addr := serveUDP(t, proxy, "127.0.0.1")
	a, b, extra := dialUDP(t, addr), dialUDP(t, addr), dialUDP(t, addr)
	udpRoundTrip(t, a, "a")
	udpRoundTrip(t, b, "b")
	for i := range 3 {
		if _, err := extra.Write([]byte("one too many")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the extra datagram to be dropped", func() bool {
			return proxy.Stats().FlowLimitDrops == uint64(i+1)
		})
	}
	udpRoundTrip(t, a, "a again")
	udpRoundTrip(t, b, "b again")
	if s := proxy.Stats(); s.Flows != 2 || s.ActiveFlows != 2 || s.Drops != 3 {
		t.Errorf("stats %+v: want 2 flows and 3 drops", s)
	}
}

// With no usable backend, datagrams are dropped, counted and logged.
func TestUDPNoBackend(t *testing.T) {
	var logs testenv.Buffer
	proxy := &UDPProxy{LB: newPool(t, nil, nil), Logger: newTestLogger(&logs)}
	c := dialUDP(t, serveUDP(t, proxy, "127.0.0.1"))
	if _, err := c.Write([]byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	// The drop is counted before it is logged: wait for both.
	eventually(t, "the datagram to be dropped and logged", func() bool {
		return proxy.Stats().NoBackend == 1 && strings.Contains(logs.String(), "no usable backend")
	})
	if s := proxy.Stats(); s.Drops != 1 || s.Flows != 0 {
		t.Errorf("stats %+v: want one drop, no flow", s)
	}
	if !strings.Contains(logs.String(), "no usable backend") || !strings.Contains(logs.String(), c.LocalAddr().String()) {
		t.Errorf("the log does not say which client found no backend:\n%s", logs.String())
	}
}

// wrappedPacketConn hides the *net.UDPConn, as a user's wrapper would.
type wrappedPacketConn struct{ net.PacketConn }

// Any PacketConn reporting UDP addresses is served.
func TestUDPGenericPacketConn(t *testing.T) {
	backend := startUDPBackend(t, "127.0.0.1", 7).LocalAddr().String()
	proxy := &UDPProxy{LB: newPool(t, nil, []string{backend})}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := dialUDP(t, serveUDPOn(t, proxy, wrappedPacketConn{pc}))
	if id := udpRoundTrip(t, c, "through a wrapper"); id != 7 {
		t.Errorf("reply from backend %d, want 7", id)
	}
}

// Close ends Serve and every flow, releasing their backends.
func TestUDPClose(t *testing.T) {
	backend := startUDPBackend(t, "127.0.0.1", 0).LocalAddr().String()
	pool := newPool(t, nil, []string{backend})
	proxy := &UDPProxy{LB: pool}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- proxy.Serve(pc) }()
	for i := range 4 {
		udpRoundTrip(t, dialUDP(t, pc.LocalAddr().String()), "client "+itoa(i))
	}
	proxy.Close()
	if err := <-served; !errors.Is(err, ErrProxyClosed) {
		t.Errorf("Serve = %v, want ErrProxyClosed", err)
	}
	if s := proxy.Stats(); s.ActiveFlows != 0 {
		t.Errorf("%d flows open after Close", s.ActiveFlows)
	}
	if n := inFlight(t, pool, backend); n != 0 {
		t.Errorf("in flight = %d after Close, want 0", n)
	}
	again, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := proxy.Serve(again); !errors.Is(err, ErrProxyClosed) {
		t.Errorf("Serve after Close = %v, want ErrProxyClosed", err)
	}
}

func TestUDPServeWithoutLB(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := (&UDPProxy{}).Serve(pc); !errors.Is(err, ErrNoSelector) {
		t.Errorf("Serve = %v, want ErrNoSelector", err)
	}
}

// Once a flow exists, a datagram's round trip through the proxy — read,
// backend check, forward, reply, send back — allocates nothing.
func TestUDPSteadyPathAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers on purpose")
	}
	for _, host := range loopbacks(t) {
		t.Run(host, func(t *testing.T) {
			backend := startUDPBackend(t, host, 0).LocalAddr().String()
			proxy := &UDPProxy{LB: newPool(t, nil, []string{backend})}
			c := dialUDP(t, serveUDP(t, proxy, host))
			msg, reply := []byte("steady"), make([]byte, 64)
			roundTrip := func() {
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Read(reply); err != nil {
					t.Fatal(err)
				}
			}
			roundTrip() // opens the flow
			if allocs := testing.AllocsPerRun(500, roundTrip); allocs != 0 {
				t.Errorf("%v allocations per round trip, want 0", allocs)
			}
		})
	}
}

func TestFlowKey(t *testing.T) {
	tests := []struct {
		a, b  string
		equal bool
	}{
		{"192.0.2.1:53", "192.0.2.1:53", true},
		{"192.0.2.1:53", "[::ffff:192.0.2.1]:53", true}, // a dual-stack socket's view of the same client
		{"192.0.2.1:53", "192.0.2.1:54", false},
		{"192.0.2.1:53", "192.0.2.2:53", false},
		{"[2001:db8::1]:53", "[2001:db8::2]:53", false},
	}
	for _, tt := range tests {
		ka, kb := flowKey(netip.MustParseAddrPort(tt.a)), flowKey(netip.MustParseAddrPort(tt.b))
		if (ka == kb) != tt.equal {
			t.Errorf("flowKey(%s) == flowKey(%s) is %v, want %v", tt.a, tt.b, ka == kb, tt.equal)
		}
	}
}

// When a served socket fails (here, closed by its owner), Serve returns
// the error naming it, and the socket's flows end with it.
func TestUDPServeEndsWithItsSocket(t *testing.T) {
	backend := startUDPBackend(t, "127.0.0.1", 0).LocalAddr().String()
	pool := newPool(t, nil, []string{backend})
	proxy := &UDPProxy{LB: pool}
	defer proxy.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- proxy.Serve(pc) }()
	udpRoundTrip(t, dialUDP(t, pc.LocalAddr().String()), "hello")
	pc.Close()
	select {
	case err := <-served:
		if !errors.Is(err, net.ErrClosed) || !strings.Contains(err.Error(), pc.LocalAddr().String()) {
			t.Errorf("Serve = %v, want net.ErrClosed naming %s", err, pc.LocalAddr())
		}
	case <-time.After(testTimeout):
		t.Fatal("Serve did not return")
	}
	if s := proxy.Stats(); s.ActiveFlows != 0 {
		t.Errorf("%d flows outlived their socket", s.ActiveFlows)
	}
	if n := inFlight(t, pool, backend); n != 0 {
		t.Errorf("in flight = %d, want 0", n)
	}
}

package l4

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/lb"
)

// testTimeout bounds every wait in the tests.
const testTimeout = 10 * time.Second

// noDeadline clears a deadline, for benchmarks that may run longer.
var noDeadline time.Time

// loopbacks returns the loopback hosts to run a test on: 127.0.0.1, and
// ::1 where the machine has IPv6.
func loopbacks(t testing.TB) []string {
	t.Helper()
	hosts := []string{"127.0.0.1"}
	if l, err := net.Listen("tcp", "[::1]:0"); err == nil {
		l.Close()
		hosts = append(hosts, "::1")
	} else {
		t.Logf("no IPv6 loopback (%v): testing IPv4 only", err)
	}
	return hosts
}

// listenAddr is host with an ephemeral port, for Listen.
func listenAddr(host string) string { return net.JoinHostPort(host, "0") }

// switchCheck is a HealthCheck the test turns backends up and down with.
type switchCheck struct {
	mu   sync.Mutex
	down map[string]bool
}

func (s *switchCheck) Check(_ context.Context, b *lb.Backend) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down[b.Addr] {
		return errors.New("marked down by the test")
	}
	return nil
}

// setDown marks addr down (or up) and runs a health round, so that the
// pool sees it before setDown returns.
func (s *switchCheck) setDown(t testing.TB, pool *lb.LoadBalancer[lb.Maglev], addr string, down bool) {
	t.Helper()
	s.mu.Lock()
	if s.down == nil {
		s.down = map[string]bool{}
	}
	s.down[addr] = down
	s.mu.Unlock()
	pool.CheckHealth(context.Background())
}

// newPool returns a Maglev LoadBalancer over addrs (weights 1 unless
// given), health-checked by check (nil: always healthy), already updated.
func newPool(t testing.TB, check lb.HealthCheck, addrs []string, weights ...int) *lb.LoadBalancer[lb.Maglev] {
	t.Helper()
	backends := make([]lb.Backend, len(addrs))
	for i, a := range addrs {
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		backends[i] = lb.MustBackend(a, w)
	}
	static, err := lb.NewStatic(backends...)
	if err != nil {
		t.Fatal(err)
	}
	opts := lb.Options{Discovery: static, Attach: NewBackendCounters}
	if check != nil {
		opts.HealthCheck = check
	}
	pool, err := lb.New(lb.Maglev{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	return pool
}

// expectedBackend is the backend pool picks for a client at ap, as the
// proxy keys it.
func expectedBackend(t testing.TB, pool *lb.LoadBalancer[lb.Maglev], ap netip.AddrPort) string {
	t.Helper()
	key := flowKey(ap)
	b, ok := pool.Select(key[:], anyCandidate)
	if !ok {
		t.Fatalf("no backend for %v", ap)
	}
	return b.Addr
}

// inFlight returns the in-flight count of the backend at addr.
func inFlight(t testing.TB, pool *lb.LoadBalancer[lb.Maglev], addr string) int64 {
	t.Helper()
	for _, s := range pool.Status() {
		if s.Backend.Addr == addr {
			return s.InFlight
		}
	}
	t.Fatalf("backend %s not in the pool", addr)
	return 0
}

// eventually polls cond until it holds, failing after testTimeout.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func newTestLogger(l *testenv.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// --- TCP ---

// tcpBackend is a test server; handle serves each connection and closes
// it after.
type tcpBackend struct {
	addr string
	l    net.Listener
	wg   sync.WaitGroup

	mu       sync.Mutex
	accepted int
}

func startTCPBackend(t testing.TB, host string, handle func(net.Conn)) *tcpBackend {
	t.Helper()
	l, err := net.Listen("tcp", listenAddr(host))
	if err != nil {
		t.Fatal(err)
	}
	b := &tcpBackend{addr: l.Addr().String(), l: l}
	b.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.accepted++
			b.mu.Unlock()
			b.wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		b.wg.Wait()
	})
	return b
}

func (b *tcpBackend) acceptedCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.accepted
}

// echoWithID writes id, then echoes until EOF and half-closes.
func echoWithID(id byte) func(net.Conn) {
	return func(c net.Conn) {
		if _, err := c.Write([]byte{id}); err != nil {
			return
		}
		echo(c)
	}
}

// echo copies c to itself until EOF, then half-closes.
func echo(c net.Conn) {
	if _, err := io.Copy(c, c); err == nil {
		c.(*net.TCPConn).CloseWrite()
	}
}

// serveTCP runs p on a new listener on host and returns its address; the
// proxy is closed, and Serve's return checked, when the test ends.
func serveTCP(t testing.TB, p *TCPProxy, host string) string {
	t.Helper()
	// No keep-alive on accepted connections, as weir's own L4 listeners.
	lc := net.ListenConfig{KeepAlive: -1}
	l, err := lc.Listen(context.Background(), "tcp", listenAddr(host))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(l) }()
	t.Cleanup(func() {
		p.Close()
		if err := <-served; !errors.Is(err, ErrProxyClosed) {
			t.Errorf("Serve returned %v, want ErrProxyClosed", err)
		}
	})
	return l.Addr().String()
}

func dialTCP(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout))
	return c.(*net.TCPConn)
}

func clientAddrPort(c net.Conn) netip.AddrPort { return addrPortOf(c.LocalAddr()) }

// --- UDP ---

// startUDPBackend runs an echo server on host that prefixes every reply
// with id. It allocates nothing per datagram, so that allocation tests
// measure the proxy alone.
func startUDPBackend(t testing.TB, host string, id byte) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(listenAddr(host))))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, maxDatagram+1)
		buf[0] = id
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf[1:])
			if err != nil {
				return
			}
			pc.WriteToUDPAddrPort(buf[:n+1], from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return pc
}

// serveUDP runs p on a new socket on host and returns its address.
func serveUDP(t testing.TB, p *UDPProxy, host string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", listenAddr(host))
	if err != nil {
		t.Fatal(err)
	}
	return serveUDPOn(t, p, pc)
}

func serveUDPOn(t testing.TB, p *UDPProxy, pc net.PacketConn) string {
	t.Helper()
	served := make(chan error, 1)
	go func() { served <- p.Serve(pc) }()
	t.Cleanup(func() {
		p.Close()
		if err := <-served; !errors.Is(err, ErrProxyClosed) {
			t.Errorf("Serve returned %v, want ErrProxyClosed", err)
		}
	})
	return pc.LocalAddr().String()
}

func dialUDP(t testing.TB, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout))
	return c.(*net.UDPConn)
}

// udpRoundTrip sends payload and returns the id of the backend that
// echoed it, failing unless the echo carries payload back.
func udpRoundTrip(t testing.TB, c *net.UDPConn, payload string) byte {
	t.Helper()
	if _, err := c.Write([]byte(payload)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("reply to %q: %v", payload, err)
	}
	if n < 1 || string(buf[1:n]) != payload {
		t.Fatalf("reply to %q is %q", payload, buf[:n])
	}
	return buf[0]
}

func itoa(i int) string { return strconv.Itoa(i) }

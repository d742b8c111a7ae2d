package l4

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weir-lb/weir/internal/testenv"
)

// Backends the loops cannot connect to by themselves — a host name to
// resolve, a Unix socket — are dialled on a worker and handed to the loop,
// which then copies as for any other.
func TestLoopsDialElsewhere(t *testing.T) {
	tcp := startTCPBackend(t, "127.0.0.1", echo)
	_, port, _ := net.SplitHostPort(tcp.addr)
	sock := filepath.Join(t.TempDir(), "backend.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ul.Close() })
	go func() {
		for {
			c, err := ul.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	for _, tt := range []struct{ name, backend string }{
		{"host name", net.JoinHostPort("localhost", port)},
		{"unix socket", "unix:" + sock},
	} {
		t.Run(tt.name, func(t *testing.T) {
			proxy := &TCPProxy{LB: newPool(t, nil, []string{tt.backend})}
			c := dialTCP(t, serveTCP(t, proxy, "127.0.0.1"))
			roundTrip(t, c, "through a dial elsewhere")
			c.CloseWrite()
			if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
				t.Fatalf("after the half-close: %q, %v; want the end", rest, err)
			}
			eventually(t, "the connection to end", func() bool { return proxy.Stats().ActiveConnections == 0 })
			if st := proxy.Stats(); st.Connections != 1 || st.ConnectFailures != 0 || st.BytesIn != st.BytesOut {
				t.Errorf("stats = %+v, want one connection, no failure, as many bytes each way", st)
			}
		})
	}
}

// A connection attempt that gets no answer fails at the connect timeout,
// is counted and logged, and the client's connection is closed.
func TestLoopsConnectTimeout(t *testing.T) {
	var logs testenv.Buffer
	proxy := &TCPProxy{LB: newPool(t, nil, []string{fullListener(t)}), ConnectTimeout: 150 * time.Millisecond,
		Logger: newTestLogger(&logs)}
	c := dialTCP(t, serveTCP(t, proxy, "127.0.0.1"))
	start := time.Now()
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a connection no backend took", n)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond || waited > 5*time.Second {
		t.Errorf("the connection closed after %v, want about the connect timeout (150ms)", waited)
	}
	eventually(t, "the drop to be counted", func() bool { return proxy.Stats().Drops == 1 })
	if st := proxy.Stats(); st.ConnectFailures != 1 || st.ActiveConnections != 0 {
		t.Errorf("stats = %+v, want one connect failure and nothing active", st)
	}
	if !strings.Contains(logs.String(), "i/o timeout") {
		t.Errorf("the timeout was not logged:\n%s", logs.String())
	}
}

// Close cuts connections still connecting at once, without waiting for
// their connect timeout.
func TestLoopsCloseCutsConnecting(t *testing.T) {
	proxy := &TCPProxy{LB: newPool(t, nil, []string{fullListener(t)}), ConnectTimeout: time.Minute}
	c := dialTCP(t, serveTCP(t, proxy, "127.0.0.1"))
	eventually(t, "the connection attempt", func() bool { return proxy.Stats().Connections == 1 })
	start := time.Now()
	proxy.Close()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %v with a connection attempt under way", took)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the client's connection outlived Close")
	}
	if st := proxy.Stats(); st.ActiveConnections != 0 || st.Drops != 1 {
		t.Errorf("stats = %+v, want nothing active and the connection dropped", st)
	}
}

// A listener that breaks under the loops ends Serve with an error that
// names it.
func TestLoopsServeReturnsAcceptError(t *testing.T) {
	backend := startTCPBackend(t, "127.0.0.1", echo)
	proxy := &TCPProxy{LB: newPool(t, nil, []string{backend.addr})}
	t.Cleanup(func() { proxy.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	served := make(chan error, 1)
	go func() { served <- proxy.Serve(l) }()
	c := dialTCP(t, l.Addr().String())
	roundTrip(t, c, "served") // the loops accept on it
	// shutdown(2) of a listening socket closes it for accept(2), which
	// then fails with EINVAL.
	raw, _ := l.(*net.TCPListener).SyscallConn()
	raw.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RD) })
	select {
	case err := <-served:
		if err == nil || errors.Is(err, ErrProxyClosed) || !strings.Contains(err.Error(), l.Addr().String()) {
			t.Errorf("Serve = %v, want an accept error naming %s", err, l.Addr())
		}
	case <-time.After(testTimeout):
		t.Fatal("Serve went on after its listener broke")
	}
	roundTrip(t, c, "still served") // connections already accepted go on
}

// Out of descriptors, a loop stops accepting, logs it, and takes the
// connections that waited once descriptors are free again.
func TestLoopsAcceptBacksOffOnEMFILE(t *testing.T) {
	backend := startTCPBackend(t, "127.0.0.1", echo)
	var logs testenv.Buffer
	proxy := &TCPProxy{LB: newPool(t, nil, []string{backend.addr}), Logger: newTestLogger(&logs)}
	addr := serveTCP(t, proxy, "127.0.0.1")
	roundTrip(t, dialTCP(t, addr), "loops running") // nothing left to start

	var saved syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	var fillers []int
	restore := func() {
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved)
		for _, fd := range fillers {
			unix.Close(fd)
		}
		fillers = nil
	}
	t.Cleanup(restore)
	// The limit bounds descriptor numbers: a little above the highest in
	// use, every free number below it taken by /dev/null but one, which
	// the client's socket takes. The proxy's accept then has none.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	highest := 0
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			highest = max(highest, n)
		}
	}
	limit := syscall.Rlimit{Cur: uint64(highest + 8), Max: saved.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		t.Fatal(err)
	}
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fillers = append(fillers, fd)
	}
	if len(fillers) == 0 {
		restore()
		t.Fatal("no descriptor to free for the client")
	}
	unix.Close(fillers[len(fillers)-1])
	fillers = fillers[:len(fillers)-1]
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		restore()
		t.Fatalf("dial under the lowered limit: %v", err)
	}
	defer c.Close()
	eventually(t, "the accept failure to be logged", func() bool {
		return strings.Contains(logs.String(), "accept failed") && strings.Contains(logs.String(), "too many open files")
	})
	restore()
	c.SetDeadline(time.Now().Add(testTimeout))
	roundTrip(t, c, "served after EMFILE")
	if st := proxy.Stats(); st.Drops != 0 {
		t.Errorf("stats = %+v, want no connection dropped", st)
	}
}

// Shutdown ends the loops once their connections have: nothing runs on
// them after.
func TestLoopsEndWithShutdown(t *testing.T) {
	backend := startTCPBackend(t, "127.0.0.1", echo)
	proxy := &TCPProxy{LB: newPool(t, nil, []string{backend.addr})}
	c := dialTCP(t, serveTCP(t, proxy, "127.0.0.1"))
	roundTrip(t, c, "before shutdown")
	c.CloseWrite()
	io.ReadAll(c)
	if err := proxy.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	for i, l := range proxy.loops.loops {
		if l.post(func() {}) {
			t.Errorf("loop %d still takes commands after Shutdown", i)
		}
	}
}

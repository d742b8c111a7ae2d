package upgrade

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// runInOrder hands sockets over with either side starting first, and
// returns both sides. When the old process starts first, the new one
// starts only after a connection attempt failed: Offer must retry.
func runInOrder(t *testing.T, oldFirst bool, sockets []Socket) (*Inheritance, *Handoff) {
	t.Helper()
	if !oldFirst {
		return handoff(t, sockets)
	}
	ctx := testContext(t)
	path := socketPath(t)
	s := defaultSettings()
	failed := make(chan error, 1)
	s.dialFailed = func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	type offered struct {
		h   *Handoff
		err error
	}
	done := make(chan offered, 1)
	go func() {
		h, err := offer(ctx, path, sockets, nil, s)
		done <- offered{h, err}
	}()
	if err := await(t, failed, "a failed connection attempt"); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("first attempt failed with %v, want ENOENT", err)
	}
	in, err := Receive(ctx, path)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	t.Cleanup(func() { in.Close() })
	o := await(t, done, "Offer")
	if o.err != nil {
		t.Fatalf("Offer: %v", o.err)
	}
	t.Cleanup(func() { o.h.Close() })
	return in, o.h
}

// TestHandoff hands over TCP listeners (two sharing an address with
// SO_REUSEPORT, one on IPv6) and a UDP socket, in both orders, and
// checks that the new process serves what was queued before the handoff:
// it holds the very kernel sockets.
func TestHandoff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		oldFirst bool
	}{
		{"new process first", false},
		{"old process first", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			web := listenTCP(t, "127.0.0.1:0", false)
			group0 := listenTCP(t, "127.0.0.1:0", true)
			group1 := listenTCP(t, group0.Addr().String(), true)
			web6 := listenTCP(t, "[::1]:0", false)
			web6only := listenTCP6Only(t)
			dns := listenUDP(t, "127.0.0.1:0")
			sent := []Socket{
				socketOf(t, "web", 0, web),
				socketOf(t, "pool", 0, group0),
				socketOf(t, "pool", 1, group1),
				socketOf(t, "web6", 0, web6),
				socketOf(t, "dns", 0, dns),
				socketOf(t, "web6", 1, web6only),
			}
			queued, err := net.Dial("tcp", web.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer queued.Close()
			fmt.Fprint(queued, "queued before the handoff")
			client, err := net.Dial("udp", dns.LocalAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			fmt.Fprint(client, "datagram before the handoff")

			in, h := runInOrder(t, tc.oldFirst, sent)
			checkManifest(t, in.Sockets(), sent)
			if got := in.Sockets(); !got[1].Options.ReusePort || !got[2].Options.ReusePort || got[0].Options.ReusePort || !got[5].Options.V6Only {
				t.Errorf("options not carried: %+v", got)
			}

			// The old process stops accepting: only the new one's
			// descriptors keep the sockets alive.
			web.Close()
			sent[0].File.Close()
			dns.Close()
			sent[4].File.Close()
			adoptAndServeQueued(t, in, web.Addr().String(), dns.LocalAddr().String())

			ctx := testContext(t)
			waited := make(chan error, 1)
			go func() { waited <- h.Wait(ctx) }()
			if err := in.Ready(ctx); err != nil {
				t.Fatalf("Ready: %v", err)
			}
			if err := await(t, waited, "Wait"); err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if h.PeerPID() != os.Getpid() || in.PeerPID() != os.Getpid() {
				t.Errorf("peer pids %d and %d, want %d", h.PeerPID(), in.PeerPID(), os.Getpid())
			}
			// The sockets the old process still holds are intact.
			checkServes(t, web6)
		})
	}
}

// listenTCP6Only listens on [::1] with IPV6_V6ONLY, as Go does for
// the network "tcp6".
func listenTCP6Only(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

// checkManifest compares what arrived with what was sent.
func checkManifest(t *testing.T, got, sent []Socket) {
	t.Helper()
	if len(got) != len(sent) {
		t.Fatalf("received %d sockets, sent %d", len(got), len(sent))
	}
	for i := range got {
		g, s := got[i], sent[i]
		if g.File == nil {
			t.Errorf("socket %d arrived without its descriptor", i)
		}
		g.File, s.File = nil, nil
		if g != s {
			t.Errorf("socket %d arrived as %+v, sent as %+v", i, g, s)
		}
	}
}

// adoptAndServeQueued adopts the "web" and "dns" sockets and reads what
// clients sent before the handoff.
func adoptAndServeQueued(t *testing.T, in *Inheritance, webAddr, dnsAddr string) {
	t.Helper()
	ln, err := in.Listener("web", webAddr, 0, 0)
	if err != nil {
		t.Fatalf("adopt web: %v", err)
	}
	defer ln.Close()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(testTimeout))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept the queued connection: %v", err)
	}
	c.Close() // after the client's write: readAll sees it all
	pc, err := in.PacketConn("dns", dnsAddr, 0)
	if err != nil {
		t.Fatalf("adopt dns: %v", err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, 64)
	n, _, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "datagram before the handoff" {
		t.Fatalf("read the queued datagram: %q, %v", buf[:n], err)
	}
}

// TestQueuedConnectionData checks the bytes of a connection queued
// before the handoff reach the new process.
func TestQueuedConnectionData(t *testing.T) {
	web := listenTCP(t, "127.0.0.1:0", false)
	sent := []Socket{socketOf(t, "web", 0, web)}
	queued, err := net.Dial("tcp", web.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer queued.Close()
	fmt.Fprint(queued, "hello")
	in, _ := handoff(t, sent)
	web.Close()
	sent[0].File.Close()
	ln, err := in.Listener("web", web.Addr().String(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(testTimeout))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 5)
	c.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := c.Read(buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v; want hello", buf, err)
	}
}

// TestFailuresKeepOldServing makes the upgrade fail in every way, and
// checks each side learns why and the old listener still serves.
func TestFailuresKeepOldServing(t *testing.T) {
	tests := []struct {
		name string
		// fail ends the upgrade and returns the old and new side's errors
		// (nil for a side not asked).
		fail               func(t *testing.T, in *Inheritance, h *Handoff) (oldErr, newErr error)
		wantOld, wantNew   error
		oldText, newText   string
		oldError, newError bool
	}{
		{
			name: "new process aborts",
			fail: func(t *testing.T, in *Inheritance, h *Handoff) (error, error) {
				in.Abort(errors.New("services[0]: bad listen address"))
				return h.Wait(testContext(t)), in.Ready(testContext(t))
			},
			wantOld: ErrAborted, oldText: "services[0]: bad listen address",
			wantNew: ErrClosed,
		},
		{
			name: "new process closes without reporting ready",
			fail: func(t *testing.T, in *Inheritance, h *Handoff) (error, error) {
				in.Close()
				return h.Wait(testContext(t)), nil
			},
			wantOld: ErrAborted, oldText: "without reporting ready",
		},
		{
			name: "new process dies",
			fail: func(t *testing.T, in *Inheritance, h *Handoff) (error, error) {
				in.ctl.close() // what the kernel does when it exits
				return h.Wait(testContext(t)), nil
			},
			wantOld: ErrPeerGone,
		},
		{
			name: "old process gives up",
			fail: func(t *testing.T, in *Inheritance, h *Handoff) (error, error) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return h.Wait(ctx), in.Ready(testContext(t))
			},
			wantOld: context.Canceled,
			wantNew: ErrCanceled, newText: "stopped waiting for ready",
		},
		{
			name: "old process times out",
			fail: func(t *testing.T, in *Inheritance, h *Handoff) (error, error) {
				ctx, cancel := context.WithTimeout(context.Background(), shortTimeout)
				defer cancel()
				return h.Wait(ctx), in.Ready(testContext(t))
			},
			wantOld: context.DeadlineExceeded, oldText: "did not report ready in time",
			wantNew: ErrCanceled,
		},
		{
			name: "old process abandons the handoff",
			fail: func(t *testing.T, in *Inheritance, h *Handoff) (error, error) {
				h.Close()
				return h.Wait(testContext(t)), in.Ready(testContext(t))
			},
			wantOld: ErrClosed,
			wantNew: ErrCanceled, newText: "abandoned",
		},
		{
			name: "old process dies",
			fail: func(t *testing.T, in *Inheritance, h *Handoff) (error, error) {
				h.ctl.close()
				return nil, in.Ready(testContext(t))
			},
			wantNew: ErrPeerGone,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			web := listenTCP(t, "127.0.0.1:0", false)
			in, h := handoff(t, []Socket{socketOf(t, "web", 0, web)})
			oldErr, newErr := tc.fail(t, in, h)
			checkError(t, "old process", oldErr, tc.wantOld, tc.oldText)
			checkError(t, "new process", newErr, tc.wantNew, tc.newText)
			checkServes(t, web)
		})
	}
}

// checkError checks err wraps want and mentions text; a nil want means
// the side was not asked and err must be nil too.
func checkError(t *testing.T, side string, err, want error, text string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("%s: %v, want no error", side, err)
		}
		return
	}
	if !errors.Is(err, want) || !strings.Contains(fmt.Sprint(err), text) {
		t.Errorf("%s: %v, want %v mentioning %q", side, err, want, text)
	}
}

func TestAdoption(t *testing.T) {
	web := listenTCP(t, "127.0.0.1:0", false)
	dns := listenUDP(t, "127.0.0.1:0")
	webAddr, dnsAddr := web.Addr().String(), dns.LocalAddr().String()
	in, _ := handoff(t, []Socket{socketOf(t, "web", 0, web), socketOf(t, "dns", 0, dns)})

	refusals := []struct {
		name string
		get  func() error
		text string
	}{
		{"unknown service", func() error { _, err := in.Listener("api", webAddr, 0, 0); return err }, "no socket"},
		{"other index", func() error { _, err := in.Listener("web", webAddr, 1, 0); return err }, "no socket"},
		{"other address", func() error { _, err := in.Listener("web", "127.0.0.1:1", 0, 0); return err }, "no socket"},
		{"UDP as a listener", func() error { _, err := in.Listener("dns", dnsAddr, 0, 0); return err }, "as a udp socket, not tcp"},
		{"TCP as a packet conn", func() error { _, err := in.PacketConn("web", webAddr, 0); return err }, "as a tcp socket, not udp"},
	}
	for _, r := range refusals {
		if err := r.get(); !errors.Is(err, ErrNotInherited) || !strings.Contains(err.Error(), r.text) {
			t.Errorf("%s: %v, want ErrNotInherited mentioning %q", r.name, err, r.text)
		}
	}

	ln, err := in.Listener("web", webAddr, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := in.Listener("web", webAddr, 0, 0); !errors.Is(err, ErrNotInherited) || !strings.Contains(err.Error(), "adopted already") {
		t.Errorf("second adoption: %v, want ErrNotInherited", err)
	}
	left := in.Sockets()
	if left[0].File != nil || left[1].File == nil {
		t.Fatalf("after adopting web, the files are %v and %v", left[0].File, left[1].File)
	}

	in.Close()
	if _, err := left[1].File.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Close left the unadopted socket open: %v", err)
	}
	if _, err := in.PacketConn("dns", dnsAddr, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("adoption after Close: %v, want ErrClosed", err)
	}
	checkServes(t, ln.(*net.TCPListener)) // adopted sockets belong to their caller
}

// TestManySockets needs more than one record of descriptors.
func TestManySockets(t *testing.T) {
	const n = 2*maxFDsPerRecord + 20
	sent := make([]Socket, n)
	conns := make([]*net.UDPConn, n)
	for i := range sent {
		conns[i] = listenUDP(t, "127.0.0.1:0")
		sent[i] = socketOf(t, "dns", i, conns[i])
	}
	in, _ := handoff(t, sent)
	checkManifest(t, in.Sockets(), sent)

	last := n - 1
	pc, err := in.PacketConn("dns", conns[last].LocalAddr().String(), last)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	client, err := net.Dial("udp", conns[last].LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conns[last].Close()
	sent[last].File.Close()
	fmt.Fprint(client, "ping")
	pc.SetDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, 8)
	if n, _, err := pc.ReadFrom(buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("adopted socket %d read %q, %v", last, buf[:n], err)
	}
}

func TestTimeoutsAreBounded(t *testing.T) {
	t.Run("no old process", func(t *testing.T) {
		path := socketPath(t)
		ctx, cancel := context.WithTimeout(context.Background(), shortTimeout)
		defer cancel()
		_, err := Receive(ctx, path)
		if !errors.Is(err, ErrNoPeer) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "SIGQUIT") {
			t.Fatalf("Receive = %v, want ErrNoPeer and DeadlineExceeded", err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the upgrade socket was left behind: %v", err)
		}
		lock, err := acquireLock(path+lockSuffix, os.Geteuid())
		if err != nil {
			t.Fatalf("the lock was not released: %v", err)
		}
		lock.release()
	})
	t.Run("no new process", func(t *testing.T) {
		web := listenTCP(t, "127.0.0.1:0", false)
		ctx, cancel := context.WithTimeout(context.Background(), shortTimeout)
		defer cancel()
		_, err := Offer(ctx, socketPath(t), []Socket{socketOf(t, "web", 0, web)})
		if !errors.Is(err, ErrNoPeer) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "attempts") {
			t.Fatalf("Offer = %v, want ErrNoPeer and DeadlineExceeded", err)
		}
	})
	t.Run("old process never answers ready", func(t *testing.T) {
		web := listenTCP(t, "127.0.0.1:0", false)
		in, _ := handoff(t, []Socket{socketOf(t, "web", 0, web)})
		ctx, cancel := context.WithTimeout(context.Background(), shortTimeout)
		defer cancel()
		if err := in.Ready(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Ready = %v, want DeadlineExceeded", err)
		}
	})
	t.Run("default deadline", func(t *testing.T) {
		ctx, cancel := withDefaultTimeout(context.Background())
		defer cancel()
		deadline, ok := ctx.Deadline()
		if left := time.Until(deadline); !ok || left > DefaultTimeout || left < DefaultTimeout/2 {
			t.Fatalf("deadline in %v (set: %v), want about %v", left, ok, DefaultTimeout)
		}
	})
}

// TestSecondUpgradeRefused starts a second new process while one waits,
// then a second old process once the first has connected.
func TestSecondUpgradeRefused(t *testing.T) {
	path := socketPath(t)
	ctx := testContext(t)
	first := receiveAsync(t, ctx, path, defaultSettings())
	first.waitListening(t)

	_, err := Receive(ctx, path)
	want := fmt.Sprintf("pid %d holds %s.lock", os.Getpid(), path)
	if !errors.Is(err, ErrInProgress) || !strings.Contains(err.Error(), want) {
		t.Fatalf("second Receive = %v, want ErrInProgress mentioning %q", err, want)
	}

	web := listenTCP(t, "127.0.0.1:0", false)
	sockets := []Socket{socketOf(t, "web", 0, web)}
	h, err := Offer(ctx, path, sockets)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	in, err := first.result(t)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), shortTimeout)
	defer cancel()
	if _, err := Offer(short, path, sockets); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("second Offer = %v, want ErrNoPeer: the socket serves one connection", err)
	}

	in.Close()
	again, cancel2 := context.WithTimeout(context.Background(), shortTimeout)
	defer cancel2()
	if _, err := Receive(again, path); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("Receive after the upgrade ended = %v, want ErrNoPeer (the lock is free)", err)
	}
}

func TestOfferRefusesBadSockets(t *testing.T) {
	web := listenTCP(t, "127.0.0.1:0", false)
	good := socketOf(t, "web", 0, web)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	bound := boundTCPSocket(t)
	connected, err := net.Dial("udp", "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer connected.Close()
	connectedFile, err := connected.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer connectedFile.Close()

	with := func(change func(*Socket)) []Socket {
		s := good
		change(&s)
		return []Socket{s}
	}
	tests := []struct {
		name    string
		sockets []Socket
		want    error
		text    string
	}{
		{"no file", with(func(s *Socket) { s.File = nil }), ErrUnsupportedSocket, "no File"},
		{"no service", with(func(s *Socket) { s.Service = "" }), ErrManifest, "service name"},
		{"no address", with(func(s *Socket) { s.Addr = "" }), ErrManifest, "configured address"},
		{"negative index", with(func(s *Socket) { s.Index = -2 }), ErrManifest, "negative"},
		{"a pipe", with(func(s *Socket) { s.File = r }), ErrUnsupportedSocket, "not a socket"},
		{"TCP not listening", with(func(s *Socket) { s.File = bound }), ErrUnsupportedSocket, "not listening"},
		{"connected UDP", with(func(s *Socket) { s.File = connectedFile }), ErrUnsupportedSocket, "connected"},
		{"twice the same key", []Socket{good, good}, ErrManifest, "appears twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := openFDs(t)
			_, err := Offer(testContext(t), socketPath(t), tc.sockets)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Offer = %v, want %v mentioning %q", err, tc.want, tc.text)
			}
			if after := openFDs(t); after != before {
				t.Errorf("%d descriptors leaked", after-before)
			}
		})
	}
}

// boundTCPSocket is a TCP socket bound to a port but not listening.
func boundTCPSocket(t testing.TB) *os.File {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "bound")
	t.Cleanup(func() { f.Close() })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFromListenerRefuses(t *testing.T) {
	unixLn, err := net.Listen("unix", socketPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer unixLn.Close()
	web := listenTCP(t, "127.0.0.1:0", false)
	tests := []struct {
		name string
		get  func() error
		want error
		text string
	}{
		{"unix listener", func() error { _, err := FromListener("a", "x", 0, 0, unixLn); return err }, ErrUnsupportedSocket, "address family"},
		{"wrapped listener", func() error { _, err := FromListener("a", "x", 0, 0, struct{ net.Listener }{web}); return err }, ErrUnsupportedSocket, "does not expose"},
		{"empty service", func() error { _, err := FromListener("", "x", 0, 0, web); return err }, ErrManifest, "service name"},
		{"TCP as packet conn", func() error {
			_, err := fromConn(key{"a", "x", 0, 0}, web, NetworkUDP)
			return err
		}, ErrUnsupportedSocket, "not udp"},
	}
	for _, tc := range tests {
		before := openFDs(t)
		if err := tc.get(); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: %v, want %v mentioning %q", tc.name, err, tc.want, tc.text)
		}
		if after := openFDs(t); after != before {
			t.Errorf("%s: %d descriptors leaked", tc.name, after-before)
		}
	}
}

// The members of one listener's SO_REUSEPORT group share service, address
// and index; each arrives as itself, under its member number.
func TestReusePortMembersKeepTheirPlace(t *testing.T) {
	first := listenTCP(t, "127.0.0.1:0", true)
	second := listenTCP(t, first.Addr().String(), true)
	addr := first.Addr().String()
	var sent []Socket
	for member, ln := range []*net.TCPListener{first, second} {
		s, err := FromListener("web", addr, 0, member, ln)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.File.Close() })
		sent = append(sent, s)
	}
	in, _ := handoff(t, sent)
	checkManifest(t, in.Sockets(), sent)
	for member, want := range []*net.TCPListener{first, second} {
		got, err := in.Listener("web", addr, 0, member)
		if err != nil {
			t.Fatalf("adopt member %d: %v", member, err)
		}
		defer got.Close()
		if a, b := cookieOf(t, got), cookieOf(t, want); a != b {
			t.Errorf("member %d adopted socket %d, want the one handed over as it (%d)", member, a, b)
		}
	}
	if _, err := in.Listener("web", addr, 0, 2); !errors.Is(err, ErrNotInherited) {
		t.Errorf("member 2, never handed over: %v, want ErrNotInherited", err)
	}
}

// cookieOf is the kernel's identifier of ln's socket, shared by all its
// descriptors.
func cookieOf(t *testing.T, ln net.Listener) uint64 {
	t.Helper()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var c uint64
	var gerr error
	if err := rc.Control(func(fd uintptr) { c, gerr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return c
}

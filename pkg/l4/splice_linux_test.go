package l4

import (
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// open reports whether fd is an open descriptor.
func open(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return !errors.Is(err, unix.EBADF)
}

func TestPipePool(t *testing.T) {
	for _, tc := range []struct {
		name     string
		buffered int  // bytes the pipe holds when put back
		closed   bool // the pool was closed before the put
		reused   bool // the next get returns the same pipe
	}{
		{name: "empty pipe is reused", reused: true},
		{name: "pipe holding bytes is closed", buffered: 1},
		{name: "pipe put after close is closed", closed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := new(pipePool)
			p, err := pool.get()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.close)
			p.buffered = tc.buffered
			if tc.closed {
				pool.close()
			}
			pool.put(p)
			if open(p.r) != tc.reused || open(p.w) != tc.reused {
				t.Errorf("pipe open after put: %v, %v; want %v", open(p.r), open(p.w), tc.reused)
			}
			if tc.closed {
				return
			}
			q, err := pool.get()
			if err != nil {
				t.Fatal(err)
			}
			defer q.close()
			if (q == p) != tc.reused {
				t.Errorf("next get reused the pipe: %v; want %v", q == p, tc.reused)
			}
		})
	}
}

// The pool keeps at most maxFreePipes pipes and closes those beyond, and
// its close closes the ones it kept.
func TestPipePoolBound(t *testing.T) {
	pool := new(pipePool)
	pipes := make([]*pipe, maxFreePipes+1)
	for i := range pipes {
		p, err := pool.get()
		if err != nil {
			t.Fatal(err)
		}
		pipes[i] = p
	}
	for _, p := range pipes {
		pool.put(p)
	}
	if last := pipes[maxFreePipes]; open(last.r) {
		t.Errorf("pipe %d beyond the bound of %d is still open", maxFreePipes+1, maxFreePipes)
	}
	pool.close()
	for i, p := range pipes[:maxFreePipes] {
		if open(p.r) || open(p.w) {
			t.Fatalf("pipe %d kept by the pool is open after close", i)
		}
	}
}

// Bytes a slow backend cannot take at once stay in the pipe, in order,
// until it can; the pipes all come back to the pool when the transfer
// ends, none holding bytes.
func TestTCPSpliceSlowReader(t *testing.T) {
	forEachEngine(t, func(t *testing.T, portable bool) {
		const size = 8 << 20
		got := make(chan [sha256.Size]byte, 1)
		backend := startTCPBackend(t, "127.0.0.1", func(c net.Conn) {
			// Small reads, far slower than the proxy's splices: its sends
			// to the backend block again and again.
			h := sha256.New()
			io.CopyBuffer(h, struct{ io.Reader }{c}, make([]byte, 1<<10))
			got <- [sha256.Size]byte(h.Sum(nil))
		})
		proxy := &TCPProxy{portable: portable, LB: newPool(t, nil, []string{backend.addr})}
		c := dialTCP(t, serveTCP(t, proxy, "127.0.0.1"))
		c.SetDeadline(time.Now().Add(testTimeout))
		h := sha256.New()
		if _, err := io.CopyN(io.MultiWriter(c, h), rand.NewChaCha8([32]byte{2}), size); err != nil {
			t.Fatalf("send: %v", err)
		}
		c.CloseWrite()
		select {
		case sum := <-got:
			if sum != [sha256.Size]byte(h.Sum(nil)) {
				t.Fatal("the backend received other bytes than sent")
			}
		case <-time.After(testTimeout):
			t.Fatal("the backend did not see the end of the transfer")
		}
		eventually(t, "the connection to end", func() bool { return proxy.Stats().ActiveConnections == 0 })
		proxy.pipes.mu.Lock()
		defer proxy.pipes.mu.Unlock()
		if len(proxy.pipes.free) == 0 {
			t.Error("no pipe came back to the pool")
		}
		for _, p := range proxy.pipes.free {
			if p.buffered != 0 {
				t.Errorf("a pipe back in the pool holds %d bytes", p.buffered)
			}
		}
	})
}

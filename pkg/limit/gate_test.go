package limit

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestGate(t *testing.T) {
	g, err := NewGate(2)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := g.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if !g.TryAcquire() {
		t.Fatal("TryAcquire refused the second of 2 slots")
	}
	if g.TryAcquire() {
		t.Fatal("TryAcquire took a third of 2 slots")
	}
	if n := g.InUse(); n != 2 || g.Max() != 2 {
		t.Fatalf("InUse, Max = %d, %d; want 2, 2", n, g.Max())
	}

	// At the limit Acquire waits: until its context ends...
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := g.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire at the limit = %v; want it to wait out its context", err)
	}
	if n := g.InUse(); n != 2 {
		t.Fatalf("InUse = %d after a failed Acquire; want 2", n)
	}
	// ...or until a slot is released.
	done := make(chan error)
	go func() { done <- g.Acquire(ctx) }()
	g.Release()
	if err := <-done; err != nil {
		t.Fatalf("Acquire after a Release = %v", err)
	}
	g.Release()
	g.Release()
	if n := g.InUse(); n != 0 {
		t.Fatalf("InUse = %d; want 0", n)
	}
	defer func() {
		if recover() == nil {
			t.Error("Release of a free gate did not panic")
		}
	}()
	g.Release()
}

func TestNewGateInvalid(t *testing.T) {
	if _, err := NewGate(0); err == nil {
		t.Error("NewGate(0) succeeded")
	}
}

// TestGateAcceptLoop runs the accept loop of Gate's documentation on a
// loopback listener: at the limit a client's connection waits in the
// listen queue, unaccepted, until another closes.
func TestGateAcceptLoop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	g, _ := NewGate(2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loop := make(chan error, 1)
	go func() {
		for {
			if err := g.Acquire(ctx); err != nil {
				loop <- err
				return
			}
			c, err := ln.Accept()
			if err != nil {
				g.Release()
				loop <- err
				return
			}
			go func() {
				defer g.Release()
				defer c.Close()
				c.Write([]byte("hi"))
				io.Copy(io.Discard, c) // until the client closes
			}()
		}
	}()

	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	greeted := func(c net.Conn, wait time.Duration) bool {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 2)
		_, err := io.ReadFull(c, buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true
	}
	c1, c2 := dial(), dial()
	if !greeted(c1, 5*time.Second) || !greeted(c2, 5*time.Second) {
		t.Fatal("the first two clients were not served")
	}
	// The third connects (the kernel completes the handshake) but is not
	// accepted while two are open.
	c3 := dial()
	if greeted(c3, 100*time.Millisecond) {
		t.Fatal("a third client was served with the gate at 2")
	}
	c1.Close()
	if !greeted(c3, 5*time.Second) {
		t.Fatal("the third client was not served after the first left")
	}
	cancel()
	// With c2 and c3 open the loop waits in Acquire, and ends with its
	// context.
	if err := <-loop; !errors.Is(err, context.Canceled) {
		t.Errorf("accept loop ended with %v; want context.Canceled", err)
	}
}

func TestGateAllocs(t *testing.T) {
	g, _ := NewGate(4)
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		g.Acquire(ctx)
		g.TryAcquire()
		g.Release()
		g.Release()
	}); n != 0 {
		t.Errorf("Acquire/TryAcquire/Release: %v allocs; want 0", n)
	}
}

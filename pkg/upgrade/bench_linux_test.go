package upgrade

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkHandoff measures one whole handoff within a process: the new
// side creates the upgrade socket, the old side connects and sends the
// manifest and descriptors, the new side checks every descriptor, reports
// ready and is acknowledged. The time the old process's listeners go
// unattended during an upgrade is none: they accept until Wait returns.
func BenchmarkHandoff(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("sockets=%d", n), func(b *testing.B) {
			sockets := make([]Socket, n)
			for i := range sockets {
				sockets[i] = socketOf(b, "web", i, listenTCP(b, "127.0.0.1:0", false))
			}
			path := socketPath(b)
			b.ReportAllocs()
			for b.Loop() {
				handoffOnce(b, path, sockets)
			}
		})
	}
}

func handoffOnce(b *testing.B, path string, sockets []Socket) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s := defaultSettings()
	listening := make(chan struct{})
	s.listening = func() { close(listening) }
	received := make(chan error, 1)
	go func() {
		in, err := receive(ctx, path, s)
		if err == nil {
			err = in.Ready(ctx)
			in.Close()
		}
		received <- err
	}()
	select {
	case <-listening:
	case err := <-received:
		b.Fatalf("receive: %v", err)
	}
	h, err := Offer(ctx, path, sockets)
	if err != nil {
		b.Fatalf("Offer: %v", err)
	}
	if err := h.Wait(ctx); err != nil {
		b.Fatalf("Wait: %v", err)
	}
	if err := <-received; err != nil {
		b.Fatalf("receive: %v", err)
	}
}

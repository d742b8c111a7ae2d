package l7

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// Quiet connections wait without a goroutine each: many of them cost the
// server a constant few goroutines (the quiet set's watcher, and the
// workers parked once their connections went quiet, maxIdleWorkers at
// most), and each is served again when its next request comes.
func TestQuietConnectionsHoldNoGoroutine(t *testing.T) {
	const n = 3 * maxIdleWorkers
	_, addr := respondServer(t, time.Minute)
	before := runtime.NumGoroutine()
	clients := make([]*keepAliveConn, n)
	for i := range clients {
		clients[i] = dialKeepAlive(t, addr)
		if _, err := clients[i].do(); err != nil {
			t.Fatal(err)
		}
	}
	goQuiet()
	if grown := runtime.NumGoroutine() - before; grown > maxIdleWorkers+n/10 {
		t.Fatalf("%d quiet connections hold %d more goroutines, want a few at most", n, grown)
	}
	for i, k := range clients {
		fmt.Fprint(k.c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if body, err := readOK(k); err != nil || body != "ok" {
			t.Fatalf("client %d after going quiet: %q, %v", i, body, err)
		}
	}
}

func TestWaitMillis(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		next time.Time
		want int
	}{
		{time.Time{}, -1},
		{now.Add(-time.Second), 0},
		{now, 0},
		{now.Add(time.Microsecond), 1},
		{now.Add(1500 * time.Microsecond), 2},
		{now.Add(3 * time.Second), 3000},
	}
	for _, tc := range tests {
		if got := waitMillis(tc.next, now); got != tc.want {
			t.Errorf("waitMillis(now%+v) = %d, want %d", tc.next.Sub(now), got, tc.want)
		}
	}
}

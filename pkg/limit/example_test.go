package limit_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/weir-lb/weir/pkg/limit"
)

// A rate limit answered with 429 and a Retry-After in whole seconds,
// each IPv6 /64 counted as one client.
func ExampleRateLimiter() {
	l, err := limit.NewRateLimiter(limit.RateConfig{
		Rate: limit.Rate{PerSecond: 0.5, Burst: 2},
		Key:  limit.Key{IPv6Prefix: 64},
	})
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC) // time.Now() in a server
	for _, client := range []string{"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8:0:1::1"} {
		ok, retryAfter := l.Allow(netip.MustParseAddr(client), now)
		if !ok {
			secs := (retryAfter + time.Second - 1) / time.Second
			fmt.Printf("%s: 429 Too Many Requests, Retry-After: %d\n", client, secs)
			continue
		}
		fmt.Printf("%s: served\n", client)
	}
	// Output:
	// 2001:db8::1: served
	// 2001:db8::2: served
	// 2001:db8::3: 429 Too Many Requests, Retry-After: 2
	// 2001:db8:0:1::1: served
}

// At most two connections a client: a third is refused until one closes.
func ExampleConnLimiter() {
	l, err := limit.NewConnLimiter(limit.ConnConfig{Max: 2})
	if err != nil {
		panic(err)
	}
	client := netip.MustParseAddr("192.0.2.7")
	fmt.Println(l.Acquire(client), l.Acquire(client), l.Acquire(client))
	l.Release(client) // when a connection closes
	fmt.Println(l.Acquire(client), l.Count(client))
	// Output:
	// true true false
	// true 2
}

// An accept loop that stops calling Accept at a listener's
// max_connections and resumes below it.
func ExampleGate() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	gate, err := limit.NewGate(1)
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	served := make(chan string)
	go func() {
		for {
			if gate.Acquire(ctx) != nil {
				return // shutting down
			}
			conn, err := ln.Accept()
			if err != nil {
				gate.Release()
				return
			}
			go func() {
				defer gate.Release() // the next Accept may happen
				defer conn.Close()
				buf := make([]byte, 1)
				conn.Read(buf)
				served <- string(buf)
			}()
		}
	}()

	// Two clients connect; the second waits in the kernel's queue until
	// the first's connection is closed.
	for _, msg := range []string{"a", "b"} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			panic(err)
		}
		c.Write([]byte(msg))
		defer c.Close()
	}
	fmt.Println(<-served)
	fmt.Println(<-served)
	// Output:
	// a
	// b
}

package lb_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The Pingora quick start in weir: a round-robin pool of two upstreams
// with a TCP health check, one of them dead. Selection skips the dead one
// once the first health round has run.
func Example() {
	live, _ := net.Listen("tcp", "127.0.0.1:0")
	defer live.Close()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	dead.Close() // nothing listens here any more

	pool, err := lb.NewStatic(
		lb.MustBackend(live.Addr().String(), 1),
		lb.MustBackend(dead.Addr().String(), 1),
	)
	if err != nil {
		panic(err)
	}
	upstreams, err := lb.New(&lb.RoundRobin{}, lb.Options{
		Discovery:     pool,
		HealthCheck:   &lb.TCPCheck{Timeout: time.Second},
		CheckInterval: time.Second,
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := upstreams.Update(ctx); err != nil {
		panic(err)
	}
	upstreams.CheckHealth(ctx) // Run(ctx) does this every CheckInterval

	for range 3 {
		b, ok := upstreams.Select(nil, 8)
		fmt.Println(ok, b.Addr == live.Addr().String())
	}
	// Output:
	// true true
	// true true
	// true true
}

// Ketama consistent hashing sends a key to the same backend every time,
// and to the backend nginx's "hash $key consistent" would pick.
func ExampleKetama() {
	pool, _ := lb.NewStatic(
		lb.MustBackend("192.0.2.10:80", 1),
		lb.MustBackend("192.0.2.11:80", 1),
		lb.MustBackend("192.0.2.12:80", 1),
	)
	upstreams, _ := lb.New(lb.Ketama{}, lb.Options{Discovery: pool})
	upstreams.Update(context.Background())

	first, _ := upstreams.Select([]byte("/video/42.mp4"), 3)
	again, _ := upstreams.Select([]byte("/video/42.mp4"), 3)
	fmt.Println(first.Addr == again.Addr)
	// Output: true
}

// Observers learn each backend's initial state and every change; this
// is what the BPF map mirror and metrics subscribe to.
func ExampleObserverFunc() {
	pool, _ := lb.NewStatic(lb.MustBackend("192.0.2.10:80", 2))
	upstreams, _ := lb.New(&lb.RoundRobin{}, lb.Options{
		Discovery: pool,
		Observers: []lb.Observer{lb.ObserverFunc(func(e lb.Event) {
			fmt.Println(e.Kind, e.Backend.Addr, "healthy:", e.Healthy)
		})},
	})
	upstreams.Update(context.Background())
	upstreams.SetEnabled("192.0.2.10:80", false)
	// Output:
	// added 192.0.2.10:80 healthy: true
	// enabled 192.0.2.10:80 healthy: true
}

// A GRPCCheck asks a gRPC backend's standard health service about one
// service (here grpc-go's own, which the backend runs); it passes only
// on SERVING.
func ExampleGRPCCheck() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := grpc.NewServer()
	status := health.NewServer()
	healthpb.RegisterHealthServer(srv, status)
	go srv.Serve(ln)
	defer srv.Stop()

	backend := lb.MustBackend(ln.Addr().String(), 1)
	check := &lb.GRPCCheck{Service: "shop.Cart", Timeout: time.Second}

	status.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_SERVING)
	fmt.Println(check.Check(context.Background(), &backend))
	status.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_NOT_SERVING)
	err := check.Check(context.Background(), &backend)
	fmt.Println(errors.Is(err, lb.ErrNotServing))
	// Output:
	// <nil>
	// true
}

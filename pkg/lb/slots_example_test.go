package lb_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
)

// A backend that takes one request at a time: the second request waits in
// the queue for the first one's slot, and a third, with the queue of one
// full, is refused at once.
func ExampleLoadBalancer_WaitSlot() {
	one := lb.MustBackend("192.0.2.1:80", 1)
	one.MaxConnections = 1
	pool, _ := lb.NewStatic(one)
	upstreams, _ := lb.New(&lb.RoundRobin{}, lb.Options{Discovery: pool,
		Limits: &lb.ConnLimits{QueueSize: 1, QueueTimeout: time.Minute}})
	upstreams.Update(context.Background())

	first, _ := upstreams.TakeSlot(nil, 8, nil)
	if _, full := upstreams.TakeSlot(nil, 8, nil); full {
		fmt.Println("full: the next request waits")
	}
	got := make(chan *lb.Backend)
	go func() {
		b, _ := upstreams.WaitSlot(context.Background(), nil, 8, nil)
		got <- b
	}()
	for upstreams.Queue().Length == 0 {
		time.Sleep(time.Millisecond) // until the waiter is queued
	}
	if _, err := upstreams.WaitSlot(context.Background(), nil, 8, nil); errors.Is(err, lb.ErrQueueFull) {
		fmt.Println("a third is refused:", err)
	}
	first.FreeSlot() // the first request is done: its slot goes to the waiter
	second := <-got
	fmt.Println("the waiter got", second.Addr)
	second.FreeSlot()
	// Output:
	// full: the next request waits
	// a third is refused: every backend is at max_connections and the queue is full
	// the waiter got 192.0.2.1:80
}

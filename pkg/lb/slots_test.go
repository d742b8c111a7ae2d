package lb

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	m1 = "192.0.2.11:80"
	m2 = "192.0.2.12:80"
)

// limitedPool returns a LoadBalancer over backends with limits.
func limitedPool(t testing.TB, algo Algorithm, limits ConnLimits, backends ...Backend) *LoadBalancer[Algorithm] {
	t.Helper()
	d, err := NewStatic(backends...)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(algo, Options{Discovery: d, Limits: &limits})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

// withMax returns a backend at addr with a limit of its own.
func withMax(addr string, limit int) Backend {
	b := MustBackend(addr, 1)
	b.MaxConnections = limit
	return b
}

// waitQueued waits, bounded, until n requests wait in l's queue.
func waitQueued(t *testing.T, l *LoadBalancer[Algorithm], n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for l.Queue().Length != n {
		if time.Now().After(deadline) {
			t.Fatalf("queue length %d, want %d", l.Queue().Length, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSlotsNeverExceedLimit has many goroutines take and free slots over
// two limited backends, with every algorithm, and counts what each backend
// holds at once as the proxy's backends would see it.
func TestSlotsNeverExceedLimit(t *testing.T) {
	for _, a := range algorithms {
		t.Run(a.name, func(t *testing.T) {
			limits := ConnLimits{QueueSize: 64, QueueTimeout: time.Minute}
			l := limitedPool(t, a.new(), limits, withMax(m1, 3), withMax(m2, 2))
			var held [2]atomic.Int64
			var peak [2]atomic.Int64
			var wg sync.WaitGroup
			for g := range 16 {
				wg.Go(func() {
					key := []byte{byte(g)}
					for range 200 {
						b, err := l.WaitSlot(context.Background(), key, 8, nil)
						if b == nil {
							if b, _ = l.TakeSlot(key, 8, nil); b == nil {
								if err == nil {
									err = errors.New("no backend")
								}
								t.Error(err)
								return
							}
						}
						i := 0
						if b.Addr == m2 {
							i = 1
						}
						n := held[i].Add(1)
						for p := peak[i].Load(); n > p && !peak[i].CompareAndSwap(p, n); p = peak[i].Load() {
						}
						held[i].Add(-1)
						b.FreeSlot()
					}
				})
			}
			wg.Wait()
			if peak[0].Load() > 3 || peak[1].Load() > 2 {
				t.Errorf("peaks %d and %d, limits 3 and 2", peak[0].Load(), peak[1].Load())
			}
			for _, s := range l.Status() {
				if s.Slots != 0 {
					t.Errorf("%s holds %d slots after every request ended", s.Backend.Addr, s.Slots)
				}
			}
			if q := l.Queue(); q.Length != 0 {
				t.Errorf("queue length %d after every request ended", q.Length)
			}
		})
	}
}

// TestSpillToBackendWithRoom: a non-hashing selection passes over a full
// backend, and reports full only when every backend is.
func TestSpillToBackendWithRoom(t *testing.T) {
	for _, a := range algorithms[:3] {
		t.Run(a.name, func(t *testing.T) {
			l := limitedPool(t, a.new(), ConnLimits{MaxConnections: 1}, MustBackend(m1, 1), MustBackend(m2, 1))
			first, _ := l.TakeSlot(nil, 8, nil)
			second, _ := l.TakeSlot(nil, 8, nil)
			if first == nil || second == nil || first.Addr == second.Addr {
				t.Fatalf("two slots of max 1 went to %v and %v, want one on each backend", first, second)
			}
			if b, full := l.TakeSlot(nil, 8, nil); b != nil || !full {
				t.Fatalf("third TakeSlot = %v, full %v; want nil, full", b, full)
			}
			if _, err := l.WaitSlot(context.Background(), nil, 8, nil); !errors.Is(err, ErrQueueFull) {
				t.Fatalf("WaitSlot without a queue: %v, want ErrQueueFull", err)
			}
			if q := l.Queue(); q.Full != 1 {
				t.Errorf("Full = %d, want 1", q.Full)
			}
			first.FreeSlot()
			if b, _ := l.TakeSlot(nil, 8, nil); b == nil || b.Addr != first.Addr {
				t.Fatalf("after a free, TakeSlot = %v, want %s", b, first.Addr)
			}
		})
	}
}

// TestQueueIsFIFO: freed slots go to the waiters in the order they came.
func TestQueueIsFIFO(t *testing.T) {
	l := limitedPool(t, &RoundRobin{}, ConnLimits{MaxConnections: 1, QueueSize: 8, QueueTimeout: time.Minute}, MustBackend(m1, 1))
	held, _ := l.TakeSlot(nil, 8, nil)
	if held == nil {
		t.Fatal("no slot")
	}
	const n = 5
	order := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			b, err := l.WaitSlot(context.Background(), nil, 8, nil)
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			b.FreeSlot()
		})
		waitQueued(t, l, i+1) // the next one comes after this one
	}
	held.FreeSlot()
	wg.Wait()
	close(order)
	want := 0
	for got := range order {
		if got != want {
			t.Fatalf("waiter %d served in place %d", got, want)
		}
		want++
	}
	if q := l.Queue(); q.Waited != n || q.Length != 0 {
		t.Errorf("queue %+v, want %d waited and none left", q, n)
	}
}

// TestQueueTimeoutAndCancel: a waiter leaves the queue when its wait times
// out or its context ends, and a full queue refuses at once.
func TestQueueTimeoutAndCancel(t *testing.T) {
	var waits []error
	var mu sync.Mutex
	limits := ConnLimits{MaxConnections: 1, QueueSize: 1, QueueTimeout: 20 * time.Millisecond,
		Waited: func(_ time.Duration, err error) { mu.Lock(); waits = append(waits, err); mu.Unlock() }}
	l := limitedPool(t, &RoundRobin{}, limits, MustBackend(m1, 1))
	if b, _ := l.TakeSlot(nil, 8, nil); b == nil {
		t.Fatal("no slot")
	}
	if _, err := l.WaitSlot(context.Background(), nil, 8, nil); !errors.Is(err, ErrQueueTimeout) {
		t.Fatalf("WaitSlot: %v, want ErrQueueTimeout", err)
	}
	if q := l.Queue(); q.Length != 0 || q.Timeouts != 1 {
		t.Fatalf("after the timeout: %+v", q)
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	gone := errors.New("client gone")
	l.waitq.cfg.QueueTimeout = time.Minute
	done := make(chan error)
	go func() {
		_, err := l.WaitSlot(ctx, nil, 8, nil)
		done <- err
	}()
	waitQueued(t, l, 1)
	if _, err := l.WaitSlot(context.Background(), nil, 8, nil); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("WaitSlot with the queue full: %v, want ErrQueueFull", err)
	}
	cancel(gone)
	if err := <-done; !errors.Is(err, gone) {
		t.Fatalf("cancelled WaitSlot: %v, want its cause", err)
	}
	if q := l.Queue(); q.Length != 0 || q.Full != 1 || q.Timeouts != 1 {
		t.Fatalf("after the cancel: %+v", q)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 2 || !errors.Is(waits[0], ErrQueueTimeout) || !errors.Is(waits[1], gone) {
		t.Errorf("Waited saw %v", waits)
	}
}

// TestHashingWaitsForItsBackend: a hashing selection does not spill its
// key to a backend with room; it waits for its own backend's slot.
func TestHashingWaitsForItsBackend(t *testing.T) {
	for _, a := range algorithms[3:] {
		t.Run(a.name, func(t *testing.T) {
			l := limitedPool(t, a.new(), ConnLimits{MaxConnections: 1, QueueSize: 4, QueueTimeout: time.Minute},
				MustBackend(m1, 1), MustBackend(m2, 1))
			key := []byte("k")
			own, _ := l.TakeSlot(key, 8, nil)
			if own == nil {
				t.Fatal("no slot")
			}
			if b, full := l.TakeSlot(key, 8, nil); b != nil || !full {
				t.Fatalf("TakeSlot of a full key = %v, full %v; want to wait", b, full)
			}
			other := m1
			if own.Addr == m1 {
				other = m2
			}
			got := make(chan *Backend)
			go func() {
				b, err := l.WaitSlot(context.Background(), key, 8, nil)
				if err != nil {
					t.Error(err)
				}
				got <- b
			}()
			waitQueued(t, l, 1)
			// A slot of the other backend frees: not the waiter's.
			var ob *Backend
			for i := 0; ob == nil || ob.Addr != other; i++ {
				if ob != nil {
					t.Fatalf("key %d went to %s, full", i, ob.Addr)
				}
				ob, _ = l.TakeSlot([]byte{byte(i)}, 8, nil)
				if ob != nil && ob.Addr != other {
					ob.FreeSlot()
					ob = nil
				}
			}
			ob.FreeSlot()
			if q := l.Queue(); q.Length != 1 {
				t.Fatalf("the waiter left for another backend's slot: queue %+v", q)
			}
			own.FreeSlot()
			if b := <-got; b == nil || b.Addr != own.Addr {
				t.Fatalf("the waiter got %v, want %s", b, own.Addr)
			}
		})
	}
}

// TestFullPrimariesKeepBackupsOut: a full primary is usable, so backups
// do not serve; requests queue for the primaries instead.
func TestFullPrimariesKeepBackupsOut(t *testing.T) {
	bk := MustBackend(k1, 1)
	bk.Backup = true
	l := limitedPool(t, &RoundRobin{}, ConnLimits{MaxConnections: 1}, MustBackend(p1, 1), bk)
	if b, _ := l.TakeSlot(nil, 8, nil); b == nil || b.Addr != p1 {
		t.Fatalf("first slot on %v, want %s", b, p1)
	}
	if b, full := l.TakeSlot(nil, 8, nil); b != nil || !full {
		t.Fatalf("with the primary full: %v, full %v; want no backup, full", b, full)
	}
}

// TestWaitSlotOf waits for one named backend's slot, as a sticky session
// does.
func TestWaitSlotOf(t *testing.T) {
	l := limitedPool(t, &RoundRobin{}, ConnLimits{QueueSize: 2, QueueTimeout: time.Minute}, withMax(m1, 1), MustBackend(m2, 1))
	b := &l.Current()[0]
	if !l.TakeSlotOf(b) || l.TakeSlotOf(b) {
		t.Fatal("TakeSlotOf did not honour a limit of 1")
	}
	done := make(chan error)
	go func() { done <- l.WaitSlotOf(context.Background(), b) }()
	waitQueued(t, l, 1)
	unlimited, _ := l.TakeSlot(nil, 8, func(x *Backend) bool { return x.Addr == m2 })
	unlimited.FreeSlot() // not the backend waited for
	if q := l.Queue(); q.Length != 1 {
		t.Fatalf("the waiter left for another backend's slot: queue %+v", q)
	}
	b.FreeSlot()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := l.Status()[0]; s.Slots != 1 || s.MaxConnections != 1 {
		t.Fatalf("status %+v, want 1 of 1 slot held", s)
	}
}

// TestQueueWokenByBackendJoining: a waiter takes the room of a backend
// that becomes usable, not only of slots freed.
func TestQueueWokenByBackendJoining(t *testing.T) {
	check := newFakeCheck()
	check.set(m2, errors.New("down"))
	d, _ := NewStatic(MustBackend(m1, 1), MustBackend(m2, 1))
	l, err := New(Algorithm(&RoundRobin{}), Options{Discovery: d, HealthCheck: check,
		Limits: &ConnLimits{MaxConnections: 1, QueueSize: 1, QueueTimeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l.Update(ctx)
	l.CheckHealth(ctx)
	if b, _ := l.TakeSlot(nil, 8, nil); b == nil || b.Addr != m1 {
		t.Fatalf("slot on %v, want %s", b, m1)
	}
	got := make(chan *Backend)
	go func() {
		b, _ := l.WaitSlot(ctx, nil, 8, nil)
		got <- b
	}()
	waitQueued(t, l, 1)
	check.set(m2, nil)
	l.CheckHealth(ctx)
	if b := <-got; b == nil || b.Addr != m2 {
		t.Fatalf("the waiter got %v, want %s, which came up", b, m2)
	}
}

// TestLimitsNeedOptions: a backend's limit in a pool without
// Options.Limits is an error, not silently ignored; bad limits are refused.
func TestLimitsNeedOptions(t *testing.T) {
	d, _ := NewStatic(withMax(m1, 2))
	l, err := New(Algorithm(&RoundRobin{}), Options{Discovery: d})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Update(context.Background()); err == nil {
		t.Fatal("Update accepted a backend limit without Options.Limits")
	}
	for _, c := range []ConnLimits{{MaxConnections: -1}, {QueueSize: -1}, {QueueSize: 1}} {
		if _, err := New(Algorithm(&RoundRobin{}), Options{Discovery: d, Limits: &c}); err == nil {
			t.Errorf("New accepted %+v", c)
		}
	}
}

// TestSlotsAllocateNothing: taking and freeing a slot, and a selection
// without limits, allocate nothing.
func TestSlotsAllocateNothing(t *testing.T) {
	l := limitedPool(t, &RoundRobin{}, ConnLimits{MaxConnections: 4, QueueSize: 4, QueueTimeout: time.Minute},
		MustBackend(m1, 1), MustBackend(m2, 1))
	if n := testing.AllocsPerRun(1000, func() {
		b, _ := l.TakeSlot(nil, 8, nil)
		b.FreeSlot()
	}); n != 0 {
		t.Errorf("TakeSlot and FreeSlot: %v allocs", n)
	}
}

func BenchmarkTakeSlot(b *testing.B) {
	for _, a := range algorithms {
		for _, limited := range []bool{false, true} {
			name := a.name + "/unlimited"
			var opts *ConnLimits
			if limited {
				name = a.name + "/limited"
				opts = &ConnLimits{MaxConnections: 1 << 20, QueueSize: 16, QueueTimeout: time.Second}
			}
			b.Run(name, func(b *testing.B) {
				backends := make([]Backend, 16)
				for i := range backends {
					backends[i] = MustBackend("10.0.0."+strconv.Itoa(i+1)+":80", 1)
				}
				d, _ := NewStatic(backends...)
				l, err := New(a.new(), Options{Discovery: d, Limits: opts})
				if err != nil {
					b.Fatal(err)
				}
				l.Update(context.Background())
				keys := benchKeys()
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						be, _ := l.TakeSlot(keys[i&1023], 8, nil)
						be.Release()
						be.FreeSlot()
						i++
					}
				})
			})
		}
	}
}

// TestWaitSlotOfEndsWhenTheBackendGoes: a request waiting for one named
// backend's slot stops waiting, with ErrNoBackend, when that backend goes
// down, so the caller may choose another; WaitSlotOf on a backend already
// down does not wait at all.
func TestWaitSlotOfEndsWhenTheBackendGoes(t *testing.T) {
	check := newFakeCheck()
	d, _ := NewStatic(withMax(m1, 1), MustBackend(m2, 1))
	l, err := New(Algorithm(&RoundRobin{}), Options{Discovery: d, HealthCheck: check,
		Limits: &ConnLimits{QueueSize: 2, QueueTimeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l.Update(ctx)
	l.CheckHealth(ctx)
	b := &l.Current()[0]
	if !l.TakeSlotOf(b) {
		t.Fatal("no slot")
	}
	done := make(chan error)
	go func() { done <- l.WaitSlotOf(ctx, b) }()
	waitQueued(t, l, 1)
	check.set(m1, errors.New("down"))
	l.CheckHealth(ctx)
	if err := <-done; !errors.Is(err, ErrNoBackend) {
		t.Fatalf("WaitSlotOf of a backend gone down: %v, want ErrNoBackend", err)
	}
	if err := l.WaitSlotOf(ctx, b); !errors.Is(err, ErrNoBackend) {
		t.Fatalf("WaitSlotOf of a backend down: %v, want ErrNoBackend", err)
	}
	if q := l.Queue(); q.Length != 0 {
		t.Fatalf("queue %+v after the backend went", q)
	}
}

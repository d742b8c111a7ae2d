package maps

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
)

type write struct {
	backends []netip.AddrPort
	table    []uint32
}

// recordingWriter keeps every write and can be told to fail.
type recordingWriter struct {
	mu     sync.Mutex
	writes chan write
	fail   error
	gen    uint32
}

func newRecordingWriter() *recordingWriter { return &recordingWriter{writes: make(chan write, 64)} }

func (w *recordingWriter) Write(backends []netip.AddrPort, table []uint32) (uint32, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return 0, w.fail
	}
	w.gen++
	w.writes <- write{slices.Clone(backends), slices.Clone(table)}
	return w.gen, nil
}

func (w *recordingWriter) next(t *testing.T) write {
	t.Helper()
	select {
	case wr := <-w.writes:
		return wr
	case <-time.After(5 * time.Second):
		t.Fatal("no data plane write within 5s")
		return write{}
	}
}

func (w *recordingWriter) none(t *testing.T) {
	t.Helper()
	select {
	case wr := <-w.writes:
		t.Fatalf("unexpected write of %v", wr.backends)
	default:
	}
}

func event(kind lb.EventKind, addr string, healthy, enabled bool) lb.Event {
	return lb.Event{Kind: kind, Backend: lb.MustBackend(addr, 1), Healthy: healthy, Enabled: enabled}
}

const tableSize = 251 // a small prime keeps the tests quick

func TestMirrorWaitsForReadyThenFollowsHealth(t *testing.T) {
	w := newRecordingWriter()
	m := New(w, tableSize, nil)
	for _, a := range []string{"203.0.113.12:80", "203.0.113.11:80", "203.0.113.13:80"} {
		m.Observe(event(lb.Added, a, true, true))
	}
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx, ready); close(done) }()
	defer func() { cancel(); <-done }()

	// Nothing is written before the first health round: a restarted weir
	// must not replace a live table with guesses.
	m.Observe(event(lb.HealthChanged, "203.0.113.13:80", false, true))
	w.none(t)
	close(ready)

	wr := w.next(t)
	want := []netip.AddrPort{netip.MustParseAddrPort("203.0.113.11:80"), netip.MustParseAddrPort("203.0.113.12:80")}
	if !slices.Equal(wr.backends, want) {
		t.Fatalf("first write %v, want the healthy ones in address order %v", wr.backends, want)
	}
	checkTable(t, wr, 2)

	tests := []struct {
		name string
		ev   lb.Event
		want int // backends after the event; -1: no write expected
	}{
		{"back up", event(lb.HealthChanged, "203.0.113.13:80", true, true), 3},
		{"drained", event(lb.EnabledChanged, "203.0.113.11:80", true, false), 2},
		{"drained and down: no change", event(lb.HealthChanged, "203.0.113.11:80", false, false), -1},
		{"removed", event(lb.Removed, "203.0.113.12:80", true, true), 1},
		{"last one down", event(lb.HealthChanged, "203.0.113.13:80", false, true), 0},
	}
	for _, tc := range tests {
		m.Observe(tc.ev)
		if tc.want < 0 {
			// Prove the no-op produced no write by forcing the next one.
			m.Observe(event(lb.Added, "198.51.100.99:80", true, true))
			wr := w.next(t)
			if !slices.Contains(wr.backends, netip.MustParseAddrPort("198.51.100.99:80")) {
				t.Fatalf("%s: a write happened without a change: %v", tc.name, wr.backends)
			}
			m.Observe(event(lb.Removed, "198.51.100.99:80", true, true))
			w.next(t)
			continue
		}
		wr := w.next(t)
		if len(wr.backends) != tc.want {
			t.Fatalf("%s: wrote %d backends %v, want %d", tc.name, len(wr.backends), wr.backends, tc.want)
		}
		checkTable(t, wr, tc.want)
	}
}

func checkTable(t *testing.T, wr write, n int) {
	t.Helper()
	if n == 0 {
		if len(wr.table) != 0 {
			t.Fatalf("empty set wrote a %d-entry table", len(wr.table))
		}
		return
	}
	if len(wr.table) != tableSize {
		t.Fatalf("table has %d entries, want %d", len(wr.table), tableSize)
	}
	seen := map[uint32]bool{}
	for _, e := range wr.table {
		if int(e) >= n {
			t.Fatalf("table entry %d indexes past %d backends", e, n)
		}
		seen[e] = true
	}
	if len(seen) != n {
		t.Fatalf("table reaches %d of %d backends", len(seen), n)
	}
}

// TestMirrorTableIsTheLoadBalancersMaglev checks that the data plane gets
// exactly the table pkg/lb's Maglev builds for the same backends, whatever
// order the events came in: the same set always gives the same table, so
// a restart moves no flow.
func TestMirrorTableIsTheLoadBalancersMaglev(t *testing.T) {
	addrs := []string{"203.0.113.13:80", "[2001:db8:2::11]:80", "203.0.113.11:80"}
	var tables [][]uint32
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}} {
		w := newRecordingWriter()
		m := New(w, tableSize, nil)
		for _, i := range order {
			m.Observe(event(lb.Added, addrs[i], true, true))
		}
		if err := m.Sync(); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, w.next(t).table)
	}
	for i := 1; i < len(tables); i++ {
		if !slices.Equal(tables[0], tables[i]) {
			t.Fatal("the same backend set gave different tables for different event orders")
		}
	}
	sorted := []lb.Backend{lb.MustBackend("203.0.113.11:80", 1), lb.MustBackend("203.0.113.13:80", 1), lb.MustBackend("[2001:db8:2::11]:80", 1)}
	want, err := lb.MaglevTable(sorted, tableSize)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tables[0], want) {
		t.Fatal("mirror table differs from lb.MaglevTable over the same backends")
	}
}

func TestMirrorRetriesAfterAFailedWrite(t *testing.T) {
	w := newRecordingWriter()
	w.fail = errors.New("map update: permission denied")
	m := New(w, tableSize, nil)
	m.Observe(event(lb.Added, "203.0.113.11:80", true, true))
	if err := m.Sync(); err == nil {
		t.Fatal("Sync hid the write error")
	}
	if st := m.State(); st.Err == nil {
		t.Fatal("State does not report the failed write")
	}
	w.mu.Lock()
	w.fail = nil
	w.mu.Unlock()
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	if wr := w.next(t); len(wr.backends) != 1 {
		t.Fatalf("retry wrote %v", wr.backends)
	}
	if st := m.State(); st.Err != nil || st.Generation != 1 {
		t.Fatalf("state after retry %+v", st)
	}
}

// Run must not wait for the next health change to repair a failed write:
// the kernel would keep a stale table meanwhile.
func TestMirrorRunRetriesWithoutAChange(t *testing.T) {
	w := newRecordingWriter()
	w.fail = errors.New("map update: no space left")
	m := New(w, tableSize, nil)
	m.Observe(event(lb.Added, "203.0.113.11:80", true, true))
	ready := make(chan struct{})
	close(ready)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx, ready); close(done) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(5 * time.Second)
	for m.State().Err == nil {
		if time.Now().After(deadline) {
			t.Fatal("the first write was not attempted within 5s")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-m.Published():
		t.Fatal("Published closed although no write succeeded")
	default:
	}
	w.mu.Lock()
	w.fail = nil
	w.mu.Unlock()
	if wr := w.next(t); len(wr.backends) != 1 {
		t.Fatalf("retry wrote %v", wr.backends)
	}
	select {
	case <-m.Published():
	case <-time.After(5 * time.Second):
		t.Fatal("Published not closed after a successful write")
	}
}

func TestMirrorRefusesNonIPBackends(t *testing.T) {
	w := newRecordingWriter()
	m := New(w, tableSize, nil)
	m.Observe(lb.Event{Kind: lb.Added, Backend: lb.MustBackend("backend.example:80", 1), Healthy: true, Enabled: true})
	m.Observe(event(lb.Added, "203.0.113.11:80", true, true))
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	if wr := w.next(t); len(wr.backends) != 1 {
		t.Fatalf("wrote %v, want only the IP backend", wr.backends)
	}
}

// BenchmarkHealthChangeToWrite measures the time from a health event to
// the data plane write: the "within 50 ms" promise, with 100 backends.
func BenchmarkHealthChangeToWrite(b *testing.B) {
	w := newRecordingWriter()
	w.writes = make(chan write, 1)
	m := New(w, lb.DefaultMaglevTableSize, nil)
	for i := range 100 {
		m.Observe(event(lb.Added, netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}), 80).String(), true, true))
	}
	ready := make(chan struct{})
	close(ready)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx, ready)
	<-w.writes
	healthy := false
	for b.Loop() {
		m.Observe(event(lb.HealthChanged, "203.0.113.1:80", healthy, true))
		healthy = !healthy
		<-w.writes
	}
}

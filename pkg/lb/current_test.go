package lb

import (
	"context"
	"testing"
)

// TestCurrentAndUsable checks the lock-free view sticky sessions use: the
// same slice until the set changes, a new one after, and Usable following
// SetEnabled.
func TestCurrentAndUsable(t *testing.T) {
	d, err := NewStatic(MustBackend("127.0.0.1:1", 1), MustBackend("127.0.0.1:2", 1))
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(&RoundRobin{}, Options{Discovery: d})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Current()) != 0 {
		t.Fatal("backends before the first update")
	}
	if err := l.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	cur := l.Current()
	if len(cur) != 2 || !cur[0].Usable() || !cur[1].Usable() {
		t.Fatalf("Current %v", cur)
	}
	if err := l.SetEnabled("127.0.0.1:2", false); err != nil {
		t.Fatal(err)
	}
	if !cur[0].Usable() || cur[1].Usable() {
		t.Error("Usable does not follow SetEnabled")
	}
	if again := l.Current(); &again[0] != &cur[0] {
		t.Error("Current changed without a change of the set")
	}
	if n := testing.AllocsPerRun(100, func() { _ = l.Current()[0].Usable() }); n != 0 {
		t.Errorf("Current and Usable allocate %v times", n)
	}
	if err := d.Remove("127.0.0.1:2"); err != nil {
		t.Fatal(err)
	}
	if err := l.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	if next := l.Current(); len(next) != 1 || &next[0] == &cur[0] {
		t.Error("a changed set did not publish a new slice")
	}
	var lone Backend
	if lone.Usable() {
		t.Error("a Backend from no LoadBalancer is usable")
	}
}

package lb

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
)

const (
	p1 = "192.0.2.1:80"
	p2 = "192.0.2.2:80"
	k1 = "198.51.100.1:80"
	k2 = "198.51.100.2:80"
)

// backupPool returns a LoadBalancer over two primaries and two backups,
// with a health check the test controls.
func backupPool(t testing.TB, algo Algorithm) (*LoadBalancer[Algorithm], *fakeCheck) {
	t.Helper()
	bk1, bk2 := MustBackend(k1, 1), MustBackend(k2, 2)
	bk1.Backup, bk2.Backup = true, true
	d, err := NewStatic(MustBackend(p1, 1), bk1, MustBackend(p2, 2), bk2)
	if err != nil {
		t.Fatal(err)
	}
	check := newFakeCheck()
	l, err := New(algo, Options{Discovery: d, HealthCheck: check})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l, check
}

// split selects n times with distinct keys and counts the picks.
func split[A Algorithm](l *LoadBalancer[A], n int) map[string]int {
	counts := map[string]int{}
	for i := range n {
		b, ok := l.Select([]byte("key-"+strconv.Itoa(i)), 8)
		if !ok {
			counts[""]++
			continue
		}
		counts[b.Addr]++
	}
	return counts
}

// TestBackupsServeOnlyWithoutPrimaries runs every algorithm through the
// three phases: primaries up, all down, one back.
func TestBackupsServeOnlyWithoutPrimaries(t *testing.T) {
	const n = 3000
	for _, a := range algorithms {
		t.Run(a.name, func(t *testing.T) {
			l, check := backupPool(t, a.new())
			ctx := context.Background()
			got := split(l, n)
			if got[k1]+got[k2]+got[""] != 0 || got[p1] == 0 || got[p2] == 0 {
				t.Fatalf("primaries up: %v, want every request on the primaries", got)
			}

			check.set(p1, fmt.Errorf("down"))
			check.set(p2, fmt.Errorf("down"))
			l.CheckHealth(ctx)
			got = split(l, n)
			if got[p1]+got[p2]+got[""] != 0 || got[k1] == 0 || got[k2] == 0 {
				t.Fatalf("primaries down: %v, want every request on the backups", got)
			}

			check.set(p2, nil)
			l.CheckHealth(ctx)
			if got = split(l, n); got[p2] != n {
				t.Fatalf("one primary back: %v, want all %d on it", got, n)
			}

			// Backups that are down too leave nothing.
			check.set(p2, fmt.Errorf("down"))
			check.set(k1, fmt.Errorf("down"))
			check.set(k2, fmt.Errorf("down"))
			l.CheckHealth(ctx)
			if got = split(l, 10); got[""] != 10 {
				t.Fatalf("everything down: %v, want no backend", got)
			}
		})
	}
}

// TestBackupsAndThePredicate checks that a usable primary the predicate
// refuses still keeps the backups out, and that a primary drained by an
// operator or a backup-only pool behaves.
func TestBackupsAndThePredicate(t *testing.T) {
	l, _ := backupPool(t, &RoundRobin{})
	notPrimary := func(b *Backend) bool { return b.Backup }
	if b, ok := l.SelectWith(nil, 8, notPrimary); ok {
		t.Fatalf("SelectWith refusing the usable primaries chose %s, want none", b.Addr)
	}
	_ = l.SetDrained(p1, true)
	_ = l.SetDrained(p2, true)
	if b, ok := l.SelectWith(nil, 8, notPrimary); !ok || !b.Backup {
		t.Fatalf("primaries drained: chose %v, %v; want a backup", b, ok)
	}
	// The backend returned carries its configured weight and flag.
	if b, _ := l.Select([]byte("x"), 8); b.Addr == k2 && b.Weight != 2 {
		t.Fatalf("backup %s has weight %d, want 2", b.Addr, b.Weight)
	}

	d := newFakeDiscovery()
	only := MustBackend(k1, 1)
	only.Backup = true
	d.setBackends(only)
	l2 := newTestLB(t, Maglev{}, Options{Discovery: d})
	mustUpdate(t, l2)
	if b, ok := l2.Select([]byte("k"), 3); !ok || b.Addr != k1 {
		t.Fatalf("a pool of backups only chose %v, %v; want its backup", b, ok)
	}
}

// TestBackupFlagChangeRebuilds checks that turning a backend into a
// backup through discovery takes effect.
func TestBackupFlagChangeRebuilds(t *testing.T) {
	d := newFakeDiscovery(p1, p2)
	l := newTestLB(t, &RoundRobin{}, Options{Discovery: d})
	mustUpdate(t, l)
	b2 := MustBackend(p2, 1)
	b2.Backup = true
	d.setBackends(MustBackend(p1, 1), b2)
	mustUpdate(t, l)
	if st, _ := l.LastUpdate(); !st.Rebuilt {
		t.Fatal("a backup flag change did not rebuild")
	}
	if got := split(l, 100); got[p1] != 100 {
		t.Fatalf("after %s became a backup: %v, want all on %s", p2, got, p1)
	}
	if s := b2.String(); s != p2+" backup" {
		t.Fatalf("String() = %q", s)
	}
}

func TestStaticCarriesBackup(t *testing.T) {
	b := MustBackend(k1, 1)
	b.Backup = true
	s, err := NewStatic(b)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := s.Discover(context.Background())
	if !set.Backends[0].Backup {
		t.Fatal("Static lost the backup flag")
	}
	b.Backup = false
	if err := s.Replace(b); err != nil {
		t.Fatal(err)
	}
	if set, _ := s.Discover(context.Background()); set.Backends[0].Backup {
		t.Fatal("Replace with the flag cleared kept it")
	}
}

// TestSelectWithBackupsAllocationFree covers both tiers.
func TestSelectWithBackupsAllocationFree(t *testing.T) {
	for _, a := range algorithms {
		t.Run(a.name, func(t *testing.T) {
			l, check := backupPool(t, a.new())
			check.set(p1, fmt.Errorf("down"))
			check.set(p2, fmt.Errorf("down"))
			l.CheckHealth(context.Background())
			keys := benchKeys()
			i := 0
			if allocs := testing.AllocsPerRun(2000, func() { l.Select(keys[i&1023], 8); i++ }); allocs != 0 {
				t.Fatalf("Select on backups allocated %.2f times, want 0", allocs)
			}
		})
	}
}

// BenchmarkSelectBackup measures a selection that finds every primary
// down and falls back to the backups: the cost of a pool in trouble.
func BenchmarkSelectBackup(b *testing.B) {
	keys := benchKeys()
	for _, a := range algorithms {
		b.Run(a.name, func(b *testing.B) {
			l, check := backupPool(b, a.new())
			check.set(p1, fmt.Errorf("down"))
			check.set(p2, fmt.Errorf("down"))
			l.CheckHealth(context.Background())
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := l.Select(keys[i&1023], 8); !ok {
					b.Fatal("no backend")
				}
				i++
			}
		})
	}
}

func ExampleBackend_backup() {
	spare := MustBackend("10.0.0.9:80", 1)
	spare.Backup = true // served only when no primary is usable
	static, _ := NewStatic(MustBackend("10.0.0.1:80", 1), spare)
	upstream, _ := New(&RoundRobin{}, Options{Discovery: static})
	_ = upstream.Update(context.Background())

	b, _ := upstream.Select(nil, 3)
	fmt.Println(b.Addr)
	_ = upstream.SetDrained("10.0.0.1:80", true)
	b, _ = upstream.Select(nil, 3)
	fmt.Println(b.Addr)
	// Output:
	// 10.0.0.1:80
	// 10.0.0.9:80
}

// TestBackupChangeIsAnEvent checks that observers (the BPF mirror) learn
// of discovery turning a primary into a backup and back, once each way,
// and that an unchanged role says nothing.
func TestBackupChangeIsAnEvent(t *testing.T) {
	d, err := NewStatic(MustBackend(p1, 1), MustBackend(k1, 1))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	l := newTestLB(t, &RoundRobin{}, Options{Discovery: d, Observers: []Observer{rec}})
	mustUpdate(t, l)
	rec.take()
	backup := MustBackend(k1, 1)
	backup.Backup = true
	for _, tc := range []struct {
		name   string
		second Backend
		want   []bool // Backend.Backup of each BackupChanged event
	}{
		{"to backup", backup, []bool{true}},
		{"unchanged", backup, nil},
		{"to primary", MustBackend(k1, 1), []bool{false}},
	} {
		if err := d.Replace(MustBackend(p1, 1), tc.second); err != nil {
			t.Fatal(err)
		}
		mustUpdate(t, l)
		var got []bool
		for _, e := range rec.take() {
			if e.Kind != BackupChanged {
				t.Fatalf("%s: unexpected %v event for %s", tc.name, e.Kind, e.Backend.Addr)
			}
			if e.Backend.Addr != k1 {
				t.Fatalf("%s: BackupChanged for %s", tc.name, e.Backend.Addr)
			}
			got = append(got, e.Backend.Backup)
		}
		if !slices.Equal(got, tc.want) {
			t.Fatalf("%s: BackupChanged events with Backup %v, want %v", tc.name, got, tc.want)
		}
	}
}

package maps

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
)

const (
	mp1 = "203.0.113.1:80"
	mp2 = "203.0.113.2:80"
	mb1 = "198.51.100.1:80"
	mb2 = "198.51.100.2:80"
)

// backupEvent is event for a backend with the given backup role.
func backupEvent(kind lb.EventKind, addr string, backup, healthy, enabled bool) lb.Event {
	e := event(kind, addr, healthy, enabled)
	e.Backend.Backup = backup
	return e
}

func addrs(ss ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddrPort(s)
	}
	return out
}

// TestMirrorServesBackupsOnlyWithoutAUsablePrimary walks a pool of two
// primaries and two backups through every way a primary stops or starts
// serving, and a role change, checking after each event what the kernel's
// table is built from, or that nothing is written.
func TestMirrorServesBackupsOnlyWithoutAUsablePrimary(t *testing.T) {
	w := newRecordingWriter()
	m := New(w, tableSize, nil)
	m.Observe(backupEvent(lb.Added, mp1, false, true, true))
	m.Observe(backupEvent(lb.Added, mb1, true, true, true))
	m.Observe(backupEvent(lb.Added, mp2, false, true, true))
	m.Observe(backupEvent(lb.Added, mb2, true, true, true))
	ejected := backupEvent(lb.HealthChanged, mp2, false, false, true)
	ejected.Ejected = true

	steps := []struct {
		name string
		ev   *lb.Event
		want []netip.AddrPort // nil: no write
	}{
		{"start: the primaries only", nil, addrs(mp1, mp2)},
		{"a backup fails: no change", ptr(backupEvent(lb.HealthChanged, mb1, true, false, true)), nil},
		{"one primary fails", ptr(backupEvent(lb.HealthChanged, mp1, false, false, true)), addrs(mp2)},
		{"the last primary is ejected: the usable backup", &ejected, addrs(mb2)},
		{"a backup recovers", ptr(backupEvent(lb.HealthChanged, mb1, true, true, true)), addrs(mb1, mb2)},
		{"a primary recovers: backups out", ptr(backupEvent(lb.HealthChanged, mp1, false, true, true)), addrs(mp1)},
		{"the primary is drained: backups in", ptr(backupEvent(lb.EnabledChanged, mp1, false, true, false)), addrs(mb1, mb2)},
		{"a backup becomes a primary", ptr(backupEvent(lb.BackupChanged, mb2, false, true, true)), addrs(mb2)},
		{"a backup's weight changes: not serving, no change", ptr(lb.Event{Kind: lb.WeightChanged,
			Backend: lb.Backend{Addr: mb1, Weight: 3, Backup: true}, Healthy: true, Enabled: true}), nil},
		{"the drained primary returns", ptr(backupEvent(lb.EnabledChanged, mp1, false, true, true)), addrs(mb2, mp1)},
		{"the new primary is removed", ptr(backupEvent(lb.Removed, mb2, false, true, true)), addrs(mp1)},
		{"the last usable primary becomes a backup", ptr(backupEvent(lb.BackupChanged, mp1, true, true, true)), addrs(mb1, mp1)},
	}
	for _, s := range steps {
		if s.ev != nil {
			m.Observe(*s.ev)
		}
		if err := m.Sync(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.want == nil {
			w.none(t)
			continue
		}
		wr := w.next(t)
		if !slices.Equal(wr.backends, s.want) {
			t.Fatalf("%s: wrote %v, want %v", s.name, wr.backends, s.want)
		}
		checkTable(t, wr, len(s.want))
	}
}

func ptr[T any](v T) *T { return &v }

// TestMirrorFollowsARealLoadBalancer wires a Mirror to a LoadBalancer as
// pkg/server does and checks that passive health's ejection, a backup
// taking over and discovery's role change reach the kernel's table.
func TestMirrorFollowsARealLoadBalancer(t *testing.T) {
	bk := lb.MustBackend(mb1, 1)
	bk.Backup = true
	d, err := lb.NewStatic(lb.MustBackend(mp1, 1), lb.MustBackend(mp2, 1), bk)
	if err != nil {
		t.Fatal(err)
	}
	w := newRecordingWriter()
	m := New(w, tableSize, nil)
	l, err := lb.New(&lb.RoundRobin{}, lb.Options{Discovery: d, Observers: []lb.Observer{m},
		// A clock never advanced: an ejection lasts until the test ends.
		Clock: lb.NewManualClock(time.Unix(1_800_000_000, 0)),
		// 100% lets the whole primary tier be ejected.
		Outlier: &lb.OutlierDetection{ConsecutiveGatewayFailures: 1, BaseEjection: time.Hour, MaxEjectionPercent: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	sync := func(name string, want []netip.AddrPort) {
		t.Helper()
		if err := m.Sync(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if wr := w.next(t); !slices.Equal(wr.backends, want) {
			t.Fatalf("%s: wrote %v, want %v", name, wr.backends, want)
		}
	}
	sync("start", addrs(mp1, mp2))
	replace := func(bs ...lb.Backend) {
		t.Helper()
		if err := d.Replace(bs...); err != nil {
			t.Fatal(err)
		}
		if err := l.Update(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	replace(lb.MustBackend(mp1, 1), lb.MustBackend(mp2, 1), lb.MustBackend(mb1, 1))
	sync("the backup becomes a primary", addrs(mb1, mp1, mp2))
	replace(lb.MustBackend(mp1, 1), lb.MustBackend(mp2, 1), bk)
	sync("and a backup again", addrs(mp1, mp2))

	eject := func(addr string) {
		t.Helper()
		for _, b := range l.Current() {
			if b.Addr == addr {
				b.Report(lb.OutcomeGatewayFailure)
				return
			}
		}
		t.Fatalf("no backend %s", addr)
	}
	eject(mp1)
	sync("one primary ejected", addrs(mp2))
	eject(mp2)
	sync("every primary ejected: the backup", addrs(mb1))

	// The backup's role changes while it serves alone: the table keeps it.
	replace(lb.MustBackend(mp1, 1), lb.MustBackend(mp2, 1), lb.MustBackend(mb1, 1))
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	w.none(t)
	replace(lb.MustBackend(mp1, 1), lb.MustBackend(mp2, 1))
	sync("the only usable backend removed", nil)
}

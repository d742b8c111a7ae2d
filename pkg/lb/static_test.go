package lb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// staticBase is the list every TestStaticChanges case starts from.
func staticBase() []Backend {
	return []Backend{
		MustBackend("192.0.2.1:80", 1),
		MustBackend("192.0.2.2:80", 2),
		MustBackend("[2001:db8::3]:80", 3),
	}
}

// staticSignalled reports whether a change signal is waiting, consuming it. The
// signal is sent before a change returns, so there is nothing to wait for.
func staticSignalled(s *Static) bool {
	select {
	case <-s.Changed():
		return true
	default:
		return false
	}
}

// discoverOrFail returns the Static's set or fails the test.
func discoverOrFail(t *testing.T, d Discovery) Set {
	t.Helper()
	set, err := d.Discover(context.Background())
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	return set
}

// drainedAddrs returns the drained addresses of a set, sorted.
func drainedAddrs(set Set) []string {
	var addrs []string
	for addr, off := range set.Disabled {
		if off {
			addrs = append(addrs, addr)
		}
	}
	slices.Sort(addrs)
	return addrs
}

// checkDiscovered fails t unless got has want's addresses and weights, in order.
func checkDiscovered(t *testing.T, got, want []Backend) {
	t.Helper()
	if !sameSelection(got, want) {
		t.Fatalf("backends = %v, want %v", got, want)
	}
}

func TestStaticChanges(t *testing.T) {
	b4 := MustBackend("198.51.100.4:8080", 4)
	base := staticBase()
	tests := []struct {
		name         string
		change       func(s *Static) error
		wantErr      error
		wantSignal   bool
		wantBackends []Backend
		wantDisabled []string
	}{
		{
			name:         "add appends",
			change:       func(s *Static) error { return s.Add(b4) },
			wantSignal:   true,
			wantBackends: append(staticBase(), b4),
		},
		{
			name:         "add duplicate in another spelling",
			change:       func(s *Static) error { return s.Add(Backend{Addr: "[2001:DB8::0003]:0080", Weight: 9}) },
			wantErr:      ErrDuplicate,
			wantBackends: base,
		},
		{
			name:         "add zero weight",
			change:       func(s *Static) error { return s.Add(Backend{Addr: "198.51.100.4:80"}) },
			wantErr:      ErrBadWeight,
			wantBackends: base,
		},
		{
			name:         "add bad address",
			change:       func(s *Static) error { return s.Add(Backend{Addr: "198.51.100.4", Weight: 1}) },
			wantErr:      ErrBadAddress,
			wantBackends: base,
		},
		{
			name:         "remove keeps order",
			change:       func(s *Static) error { return s.Remove("192.0.2.2:80") },
			wantSignal:   true,
			wantBackends: []Backend{base[0], base[2]},
		},
		{
			name: "remove then edit the backend that moved",
			change: func(s *Static) error {
				if err := s.Remove("192.0.2.1:80"); err != nil {
					return err
				}
				return s.SetWeight("[2001:db8::3]:80", 7)
			},
			wantSignal:   true,
			wantBackends: []Backend{base[1], MustBackend("[2001:db8::3]:80", 7)},
		},
		{
			name:         "remove by another spelling",
			change:       func(s *Static) error { return s.Remove("[2001:DB8:0::3]:80") },
			wantSignal:   true,
			wantBackends: base[:2],
		},
		{
			name:         "remove unknown",
			change:       func(s *Static) error { return s.Remove("192.0.2.99:80") },
			wantErr:      ErrUnknownBackend,
			wantBackends: base,
		},
		{
			name:         "remove unparsable",
			change:       func(s *Static) error { return s.Remove("no-port") },
			wantErr:      ErrBadAddress,
			wantBackends: base,
		},
		{
			name:         "set weight",
			change:       func(s *Static) error { return s.SetWeight("192.0.2.1:80", MaxWeight) },
			wantSignal:   true,
			wantBackends: []Backend{MustBackend("192.0.2.1:80", MaxWeight), base[1], base[2]},
		},
		{
			name:         "set the same weight is no change",
			change:       func(s *Static) error { return s.SetWeight("192.0.2.2:80", 2) },
			wantBackends: base,
		},
		{
			name:         "set zero weight",
			change:       func(s *Static) error { return s.SetWeight("192.0.2.2:80", 0) },
			wantErr:      ErrBadWeight,
			wantBackends: base,
		},
		{
			name:         "set weight above MaxWeight",
			change:       func(s *Static) error { return s.SetWeight("192.0.2.2:80", MaxWeight+1) },
			wantErr:      ErrBadWeight,
			wantBackends: base,
		},
		{
			name:         "set weight of unknown",
			change:       func(s *Static) error { return s.SetWeight("192.0.2.99:80", 5) },
			wantErr:      ErrUnknownBackend,
			wantBackends: base,
		},
		{
			name:         "drain",
			change:       func(s *Static) error { return s.SetEnabled("192.0.2.2:80", false) },
			wantSignal:   true,
			wantBackends: base,
			wantDisabled: []string{"192.0.2.2:80"},
		},
		{
			name: "drain twice is one change",
			change: func(s *Static) error {
				if err := s.SetEnabled("192.0.2.2:80", false); err != nil {
					return err
				}
				<-s.Changed()
				return s.SetEnabled("192.0.2.2:80", false)
			},
			wantBackends: base,
			wantDisabled: []string{"192.0.2.2:80"},
		},
		{
			name: "drain then restore",
			change: func(s *Static) error {
				if err := s.SetEnabled("192.0.2.2:80", false); err != nil {
					return err
				}
				<-s.Changed()
				return s.SetEnabled("192.0.2.2:80", true)
			},
			wantSignal:   true,
			wantBackends: base,
		},
		{
			name:         "enable an enabled backend is no change",
			change:       func(s *Static) error { return s.SetEnabled("192.0.2.2:80", true) },
			wantBackends: base,
		},
		{
			name:         "drain unknown",
			change:       func(s *Static) error { return s.SetEnabled("192.0.2.99:80", false) },
			wantErr:      ErrUnknownBackend,
			wantBackends: base,
		},
		{
			name: "removal forgets the drain",
			change: func(s *Static) error {
				return errors.Join(
					s.SetEnabled("192.0.2.1:80", false),
					s.Remove("192.0.2.1:80"),
					s.Add(base[0]),
				)
			},
			wantSignal:   true,
			wantBackends: []Backend{base[1], base[2], base[0]},
		},
		{
			name: "replace keeps the drain of kept addresses",
			change: func(s *Static) error {
				return errors.Join(
					s.SetEnabled("192.0.2.1:80", false),
					s.SetEnabled("192.0.2.2:80", false),
					s.Replace(b4, MustBackend("192.0.2.1:80", 5)),
				)
			},
			wantSignal:   true,
			wantBackends: []Backend{b4, MustBackend("192.0.2.1:80", 5)},
			wantDisabled: []string{"192.0.2.1:80"},
		},
		{
			name:         "replace with the same list is no change",
			change:       func(s *Static) error { return s.Replace(staticBase()...) },
			wantBackends: base,
		},
		{
			name: "replace changing only metadata",
			change: func(s *Static) error {
				list := staticBase()
				list[1].Metadata = map[string]string{"zone": "b"}
				return s.Replace(list...)
			},
			wantSignal:   true,
			wantBackends: base,
		},
		{
			name:         "replace with a duplicate changes nothing",
			change:       func(s *Static) error { return s.Replace(b4, b4) },
			wantErr:      ErrDuplicate,
			wantBackends: base,
		},
		{
			name:         "replace with a bad weight changes nothing",
			change:       func(s *Static) error { return s.Replace(b4, Backend{Addr: "192.0.2.7:80", Weight: -1}) },
			wantErr:      ErrBadWeight,
			wantBackends: base,
		},
		{
			name:       "replace with nothing empties",
			change:     func(s *Static) error { return s.Replace() },
			wantSignal: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewStatic(staticBase()...)
			if err != nil {
				t.Fatalf("NewStatic: %v", err)
			}
			if staticSignalled(s) {
				t.Fatal("NewStatic sent a change signal")
			}
			err = tt.change(s)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("change error = %v, want %v", err, tt.wantErr)
			}
			if got := staticSignalled(s); got != tt.wantSignal {
				t.Errorf("signal pending = %v, want %v", got, tt.wantSignal)
			}
			set := discoverOrFail(t, s)
			checkDiscovered(t, set.Backends, tt.wantBackends)
			if got := drainedAddrs(set); !slices.Equal(got, tt.wantDisabled) {
				t.Errorf("disabled = %v, want %v", got, tt.wantDisabled)
			}
		})
	}
}

func TestNewStaticRejects(t *testing.T) {
	tests := []struct {
		name     string
		backends []Backend
		wantErr  error
		wantText string
	}{
		{"duplicate", []Backend{MustBackend("192.0.2.1:80", 1), MustBackend("192.0.2.1:80", 2)}, ErrDuplicate, "192.0.2.1:80"},
		{"duplicate in another spelling", []Backend{{Addr: "[2001:db8::1]:80", Weight: 1}, {Addr: "[2001:DB8::0:1]:80", Weight: 1}}, ErrDuplicate, "[2001:db8::1]:80"},
		{"zero weight", []Backend{{Addr: "192.0.2.1:80"}}, ErrBadWeight, "0 for 192.0.2.1:80"},
		{"negative weight", []Backend{{Addr: "192.0.2.1:80", Weight: -3}}, ErrBadWeight, "-3 for 192.0.2.1:80"},
		{"weight above MaxWeight", []Backend{{Addr: "192.0.2.1:80", Weight: MaxWeight + 1}}, ErrBadWeight, fmt.Sprint(MaxWeight + 1)},
		{"no port", []Backend{{Addr: "192.0.2.1", Weight: 1}}, ErrBadAddress, `"192.0.2.1"`},
		{"port zero", []Backend{{Addr: "192.0.2.1:0", Weight: 1}}, ErrBadAddress, `"192.0.2.1:0"`},
		{"bad host", []Backend{{Addr: "bad host:80", Weight: 1}}, ErrBadAddress, `"bad host:80"`},
		{"empty address", []Backend{{Weight: 1}}, ErrBadAddress, `""`},
		{"relative unix path", []Backend{{Addr: "unix:sock", Weight: 1}}, ErrBadAddress, `"unix:sock"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewStatic(tt.backends...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewStatic error = %v, want %v", err, tt.wantErr)
			}
			if s != nil {
				t.Error("NewStatic returned a Static with its error")
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not name %s", err, tt.wantText)
			}
		})
	}
}

func TestNewStaticNormalises(t *testing.T) {
	s, err := NewStatic(
		Backend{Addr: "[2001:DB8::0001]:0443", Weight: 1},
		Backend{Addr: "/run/app.sock", Weight: 2},
		Backend{Addr: "App.Example:80", Weight: 3},
	)
	if err != nil {
		t.Fatalf("NewStatic: %v", err)
	}
	checkDiscovered(t, discoverOrFail(t, s).Backends, []Backend{
		MustBackend("[2001:db8::1]:443", 1),
		MustBackend("unix:/run/app.sock", 2),
		MustBackend("app.example:80", 3),
	})
}

func TestStaticSignalsCoalesce(t *testing.T) {
	s, err := NewStatic()
	if err != nil {
		t.Fatalf("NewStatic: %v", err)
	}
	for i := range 3 {
		if err := s.Add(MustBackend(fmt.Sprintf("192.0.2.%d:80", i+1), 1)); err != nil {
			t.Fatalf("Add: %v", err)
		}
	}
	if !staticSignalled(s) {
		t.Fatal("no signal after three changes")
	}
	if staticSignalled(s) {
		t.Fatal("three changes left more than one signal")
	}
	if err := s.Remove("192.0.2.1:80"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if !staticSignalled(s) {
		t.Fatal("no signal after a change following a consumed signal")
	}
	if got := len(discoverOrFail(t, s).Backends); got != 2 {
		t.Fatalf("%d backends after the signals, want 2", got)
	}
}

func TestStaticDiscoverCopies(t *testing.T) {
	meta := map[string]string{"zone": "a"}
	s, err := NewStatic(Backend{Addr: "192.0.2.1:80", Weight: 1, Metadata: meta})
	if err != nil {
		t.Fatalf("NewStatic: %v", err)
	}
	added := Backend{Addr: "192.0.2.2:80", Weight: 2, Metadata: map[string]string{"zone": "b"}}
	if err := s.Add(added); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := s.SetEnabled("192.0.2.2:80", false); err != nil {
		t.Fatalf("SetEnabled: %v", err)
	}
	// The caller's maps, given to NewStatic and Add, stay the caller's.
	meta["zone"] = "changed"
	added.Metadata["zone"] = "changed"

	first := discoverOrFail(t, s)
	first.Backends[0].Weight = 99
	first.Backends[0].Metadata["zone"] = "mutated"
	first.Backends[1].Metadata["new"] = "key"
	first.Disabled["192.0.2.1:80"] = true
	delete(first.Disabled, "192.0.2.2:80")
	_ = append(first.Backends[:1], MustBackend("203.0.113.1:80", 1))

	second := discoverOrFail(t, s)
	checkDiscovered(t, second.Backends, []Backend{MustBackend("192.0.2.1:80", 1), MustBackend("192.0.2.2:80", 2)})
	for i, zone := range []string{"a", "b"} {
		if got := second.Backends[i].Metadata; len(got) != 1 || got["zone"] != zone {
			t.Errorf("backend %d metadata = %v, want zone=%s only", i, got, zone)
		}
	}
	if got := drainedAddrs(second); !slices.Equal(got, []string{"192.0.2.2:80"}) {
		t.Errorf("disabled = %v, want [192.0.2.2:80]", got)
	}
}

func TestStaticDropsLoadBalancerState(t *testing.T) {
	b := MustBackend("192.0.2.1:80", 1)
	b.state = newBackendState(true)
	s, err := NewStatic(b)
	if err != nil {
		t.Fatalf("NewStatic: %v", err)
	}
	if got := discoverOrFail(t, s).Backends[0]; got.state != nil {
		t.Fatal("Discover reported a backend with the caller's LoadBalancer state")
	}
}

func TestStaticDiscoverHonoursContext(t *testing.T) {
	s, err := NewStatic(MustBackend("192.0.2.1:80", 1))
	if err != nil {
		t.Fatalf("NewStatic: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Discover(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Discover with a cancelled context: %v, want context.Canceled", err)
	}
}

// TestStaticConcurrent edits one Static from several goroutines while
// another discovers; run with -race. Each editor owns its addresses, so the
// final list is known.
func TestStaticConcurrent(t *testing.T) {
	const editors, rounds = 4, 200
	s, err := NewStatic()
	if err != nil {
		t.Fatalf("NewStatic: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, editors)
	for e := range editors {
		wg.Go(func() { errs <- editStatic(s, e, rounds) })
	}
	stop := make(chan struct{})
	readerDone := make(chan error, 1)
	go func() { readerDone <- readStatic(s, stop) }()
	wg.Wait()
	close(stop)
	if err := <-readerDone; err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	set := discoverOrFail(t, s)
	if len(set.Backends) != editors {
		t.Fatalf("%d backends at the end, want %d: %v", len(set.Backends), editors, set.Backends)
	}
	for _, b := range set.Backends {
		if b.Weight != rounds {
			t.Errorf("%s has weight %d, want %d", b.Addr, b.Weight, rounds)
		}
	}
}

// editStatic adds, reweights, drains and removes editor e's backends, and
// leaves one of them with weight rounds.
func editStatic(s *Static, e, rounds int) error {
	keep := fmt.Sprintf("192.0.2.%d:80", e+1)
	if err := s.Add(MustBackend(keep, 1)); err != nil {
		return err
	}
	for i := 1; i <= rounds; i++ {
		temp := fmt.Sprintf("198.51.100.%d:%d", e+1, 1000+i)
		err := errors.Join(
			s.Add(MustBackend(temp, 1)),
			s.SetWeight(keep, i),
			s.SetEnabled(temp, false),
			s.Remove(temp),
		)
		if err != nil {
			return fmt.Errorf("editor %d round %d: %w", e, i, err)
		}
	}
	return nil
}

// readStatic discovers on every signal until stop closes, checking that each
// set is valid.
func readStatic(s *Static, stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		case <-s.Changed():
			set, err := s.Discover(context.Background())
			if err != nil {
				return err
			}
			if err := validateSet(set.Backends); err != nil {
				return fmt.Errorf("invalid set %v: %w", set.Backends, err)
			}
		}
	}
}

// TestParseAddrBoundsItsErrors: an address longer than any real one is
// refused without being quoted whole, so a huge value in a configuration
// cannot make its error messages (one per place it appears) as large.
func TestParseAddrBoundsItsErrors(t *testing.T) {
	for _, addr := range []string{strings.Repeat("a", 1<<20) + ":80", "unix:/" + strings.Repeat("s", 4096)} {
		_, err := ParseAddr(addr)
		if !errors.Is(err, ErrBadAddress) {
			t.Fatalf("ParseAddr of %d bytes: %v, want ErrBadAddress", len(addr), err)
		}
		if n := len(err.Error()); n > 200 {
			t.Errorf("ParseAddr of %d bytes: a %d-byte error", len(addr), n)
		}
	}
	if _, err := ParseAddr(strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + ".example:443"); err != nil {
		t.Errorf("a long but valid name: %v", err)
	}
}

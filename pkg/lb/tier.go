package lb

import "time"

// tier is the selector over one tier of the pool: the primaries, or the
// backups (Backend.Backup), which serve only when no primary is usable.
type tier struct {
	// sel is nil for an empty tier.
	sel Selector
	// list is what sel was built from: the tier's backends in discovery
	// order, at the weights selection uses (slow start ramps them).
	list []Backend
	// index maps a position in list to one in the snapshot's backends;
	// nil when list is the snapshot's backends themselves.
	index []int32
}

// pick returns the first usable backend of the tier that the selector
// yields for key and accept allows, trying at most maxIterations distinct
// backends; nil when there is none. The Backend returned is all's, so it
// carries the configured weight, not a ramped one.
func (t *tier) pick(all []Backend, key []byte, maxIterations int, accept func(*Backend) bool) *Backend {
	n := len(t.list)
	if t.sel == nil || n == 0 {
		return nil
	}
	var rejected indexSet
	c := t.sel.Start(key)
	// Once every backend of the tier was refused there is nothing left to
	// find: stop, rather than walk the rest of a hash ring.
	for tried, steps := 0, 0; tried < maxIterations && tried < n && steps < maxSelectSteps; steps++ {
		idx, next, ok := t.sel.Next(c)
		if !ok || idx < 0 || idx >= n {
			break
		}
		c = next
		if rejected.has(idx) {
			continue
		}
		var b *Backend
		if t.index == nil {
			b = &all[idx]
		} else {
			b = &all[t.index[idx]]
		}
		if b.state.usable.Load() && (accept == nil || accept(b)) {
			return b
		}
		rejected.add(idx)
		tried++
	}
	return nil
}

// pickSlot is pick that also takes a connection slot on the backend it
// returns (slots.go): pickSpill passes over a backend at its limit to
// the next candidate, pickKeyed stops at it (a hashing selection keeps
// its key on its backend). full is the first candidate found at its
// limit, nil when none was. It is pick's loop again rather than a mode
// of pick, so that selection without limits pays nothing for them.
func (t *tier) pickSlot(all []Backend, key []byte, maxIterations int, accept func(*Backend) bool, mode pickMode) (b, full *Backend) {
	n := len(t.list)
	if t.sel == nil || n == 0 {
		return nil, nil
	}
	var rejected indexSet
	c := t.sel.Start(key)
	// Once every backend of the tier was refused there is nothing left to
	// find: stop, rather than walk the rest of a hash ring.
	for tried, steps := 0, 0; tried < maxIterations && tried < n && steps < maxSelectSteps; steps++ {
		idx, next, ok := t.sel.Next(c)
		if !ok || idx < 0 || idx >= n {
			break
		}
		c = next
		if rejected.has(idx) {
			continue
		}
		if t.index == nil {
			b = &all[idx]
		} else {
			b = &all[t.index[idx]]
		}
		if b.state.usable.Load() && (accept == nil || accept(b)) {
			if b.state.take() {
				return b, full
			}
			if full == nil {
				full = b
			}
			if mode == pickKeyed {
				return nil, full
			}
		}
		rejected.add(idx)
		tried++
	}
	return nil, full
}

// anyUsable reports whether some backend of the tier may take traffic.
func (t *tier) anyUsable() bool {
	for i := range t.list {
		if t.list[i].state.usable.Load() {
			return true
		}
	}
	return false
}

// buildTiers splits backends into primaries and backups, at the weights
// slow start gives them at now, and builds a selector for each tier whose
// list differs from old's; a tier that did not change keeps its selector.
// Call with mu held.
func (lb *LoadBalancer[A]) buildTiers(backends []Backend, old *snapshot, now time.Time) (primary, backup tier, rebuilt bool, err error) {
	hasBackup := false
	for i := range backends {
		if backends[i].Backup {
			hasBackup = true
			break
		}
	}
	scale := lb.rampScale(backends, now)
	for _, isBackup := range []bool{false, true} {
		t, was := &primary, &old.primary
		if isBackup {
			t, was = &backup, &old.backup
		}
		if !hasBackup && scale == 0 {
			if !isBackup {
				t.list = backends
			}
		} else {
			for i := range backends {
				if backends[i].Backup != isBackup {
					continue
				}
				b := backends[i]
				if scale > 0 {
					b.Weight = lb.rampWeight(&b, now, scale)
				}
				t.list = append(t.list, b)
				t.index = append(t.index, int32(i))
			}
		}
		switch {
		case sameSelection(was.list, t.list):
			t.sel = was.sel
		case len(t.list) == 0:
			rebuilt = true
		default:
			if t.sel, err = lb.algo.Build(t.list); err != nil {
				return tier{}, tier{}, false, err
			}
			rebuilt = true
		}
	}
	return primary, backup, rebuilt, nil
}

// pickMode says what tier.pickSlot does with a backend at its limit.
type pickMode uint8

const (
	pickSpill pickMode = iota // pass over a full backend
	pickKeyed                 // stop at a full backend
)

package lb

import (
	"fmt"
	"maps"
	"time"
)

// Override is an operator's runtime setting for one backend address,
// applied on top of whatever the Discovery reports.
type Override struct {
	// Weight replaces the discovered weight; 0 keeps it.
	Weight int
	// Drained keeps the backend out of selection, whatever its health
	// and the Discovery say.
	Drained bool
}

// IsZero reports whether o changes nothing.
func (o Override) IsZero() bool { return o == Override{} }

// SetWeight overrides the weight of the backend at addr with weight (1
// to MaxWeight), or removes the override with 0, so that the discovered
// weight applies again. The override is kept by address: it applies to
// every later discovery result, so a DNS refresh does not undo it, and
// to the address whenever it is discovered, so it may be set before the
// first Update (to restore what a previous process knew). The selector
// is rebuilt and published before SetWeight returns.
func (lb *LoadBalancer[A]) SetWeight(addr string, weight int) error {
	norm, err := ParseAddr(addr)
	if err != nil {
		return err
	}
	if weight < 0 || weight > MaxWeight {
		return fmt.Errorf("%w: %d for %s: must be 1 to %d, or 0 for the discovered weight", ErrBadWeight, weight, addr, MaxWeight)
	}
	return lb.override(norm, func(o *Override) { o.Weight = weight })
}

// SetDrained drains (true) the backend at addr, or ends that drain
// (false). Unlike SetEnabled, the setting is kept by address, as for
// SetWeight: it outlives the address's absence from a discovery result
// and may be set before the first Update. The backend is out of (or back
// in) selection before SetDrained returns.
func (lb *LoadBalancer[A]) SetDrained(addr string, drained bool) error {
	norm, err := ParseAddr(addr)
	if err != nil {
		return err
	}
	return lb.override(norm, func(o *Override) { o.Drained = drained })
}

// ClearOverride forgets every override of addr: its discovered weight
// and enablement apply again. A caller removing a backend for good
// clears its overrides, so that a later backend at the same address
// starts afresh.
func (lb *LoadBalancer[A]) ClearOverride(addr string) error {
	norm, err := ParseAddr(addr)
	if err != nil {
		return err
	}
	return lb.override(norm, func(o *Override) { *o = Override{} })
}

// Overrides returns a copy of the overrides in force, by address.
func (lb *LoadBalancer[A]) Overrides() map[string]Override {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return maps.Clone(lb.overrides)
}

// override changes the override of the normalised address addr with
// edit and applies it to the published backends at once.
func (lb *LoadBalancer[A]) override(addr string, edit func(*Override)) error {
	lb.mu.Lock()
	o := lb.overrides[addr]
	was := o
	edit(&o)
	if o.IsZero() {
		delete(lb.overrides, addr)
	} else {
		lb.overrides[addr] = o
	}
	err := lb.applyOverride(addr, was, o)
	if err != nil {
		// Leave things as they were: the caller learns the change failed.
		if was.IsZero() {
			delete(lb.overrides, addr)
		} else {
			lb.overrides[addr] = was
		}
	}
	lb.mu.Unlock()
	lb.deliver()
	return err
}

// applyOverride brings the published backends in line with a changed
// override of addr. Call with mu held.
func (lb *LoadBalancer[A]) applyOverride(addr string, was, now Override) error {
	st := lb.states[addr]
	if st == nil {
		return nil // applies when the address is discovered
	}
	if was.Drained != now.Drained {
		wasEnabled := st.enabled()
		st.drained = now.Drained
		t := lb.clock.Now()
		if lb.publish(st, t) {
			lb.reweigh(t)
		}
		if st.enabled() != wasEnabled {
			lb.queue(EnabledChanged, lb.currentBackend(addr), st, t)
		}
	}
	if was.Weight != now.Weight {
		// Republish the last discovered set, which applies the new weight
		// and rebuilds the selector, without asking the Discovery again.
		t := time.Now()
		if _, err := lb.apply(lb.discovered, t, t); err != nil {
			st.drained = was.Drained
			st.publish()
			return err
		}
	}
	return nil
}

// Seed sets the health the backend at addr starts with when it joins,
// instead of Options.Initially: a successor process seeds what its
// predecessor knew, so that an upgrade neither sends traffic to a
// backend that was down nor holds back one that was up. The backend's
// checks then decide as usual, with the consecutive thresholds counted
// from the seeded verdict. A seed applies to a backend already present
// only if it has not been checked yet. Seeds not used by the first
// successful Update are forgotten; without a HealthCheck every backend
// is healthy and seeds are ignored.
func (lb *LoadBalancer[A]) Seed(addr string, healthy bool) error {
	norm, err := ParseAddr(addr)
	if err != nil {
		return err
	}
	if lb.opts.HealthCheck == nil {
		return nil
	}
	lb.mu.Lock()
	st := lb.states[norm]
	switch {
	case st == nil:
		lb.seeds[norm] = healthy
	case st.lastCheck.IsZero() && st.healthy != healthy:
		st.healthy, st.lastOK, st.consecutive = healthy, healthy, 0
		now := lb.clock.Now()
		if lb.publish(st, now) {
			lb.reweigh(now)
		}
		lb.queue(HealthChanged, lb.currentBackend(norm), st, now)
	}
	lb.mu.Unlock()
	lb.deliver()
	return nil
}

// initialHealth is the health a backend joining at addr starts with: its
// seed, else what Options.Initially says. Call with mu held.
func (lb *LoadBalancer[A]) initialHealth(addr string) bool {
	if lb.opts.HealthCheck == nil {
		return true
	}
	if h, ok := lb.seeds[addr]; ok {
		return h
	}
	return lb.opts.Initially == InitiallyHealthy
}

// Discovery returns the Discovery the LoadBalancer was made with, so that
// its owner may edit a Static list at runtime.
func (lb *LoadBalancer[A]) Discovery() Discovery { return lb.opts.Discovery }

package lb

import "time"

// rampSteps is how many times slow start reweighs a ramp: every tenth of
// Options.SlowStart at most, so that a ramp costs about ten selector
// builds however many backends ramp at once.
const rampSteps = 10

// publish recomputes st's usable flag (see backendState.publish) and, when
// the backend just became usable and slow start applies, starts its ramp.
// It reports whether a ramp started: the caller then reweighs. Call with
// mu held.
func (lb *LoadBalancer[A]) publish(st *backendState, now time.Time) bool {
	was := st.usable.Load()
	if !st.publish() {
		if was && !st.usable.Load() {
			lb.lostQueue(st) // requests waiting for it must not wait on
		}
		return false
	}
	lb.kickQueue() // a waiting request may take it now
	if !lb.ramps {
		return false
	}
	st.rampStart = now
	return true
}

// ramping reports whether st's weight is still ramping at now.
func (lb *LoadBalancer[A]) ramping(st *backendState, now time.Time) bool {
	return !st.rampStart.IsZero() && now.Sub(st.rampStart) < lb.opts.SlowStart
}

// rampScale returns the factor every weight is multiplied by while some
// backend ramps, so that a tenth of a weight of 1 is still a whole
// number, or 0 when none ramps (selection then sees the weights as they
// are). The factor keeps the largest weight within MaxWeight; a pool with
// weights over MaxWeight/10 ramps in coarser steps.
func (lb *LoadBalancer[A]) rampScale(backends []Backend, now time.Time) int {
	if !lb.ramps {
		return 0
	}
	ramping, heaviest := false, 1
	for i := range backends {
		heaviest = max(heaviest, backends[i].Weight)
		ramping = ramping || lb.ramping(backends[i].state, now)
	}
	if !ramping {
		return 0
	}
	return max(1, min(rampSteps, MaxWeight/heaviest))
}

// rampWeight is b's weight, multiplied by scale, as slow start has it at
// now: from a tenth of it when the ramp starts to all of it when the ramp
// ends, linearly, in rampSteps steps. A weight never drops below 1.
func (lb *LoadBalancer[A]) rampWeight(b *Backend, now time.Time, scale int) int {
	full := b.Weight * scale
	if !lb.ramping(b.state, now) {
		return full
	}
	k := int(now.Sub(b.state.rampStart) * rampSteps / lb.opts.SlowStart) // 0 to rampSteps-1
	// full × (0.1 + 0.09k), rounded up: 0.1 at k = 0, 1 at k = rampSteps.
	const den = rampSteps * rampSteps
	w := (full*(rampSteps+(rampSteps-1)*k) + den - 1) / den
	return max(1, w)
}

// reweigh rebuilds the published tiers with the weights slow start gives
// at now, and keeps the ramp's timer going. Call with mu held.
func (lb *LoadBalancer[A]) reweigh(now time.Time) {
	old := lb.snap.Load()
	primary, backup, rebuilt, err := lb.buildTiers(old.backends, old, now)
	if err != nil {
		lb.opts.Logger.Warn("slow start: rebuilding the selector failed; keeping the last weights", "err", err)
	} else if rebuilt {
		lb.snap.Store(&snapshot{backends: old.backends, primary: primary, backup: backup})
	}
	lb.scheduleRamp(now)
}

// scheduleRamp arms the ramp's timer while a backend ramps. Call with mu
// held.
func (lb *LoadBalancer[A]) scheduleRamp(now time.Time) {
	if !lb.ramps || lb.rampTimer != nil {
		return
	}
	backends := lb.snap.Load().backends
	for i := range backends {
		if lb.ramping(backends[i].state, now) {
			step := max(lb.opts.SlowStart/rampSteps, time.Nanosecond)
			lb.rampTimer = lb.clock.AfterFunc(step, lb.rampTick)
			return
		}
	}
}

// rampTick reweighs a ramp in progress.
func (lb *LoadBalancer[A]) rampTick() {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.rampTimer = nil
	lb.reweigh(lb.clock.Now())
}

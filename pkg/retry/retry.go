// Package retry holds a request retry policy and the retry budget that
// keeps retries from multiplying an outage: which failures a proxy may
// retry, how many tries a request gets, how long each may wait for an
// answer, and how many retries may be under way at once.
//
// The package decides nothing about what is safe to send twice; that is
// the proxy's (pkg/l7): it asks a Policy whether a failure is one to
// retry and its Budget whether a retry may start now.
package retry

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Reason is why an attempt failed, in the terms a Policy is written in.
type Reason uint8

const (
	// None: the attempt did not fail in a way a policy names.
	None Reason = iota
	// Connect: opening the connection failed (refused, unreachable, timed
	// out connecting). The request never reached the backend.
	Connect
	// Reset: the connection was reset or closed before a byte of a
	// response arrived.
	Reset
	// Timeout: no response head arrived in time (the per-try timeout, or
	// the upstream read timeout).
	Timeout
	// Status502, Status503 and Status504: the backend answered with that
	// status.
	Status502
	Status503
	Status504

	// NumReasons is the number of reasons, None included: the length of
	// a Counts.
	NumReasons = int(Status504) + 1
)

var reasonNames = [NumReasons]string{"", "connect", "reset", "timeout", "502", "503", "504"}

// String returns the reason as a policy writes it ("connect", "503"),
// which is also its metrics label; "" for None.
func (r Reason) String() string {
	if int(r) < NumReasons {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// Reasons lists every reason a policy may name, in the order they are
// documented.
func Reasons() []Reason {
	return []Reason{Connect, Reset, Timeout, Status502, Status503, Status504}
}

// ForStatus returns the reason a response status stands for: Status502,
// Status503 or Status504, else None.
func ForStatus(status int) Reason {
	switch status {
	case 502:
		return Status502
	case 503:
		return Status503
	case 504:
		return Status504
	}
	return None
}

// ParseReason parses one condition of a policy's on: list.
func ParseReason(s string) (Reason, error) {
	for i := Connect; int(i) < NumReasons; i++ {
		if reasonNames[i] == s {
			return i, nil
		}
	}
	return None, fmt.Errorf("unknown retry condition %q; use connect, reset, timeout, 502, 503 or 504", s)
}

// Conditions is a set of reasons.
type Conditions uint16

// Of returns the set of the given reasons.
func Of(reasons ...Reason) Conditions {
	var c Conditions
	for _, r := range reasons {
		c |= 1 << r
	}
	return c
}

// Has reports whether r is in the set; never for None.
func (c Conditions) Has(r Reason) bool { return r != None && c&(1<<r) != 0 }

// String lists the set as a policy writes it: "connect,503".
func (c Conditions) String() string {
	var b strings.Builder
	for _, r := range Reasons() {
		if c.Has(r) {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(r.String())
		}
	}
	return b.String()
}

// Policy says which failed attempts of a request are tried again, and
// how often. One Policy is shared by every request it governs, from
// many goroutines; its fields must not change once it is in use.
type Policy struct {
	// On is the set of failures that are retried.
	On Conditions
	// Attempts is the total number of tries a request gets, the first
	// included: 3 means the first try and at most two retries. At least
	// 1 (1: never retried).
	Attempts int
	// PerTryTimeout bounds each try's wait for the response head, from
	// when the request was sent; 0: only the upstream read timeout
	// bounds it. Its expiry is a Timeout.
	PerTryTimeout time.Duration
	// Budget, when not nil, caps the retries under way at once; nil
	// lets every retry the other fields allow start.
	Budget *Budget

	retries [NumReasons]atomic.Uint64
	denied  atomic.Uint64
}

// Clone returns a new policy with p's settings and a budget of its own
// (when p has one), its counts at zero: what a configuration's policy
// becomes for each pool or route that applies it.
func (p *Policy) Clone() *Policy {
	c := &Policy{On: p.On, Attempts: p.Attempts, PerTryTimeout: p.PerTryTimeout}
	if p.Budget != nil {
		c.Budget = &Budget{Percent: p.Budget.Percent, MinConcurrency: p.Budget.MinConcurrency}
	}
	return c
}

// Retries reports whether a request that has made tries attempts so far,
// the last failing for reason, may be tried again as far as the policy's
// conditions and attempts go (not its budget: see Budget.Acquire).
func (p *Policy) Retries(reason Reason, tries int) bool {
	return p != nil && p.On.Has(reason) && tries < p.Attempts
}

// Counted records a retry that started, for reason.
func (p *Policy) Counted(reason Reason) { p.retries[reason].Add(1) }

// Refused records a retry the budget refused.
func (p *Policy) Refused() { p.denied.Add(1) }

// Stats are a Policy's counts since it was made.
type Stats struct {
	// Retries counts the retries started, by reason (indexed by Reason).
	Retries Counts
	// Total is the sum of Retries.
	Total uint64
	// BudgetExhausted counts the retries the budget refused.
	BudgetExhausted uint64
}

// Counts holds a count per Reason.
type Counts [NumReasons]uint64

// Stats returns the policy's counts.
func (p *Policy) Stats() Stats {
	var st Stats
	for i := range p.retries {
		st.Retries[i] = p.retries[i].Load()
		st.Total += st.Retries[i]
	}
	st.BudgetExhausted = p.denied.Load()
	return st
}

// Validate checks the policy's fields.
func (p *Policy) Validate() error {
	if p.Attempts < 1 {
		return fmt.Errorf("attempts is %d; it counts every try, the first included, so give at least 1", p.Attempts)
	}
	if p.On&^Of(Reasons()...) != 0 {
		return fmt.Errorf("conditions %#x name no reason", uint16(p.On))
	}
	if p.PerTryTimeout < 0 {
		return fmt.Errorf("per_try_timeout %v is negative", p.PerTryTimeout)
	}
	if p.Budget != nil {
		return p.Budget.Validate()
	}
	return nil
}

// The defaults of a Budget's fields, as Envoy's: a fifth of the requests
// under way, and never fewer than three retries at once.
const (
	DefaultBudgetPercent        = 20
	DefaultBudgetMinConcurrency = 3
)

// Budget caps the retries under way at once at a fraction of the
// requests under way, with a floor: a retry may start while fewer than
// max(MinConcurrency, Percent% of the active requests) retries are
// running. When every backend fails, retries then add at most about that
// fraction to the load instead of multiplying it by the attempts; when
// few requests run, the floor still lets each be retried.
//
// A Budget is lock-free: two atomic counters. The zero value, with its
// fields set, is ready to use; the fields must not change once it is.
type Budget struct {
	// Percent is the share of active requests that may be retrying at
	// once, 0 to 100.
	Percent int
	// MinConcurrency is how many retries may run at once whatever the
	// number of requests.
	MinConcurrency int

	requests atomic.Int64
	retries  atomic.Int64
}

// Validate checks the budget's fields.
func (b *Budget) Validate() error {
	if b.Percent < 0 || b.Percent > 100 {
		return fmt.Errorf("budget percent is %d; give 0 to 100", b.Percent)
	}
	if b.MinConcurrency < 0 {
		return fmt.Errorf("budget min_concurrency is %d; give 0 or more", b.MinConcurrency)
	}
	return nil
}

// Start counts a request under way; Done must follow when it ends.
func (b *Budget) Start() { b.requests.Add(1) }

// Done counts the end of a request Start counted.
func (b *Budget) Done() { b.requests.Add(-1) }

// Acquire starts a retry if the budget allows one now, and reports
// whether it did; Release must follow when the retry's attempt ends.
// A request's retry counts among the active requests through its
// request (Start), not through the retry.
func (b *Budget) Acquire() bool {
	for {
		n := b.retries.Load()
		if n >= b.Limit() {
			return false
		}
		if b.retries.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release ends a retry Acquire started.
func (b *Budget) Release() { b.retries.Add(-1) }

// Limit returns how many retries may run at once now:
// max(MinConcurrency, ⌊Percent × active requests / 100⌋).
func (b *Budget) Limit() int64 {
	return max(int64(b.MinConcurrency), int64(b.Percent)*b.requests.Load()/100)
}

// Active returns the requests and the retries under way.
func (b *Budget) Active() (requests, retries int64) {
	return b.requests.Load(), b.retries.Load()
}

package retry

import (
	"sync"
	"testing"
	"time"
)

func TestParseReason(t *testing.T) {
	for _, r := range Reasons() {
		got, err := ParseReason(r.String())
		if err != nil || got != r {
			t.Errorf("ParseReason(%q) = %v, %v; want %v", r.String(), got, err, r)
		}
	}
	for _, bad := range []string{"", "500", "5xx", "Connect", "reset ", "gateway"} {
		if r, err := ParseReason(bad); err == nil {
			t.Errorf("ParseReason(%q) = %v, want an error", bad, r)
		}
	}
}

func TestForStatus(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   Reason
	}{{502, Status502}, {503, Status503}, {504, Status504}, {500, None}, {200, None}, {0, None}} {
		if got := ForStatus(tc.status); got != tc.want {
			t.Errorf("ForStatus(%d) = %v, want %v", tc.status, got, tc.want)
		}
	}
}

func TestConditions(t *testing.T) {
	c := Of(Connect, Status503)
	for _, r := range Reasons() {
		if want := r == Connect || r == Status503; c.Has(r) != want {
			t.Errorf("Has(%v) = %v, want %v", r, !want, want)
		}
	}
	if c.Has(None) || Conditions(1).Has(None) {
		t.Error("a set holds None")
	}
	if got := c.String(); got != "connect,503" {
		t.Errorf("String = %q", got)
	}
}

func TestPolicyRetries(t *testing.T) {
	p := &Policy{On: Of(Status503, Reset), Attempts: 3}
	for _, tc := range []struct {
		reason Reason
		tries  int
		want   bool
	}{
		{Status503, 1, true},
		{Status503, 2, true},
		{Status503, 3, false}, // the third try was the last
		{Reset, 1, true},
		{Status502, 1, false},
		{Connect, 1, false},
		{None, 1, false},
	} {
		if got := p.Retries(tc.reason, tc.tries); got != tc.want {
			t.Errorf("Retries(%v, %d) = %v, want %v", tc.reason, tc.tries, got, tc.want)
		}
	}
	var nilPolicy *Policy
	if nilPolicy.Retries(Connect, 1) {
		t.Error("a nil policy retries")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *Policy
		ok   bool
	}{
		{"minimal", &Policy{Attempts: 1}, true},
		{"full", &Policy{On: Of(Reasons()...), Attempts: 5, PerTryTimeout: time.Second, Budget: &Budget{Percent: 20, MinConcurrency: 3}}, true},
		{"no attempts", &Policy{}, false},
		{"unknown condition", &Policy{Attempts: 2, On: 1 << 12}, false},
		{"negative timeout", &Policy{Attempts: 2, PerTryTimeout: -1}, false},
		{"percent over 100", &Policy{Attempts: 2, Budget: &Budget{Percent: 101}}, false},
		{"negative floor", &Policy{Attempts: 2, Budget: &Budget{Percent: 10, MinConcurrency: -1}}, false},
	} {
		if err := tc.p.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestBudgetLimit(t *testing.T) {
	for _, tc := range []struct {
		percent, min int
		requests     int
		want         int64
	}{
		{20, 3, 0, 3},
		{20, 3, 8, 3},  // 20 % of 8 is 1.6: the floor holds
		{20, 3, 15, 3}, // exactly 3
		{20, 3, 16, 3}, // 3.2 rounds down
		{20, 3, 20, 4}, // above the floor
		{20, 3, 1000, 200},
		{100, 0, 7, 7},
		{0, 0, 100, 0}, // never
		{0, 2, 100, 2}, // the floor only
		{50, 1, 3, 1},
	} {
		b := &Budget{Percent: tc.percent, MinConcurrency: tc.min}
		for range tc.requests {
			b.Start()
		}
		if got := b.Limit(); got != tc.want {
			t.Errorf("percent %d, min %d, %d requests: Limit = %d, want %d", tc.percent, tc.min, tc.requests, got, tc.want)
		}
		granted := int64(0)
		for b.Acquire() {
			granted++
			if granted > 10_000 {
				t.Fatal("Acquire never refuses")
			}
		}
		if granted != tc.want {
			t.Errorf("percent %d, min %d, %d requests: %d retries granted, want %d", tc.percent, tc.min, tc.requests, granted, tc.want)
		}
		if tc.want > 0 {
			b.Release()
			if !b.Acquire() {
				t.Error("a released slot is not granted again")
			}
		}
	}
}

// TestBudgetConcurrent checks, with many goroutines starting requests
// and retries at once, that the retries running never exceed the limit
// computed from the requests that are certainly running, and that every
// counter returns to zero.
func TestBudgetConcurrent(t *testing.T) {
	b := &Budget{Percent: 25, MinConcurrency: 2}
	const workers, rounds = 16, 2000
	var mu sync.Mutex
	running, peak := int64(0), int64(0)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				b.Start()
				if b.Acquire() {
					mu.Lock()
					running++
					peak = max(peak, running)
					mu.Unlock()
					mu.Lock()
					running--
					mu.Unlock()
					b.Release()
				}
				b.Done()
			}
		}()
	}
	wg.Wait()
	// At most every worker's request runs at once: the limit is at most
	// max(2, 25 % of 16) = 4.
	if peak > 4 {
		t.Errorf("%d retries ran at once; the budget allows at most 4", peak)
	}
	if req, ret := b.Active(); req != 0 || ret != 0 {
		t.Errorf("after the run, %d requests and %d retries are active", req, ret)
	}
}

func TestStats(t *testing.T) {
	p := &Policy{On: Of(Status503), Attempts: 2}
	p.Counted(Status503)
	p.Counted(Status503)
	p.Counted(Connect)
	p.Refused()
	st := p.Stats()
	if st.Retries[Status503] != 2 || st.Retries[Connect] != 1 || st.Total != 3 || st.BudgetExhausted != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func BenchmarkBudget(b *testing.B) {
	bu := &Budget{Percent: 20, MinConcurrency: 3}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bu.Start()
			if bu.Acquire() {
				bu.Release()
			}
			bu.Done()
		}
	})
}

func TestClone(t *testing.T) {
	p := &Policy{On: Of(Reset), Attempts: 3, PerTryTimeout: time.Second, Budget: &Budget{Percent: 10, MinConcurrency: 2}}
	p.Counted(Reset)
	p.Budget.Start()
	c := p.Clone()
	if c.On != p.On || c.Attempts != 3 || c.PerTryTimeout != time.Second || c.Budget == p.Budget ||
		c.Budget.Percent != 10 || c.Budget.MinConcurrency != 2 {
		t.Errorf("Clone = %+v", c)
	}
	if c.Stats().Total != 0 {
		t.Error("a clone shares the counts")
	}
	if req, _ := c.Budget.Active(); req != 0 {
		t.Error("a clone shares the budget's counts")
	}
	if (&Policy{Attempts: 1}).Clone().Budget != nil {
		t.Error("a policy without a budget cloned with one")
	}
}

package l7

import (
	"net"
	"testing"
	"time"
)

func TestDeadlineChanges(t *testing.T) {
	base := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	const timeout = 16 * time.Second // slack: 1 s
	tests := []struct {
		name    string
		armed   time.Time
		t       time.Time
		timeout time.Duration
		want    bool
	}{
		{"nothing armed", time.Time{}, base, timeout, true},
		{"same deadline", base, base, timeout, false},
		{"later within the slack", base, base.Add(time.Second), timeout, false},
		{"later past the slack", base, base.Add(time.Second + 1), timeout, true},
		{"earlier by a nanosecond", base, base.Add(-1), timeout, true},
		{"exact: any later one", base, base.Add(1), 0, true},
		{"exact: the same one", base, base, 0, false},
		{"cleared", base, time.Time{}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := changes(unixNano(tt.armed), tt.t, tt.timeout); got != tt.want {
				t.Errorf("changes(%v, %v, %v) = %v, want %v", tt.armed, tt.t, tt.timeout, got, tt.want)
			}
		})
	}
}

// TestDeadlinesKeepAConnectionBounded checks the deadlines a connection
// really gets: a read extended by less than the slack keeps the earlier
// deadline and times out by it, and one moved earlier takes effect.
func TestDeadlinesKeepAConnectionBounded(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	d := deadlines{conn: a}
	now := time.Now()
	d.setRead(now.Add(time.Hour), 16*time.Hour)
	d.setRead(now.Add(time.Hour+time.Minute), 16*time.Hour) // kept: within the slack
	if want := now.Add(time.Hour).UnixNano(); d.read != want {
		t.Fatalf("armed %d, want the first deadline %d", d.read, want)
	}
	d.setRead(now.Add(50*time.Millisecond), 100*time.Millisecond) // earlier: set
	start := time.Now()
	_, err := a.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("read: %v, want a timeout", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the read timed out after %v, not by the 50 ms deadline", took)
	}
	d.forget()
	if d.read != 0 || d.write != 0 {
		t.Fatalf("forget left %d/%d", d.read, d.write)
	}
}

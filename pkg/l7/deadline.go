package l7

import (
	"net"
	"time"
)

// deadlineSlack is the fraction of a timeout by which a deadline may fire
// early: a deadline is only set again when it would move later by more
// than timeout/deadlineSlack. So a keep-alive connection serving a
// thousand requests a second re-arms each 60 s timeout about once every
// 4 s instead of on every request.
//
// Why it matters: each SetDeadline reads the clock three times and moves
// a timer in the runtime's heap. With four deadlines per proxied request,
// setting them and reading the clock for them took about 8 % of weir's
// samples (inclusive) in a perf profile of small keep-alive requests.
const deadlineSlack = 16

// deadlines keeps the read and write deadlines last set on one
// connection, so that extending one by a hair can be skipped. It is used
// by the goroutine serving the connection only; a deadline set on the
// connection by anything else must be followed by forget, or come from
// code (Shutdown) for which an earlier deadline than the one recorded is
// what it asked for.
type deadlines struct {
	conn net.Conn
	// read and write are the deadlines in force, in Unix nanoseconds; 0
	// when not known, which makes the next extension set its deadline.
	read, write int64
}

// setRead makes reads wait until t (for ever when t is zero). It keeps
// the deadline already set instead when that is no later than t and less
// than timeout/deadlineSlack earlier: timeout is what t was computed
// from, 0 for a deadline that must be exact.
func (d *deadlines) setRead(t time.Time, timeout time.Duration) {
	if changes(d.read, t, timeout) {
		d.read = unixNano(t)
		d.conn.SetReadDeadline(t)
	}
}

// setWrite is setRead for writes.
func (d *deadlines) setWrite(t time.Time, timeout time.Duration) {
	if changes(d.write, t, timeout) {
		d.write = unixNano(t)
		d.conn.SetWriteDeadline(t)
	}
}

// forget drops what is known of the connection's deadlines, after they
// were set on it directly.
func (d *deadlines) forget() { d.read, d.write = 0, 0 }

// changes reports whether the deadline t, computed from timeout, must
// replace the one in force, armed (Unix nanoseconds, 0 for none or
// unknown).
func changes(armed int64, t time.Time, timeout time.Duration) bool {
	want := unixNano(t)
	return armed == 0 || want < armed || want-armed > int64(timeout/deadlineSlack)
}

// unixNano is t in Unix nanoseconds, 0 for the zero time (no deadline).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

package accesslog

import (
	"testing"
	"time"
)

// TestTimeFormatsMatchTheLayouts: the hand-written formatters write
// exactly what time.Time.AppendFormat writes for their layouts, across
// zones east and west, half-hour offsets, UTC, and every month.
func TestTimeFormatsMatchTheLayouts(t *testing.T) {
	zones := []*time.Location{
		time.UTC,
		time.FixedZone("CET", 3600),
		time.FixedZone("PDT", -7*3600),
		time.FixedZone("IST", 5*3600+1800),
		time.FixedZone("NST", -(3*3600 + 1800)),
		time.FixedZone("LMT", 17*60+30), // seconds past the minute are not written
	}
	base := time.Date(2026, time.January, 2, 3, 4, 5, 6_789_000, time.UTC)
	for _, loc := range zones {
		for m := 0; m < 12; m++ {
			tm := base.AddDate(0, m, m*2).Add(time.Duration(m) * 97 * time.Minute).In(loc)
			if got, want := string(appendTimeLocal(nil, tm)), tm.Format(layoutLocal); got != want {
				t.Errorf("time_local of %v = %q, want %q", tm, got, want)
			}
			if got, want := string(appendTimeISO(nil, tm)), tm.Format(layoutISO); got != want {
				t.Errorf("time_iso of %v = %q, want %q", tm, got, want)
			}
		}
	}
	for _, year := range []int{1, 999, 9999} {
		tm := time.Date(year, time.December, 31, 23, 59, 59, 999_999_999, time.UTC)
		if got, want := string(appendTimeISO(nil, tm)), tm.Format(layoutISO); got != want {
			t.Errorf("time_iso of %v = %q, want %q", tm, got, want)
		}
	}
}

func BenchmarkAppendTimeLocal(b *testing.B) {
	tm, buf := time.Now(), make([]byte, 0, 64)
	for b.Loop() {
		buf = appendTimeLocal(buf[:0], tm)
	}
}

func BenchmarkAppendFormatLocal(b *testing.B) {
	tm, buf := time.Now(), make([]byte, 0, 64)
	for b.Loop() {
		buf = tm.AppendFormat(buf[:0], layoutLocal)
	}
}

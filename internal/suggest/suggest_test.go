package suggest

import (
	"strings"
	"testing"
)

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"threads", "threads", 0},
		{"thread", "threads", 1},
		{"helth_check", "health_check", 1},
		{"selecton", "selection", 1},
		{"kitten", "sitting", 3},
		{"round-robin", "round_robin", 1},
	}
	for _, tt := range tests {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := Distance(tt.b, tt.a); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d (symmetry)", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestClosest(t *testing.T) {
	known := []string{"tcp", "udp", "threads", "timeout"}
	tests := []struct {
		word string
		want string
		ok   bool
	}{
		{"TCP", "tcp", true}, // case is ignored
		{"ucp", "tcp", true}, // a tie goes to the earlier candidate
		{"thredz", "threads", true},
		{"sctp", "tcp", true},
		{"colour", "", false}, // nothing within two edits
		{"threadsss", "threads", true},
		{strings.Repeat("t", 1<<20), "", false},
	}
	for _, tt := range tests {
		got, ok := Closest(tt.word, known)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Closest(%.20q) = %q, %v; want %q, %v", tt.word, got, ok, tt.want, tt.ok)
		}
	}
}

package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseReport(t *testing.T) {
	tests := []struct {
		data     string
		wantKind reportKind
		wantMsg  string
	}{
		{readyMessage, reportReady, ""},
		{"FAIL\nbind: address already in use", reportFailed, "bind: address already in use"},
		{"FAIL\nline one\nline two\n", reportFailed, "line one\nline two"},
		{"FAIL\n", reportFailed, "no reason given"},
		{"", reportNone, ""},
		{"READY", reportNone, ""},          // cut short: not a report
		{"READY\nREADY\n", reportNone, ""}, // not one of ours
		{"hello", reportNone, ""},
	}
	for _, tt := range tests {
		kind, msg := parseReport([]byte(tt.data))
		if kind != tt.wantKind || msg != tt.wantMsg {
			t.Errorf("parseReport(%q) = %v, %q; want %v, %q", tt.data, kind, msg, tt.wantKind, tt.wantMsg)
		}
	}
}

// TestFailMessageRoundTrip checks that what Fail sends is what Start
// reads, and that an oversized reason is cut to fit the parent's limit.
func TestFailMessageRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"reason", errors.New("config: bad"), "config: bad"},
		{"nil", nil, "no reason given"},
		{"oversized", errors.New(strings.Repeat("x", 2*maxReport)), strings.Repeat("x", maxReport-len(failPrefix))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := failMessage(tt.err)
			if len(msg) > maxReport {
				t.Fatalf("message is %d bytes, more than the parent reads (%d)", len(msg), maxReport)
			}
			kind, got := parseReport(msg)
			if kind != reportFailed || got != tt.want {
				t.Errorf("parseReport(failMessage) = %v, %.40q; want failed, %.40q", kind, got, tt.want)
			}
		})
	}
}

// TestChildEnv checks that the daemon gets the caller's environment with
// exactly one ReadyFDEnv, ours.
func TestChildEnv(t *testing.T) {
	got := childEnv([]string{"A=1", ReadyFDEnv + "=9", "B=2", ReadyFDEnv + "X=keep"}, 3)
	want := []string{"A=1", "B=2", ReadyFDEnv + "X=keep", ReadyFDEnv + "=3"}
	if !slices.Equal(got, want) {
		t.Errorf("childEnv = %q, want %q", got, want)
	}
	t.Setenv("WEIR_DAEMON_TEST_MARK", "here")
	if env := childEnv(nil, 3); !slices.Contains(env, "WEIR_DAEMON_TEST_MARK=here") {
		t.Error("childEnv(nil) does not inherit this process's environment")
	}
}

// TestTail checks which lines of error_log a failed start quotes: only
// those written since the daemon started, at most tailLines of them,
// never a line cut in two.
func TestTail(t *testing.T) {
	var numbered []string
	for i := range 25 {
		numbered = append(numbered, fmt.Sprintf("line %d", i+1))
	}
	long := strings.Repeat("y", tailBytes) + "\nlast line\n"
	tests := []struct {
		name   string
		before string // in the file when the daemon started
		after  string // written by the daemon
		want   []string
	}{
		{name: "nothing new", before: "old\n", after: "", want: nil},
		{name: "only new lines", before: "old one\nold two\n", after: "new one\n\nnew two", want: []string{"new one", "new two"}},
		{name: "last ten", before: "", after: strings.Join(numbered, "\n") + "\n", want: numbered[25-tailLines:]},
		{name: "cut line dropped", before: "", after: long, want: []string{"last line"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "error.log")
			if err := os.WriteFile(path, []byte(tt.before+tt.after), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := tail(path, int64(len(tt.before)))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("tail = %q, want %q", got, tt.want)
			}
		})
	}
}

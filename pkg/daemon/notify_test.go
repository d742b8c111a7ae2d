package daemon

import (
	"errors"
	"os"
	"testing"
)

// TestNilNotifierDoesNothing: a process in the foreground gets a nil
// Notifier, and reporting through it must be harmless.
func TestNilNotifierDoesNothing(t *testing.T) {
	var n *Notifier
	for name, call := range map[string]func() error{
		"Ready":     n.Ready,
		"Fail":      func() error { return n.Fail(errors.New("x")) },
		"Reloading": n.Reloading,
		"Stopping":  n.Stopping,
		"Status":    func() error { return n.Status("x") },
		"HandOver":  func() error { return n.HandOver(1) },
		"Close":     n.Close,
	} {
		if err := call(); err != nil {
			t.Errorf("nil Notifier %s = %v, want nil", name, err)
		}
	}
	if n.Detached() {
		t.Error("nil Notifier reports Detached")
	}
}

// TestFromEnvWithoutSupervisor: neither Start nor systemd started this
// process, so there is nothing to report to.
func TestFromEnvWithoutSupervisor(t *testing.T) {
	t.Setenv(NotifySocketEnv, "")
	os.Unsetenv(NotifySocketEnv)
	n, err := FromEnv()
	if n != nil || err != nil {
		t.Fatalf("FromEnv = %v, %v; want nil, nil", n, err)
	}
}

func TestParseFD(t *testing.T) {
	tests := []struct {
		value string
		want  int
		ok    bool
	}{
		{"3", 3, true},
		{"17", 17, true},
		{"2", 0, false}, // standard error
		{"0", 0, false},
		{"-4", 0, false},
		{"three", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := parseFD(tt.value)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("parseFD(%q) = %d, %v; want %d, ok=%v", tt.value, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadEnv) {
			t.Errorf("parseFD(%q) error %v does not wrap ErrBadEnv", tt.value, err)
		}
	}
}

func TestOneLine(t *testing.T) {
	tests := map[string]string{
		"serving":                      "serving",
		"a.yaml:3:1: x\na.yaml:9:2: y": "a.yaml:3:1: x; a.yaml:9:2: y",
		"a\r\nb\n\nc\n":                "a; b; c",
		"":                             "",
	}
	for in, want := range tests {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

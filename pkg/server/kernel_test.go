package server

import (
	"log/slog"
	"strings"
	"testing"
)

// TestDrainingKernelAttachesNothingNew: once a server stops serving (a
// shutdown, or a hand-over to a new weir sharing its pins), it attaches
// no interface it had not attached already, so that it never moves one
// the new weir uses to its own configuration's hook; the ones it had stay
// as they are, without a call into the data plane.
func TestDrainingKernelAttachesNothingNew(t *testing.T) {
	k := &kernel{log: slog.New(slog.DiscardHandler), attached: map[string]bool{"eth0": true}}
	k.drain()
	if err := k.attach("eth0"); err != nil {
		t.Errorf("attach of an interface already attached: %v", err)
	}
	err := k.attach("eth1")
	if err == nil || !strings.Contains(err.Error(), "handing over") {
		t.Errorf("attach of a new interface while draining = %v; want a refusal that says why", err)
	}
	if k.attached["eth1"] {
		t.Error("eth1 recorded as attached")
	}
}

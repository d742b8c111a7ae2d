package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// grace_period_seconds: 0, which Pingora users write to mean "no grace
// after the hand-over", must not make the hand-over itself impossible:
// the two processes still wait for each other for the floor
// (minHandoverWait), and an upgrade succeeds in either order.
func TestUpgradeWithZeroGracePeriod(t *testing.T) {
	for _, order := range []string{"new weir first", "SIGQUIT first"} {
		t.Run(order, func(t *testing.T) {
			lab := newUpgradeLab(t)
			conf, err := os.ReadFile(lab.conf)
			if err != nil {
				t.Fatal(err)
			}
			zero := strings.Replace(string(conf), "grace_period_seconds: 5", "grace_period_seconds: 0", 1)
			if zero == string(conf) {
				t.Fatal("the lab's configuration has no grace_period_seconds: 5 to replace")
			}
			if err := os.WriteFile(lab.conf, []byte(zero), 0o644); err != nil {
				t.Fatal(err)
			}
			logs := logFile(t)
			old := startWeir(t, logs, "-c", lab.conf)
			lab.waitPIDFile(t, old.cmd.Process.Pid)
			waitServing(t, lab.addr)

			var next *weirProc
			if order == "new weir first" {
				next = startWeir(t, logs, "-u", "-c", lab.conf)
				old.signal(t, syscall.SIGQUIT)
			} else {
				old.signal(t, syscall.SIGQUIT)
				next = startWeir(t, logs, "-u", "-c", lab.conf)
			}
			select {
			case err := <-next.exited:
				t.Fatalf("the new weir exited (%v) instead of taking over\n%s", err, logs)
			case err := <-old.exited:
				if err != nil {
					t.Fatalf("the old weir exited with %v\n%s", err, logs)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("the old weir did not hand over within 20s\n%s", logs)
			}
			if strings.Contains(logs.String(), "upgrade failed") {
				t.Fatalf("the upgrade failed:\n%s", logs)
			}
			lab.waitPIDFile(t, next.cmd.Process.Pid)
			waitServing(t, lab.addr)
			next.signal(t, syscall.SIGTERM)
			if err := next.waitExit(t, 20*time.Second); err != nil {
				t.Fatalf("the new weir exited with %v", err)
			}
		})
	}
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/dataplane"
)

// TestReloadDetachesDroppedInterface runs weir in a network namespace
// with one l4 service on each of two veths, at tc and at XDP, then drops
// one from the configuration and reloads (SIGHUP): the new weir, once
// the old one has handed over, detaches weir's hooks from the dropped
// veth and says so, and the other keeps its hook.
func TestReloadDetachesDroppedInterface(t *testing.T) {
	testenv.NeedRoot(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		testenv.SkipOrFail(t, "test needs nsenter: "+err.Error())
	}
	for _, c := range []struct {
		attach string
		veth   dataplane.Attachment
	}{
		{"tc", dataplane.AttachedTCX},
		{"xdp", dataplane.AttachedXDPNative},
	} {
		t.Run(c.attach, func(t *testing.T) {
			ns := testNetns(t)
			for _, v := range [][2]string{{"weir-a", "weir-b"}, {"weir-c", "weir-d"}} {
				for _, args := range [][]string{
					{"-n", ns, "link", "add", v[0], "type", "veth", "peer", "name", v[1]},
					{"-n", ns, "link", "set", v[0], "up"},
				} {
					if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
						t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
					}
				}
			}
			dir := t.TempDir()
			lab := &upgradeLab{dir: dir, conf: filepath.Join(dir, "weir.yaml"), pidFile: filepath.Join(dir, "weir.pid"),
				pinPath: filepath.Join(testenv.BPFFS(t), "weir")}
			backend := freeAddr(t)
			write := func(ifnames ...string) {
				var b strings.Builder
				fmt.Fprintf(&b, "version: 1\nbpf: {pin_path: %s, attach: %s}\npid_file: %s\nupgrade_sock: %s\n"+
					"grace_period_seconds: 5\ngraceful_shutdown_timeout_seconds: 1\nservices:\n",
					lab.pinPath, c.attach, lab.pidFile, filepath.Join(dir, "upgrade.sock"))
				for i, ifname := range ifnames {
					fmt.Fprintf(&b, "  - {name: vip-%s, kind: l4, protocol: tcp, vip: \"192.0.2.%d:80\", dataplane: bpf, interface: %s, upstream: {backends: [%q]}}\n",
						ifname, 10+i, ifname, backend)
				}
				if err := os.WriteFile(lab.conf, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("weir-a", "weir-c")
			logs := logFile(t)
			old := runWeir(t, exec.Command("nsenter", "--net=/run/netns/"+ns, os.Args[0], "-c", lab.conf), logs)
			waitLog(t, logs, "weir is serving")
			hooked := interfacesIn(t, ns, lab.pinPath)
			if hooked["weir-a"] != c.veth || hooked["weir-c"] != c.veth {
				t.Fatalf("before the reload: weir-a runs %q, weir-c %q; want %q on both", hooked["weir-a"], hooked["weir-c"], c.veth)
			}

			write("weir-a")
			// The runWeir process is nsenter, which execs weir: same pid.
			old.signal(t, syscall.SIGHUP)
			next := lab.followReload(t, old, logs)
			waitLog(t, logs, "BPF data plane detached from an interface the configuration no longer uses")
			hooked = interfacesIn(t, ns, lab.pinPath)
			if a, ok := hooked["weir-c"]; ok {
				t.Errorf("after the reload: weir-c, no longer configured, runs %q", a)
			}
			if hooked["weir-a"] != c.veth {
				t.Errorf("after the reload: weir-a runs %q, want %q", hooked["weir-a"], c.veth)
			}
			out := logs.String()
			if n := strings.Count(out, "BPF data plane detached"); n != 1 || !strings.Contains(out, "interface=weir-c") {
				t.Errorf("%d detaches logged, want one, of weir-c:\n%s", n, out)
			}
			next.signal(t, syscall.SIGTERM)
			next.waitExit(t, 20*time.Second)
		})
	}
}

// interfacesIn reads, inside the named network namespace, how the data
// plane pinned at pin hooks each interface.
func interfacesIn(t *testing.T, ns, pin string) map[string]dataplane.Attachment {
	t.Helper()
	var states []dataplane.InterfaceState
	err := testenv.OnThreadIn(enterNamed(ns), func() error {
		dp, err := dataplane.Open(dataplane.Options{PinPath: pin})
		if err != nil {
			return err
		}
		defer dp.Close()
		states, err = dp.Interfaces()
		return err
	})
	if err != nil {
		t.Fatalf("read the hooks in %s: %v", ns, err)
	}
	out := map[string]dataplane.Attachment{}
	for _, s := range states {
		out[s.Name] = s.Attachment
	}
	return out
}

package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/bpffs"
	"github.com/weir-lb/weir/internal/testenv"
)

// privatePinsWarning is the start of the line weir logs when its pinned
// BPF objects cannot outlive it.
const privatePinsWarning = "bpf.pin_path is on a bpffs mounted only in weir's own mount namespace"

// `ip netns exec` runs weir in a mount namespace of its own, created for
// that one command, where /sys is remounted and /sys/fs/bpf is no bpffs;
// the bpffs weir mounts there, and everything pinned in it, disappears
// when weir exits. weir says so once, with the fix. Run with
// `nsenter --net` (as scripts/lab runs it), in the host's mount
// namespace, it pins on the host's bpffs and says nothing.
func TestPrivateBPFFSIsReported(t *testing.T) {
	testenv.NeedRoot(t)
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.SkipOrFail(t, fmt.Sprintf("test needs %s: %v", tool, err))
		}
	}
	ns := testNetns(t)
	suffix := strings.TrimPrefix(ns, "weir-test-")

	// Under ip netns exec, /sys/fs/bpf is whatever weir mounts there.
	t.Run("ip netns exec", func(t *testing.T) {
		pin := "/sys/fs/bpf/weir-test-" + suffix
		logs := runInNetns(t, ns, pin, "ip", "netns", "exec", ns)
		if n := strings.Count(logs, privatePinsWarning); n != 1 {
			t.Fatalf("weir warned %d times about its private bpffs, want once:\n%s", n, logs)
		}
		if !strings.Contains(logs, "nsenter --net=/run/netns/NAME") {
			t.Errorf("the warning does not give the fix (nsenter --net=/run/netns/NAME):\n%s", logs)
		}
		if bpffs.On("/sys/fs/bpf") {
			// What the warning is about: the pins went with weir.
			if _, err := os.Stat(pin); err == nil {
				t.Errorf("%s exists on the host's bpffs: weir pinned there after all", pin)
			}
		}
	})

	// With nsenter --net, weir keeps the host's mount namespace: its pins
	// go to the host's /sys/fs/bpf, or to a bpffs the test mounts in the
	// host's namespace when the host has none there (so that weir mounts
	// nothing on the host).
	t.Run("nsenter --net", func(t *testing.T) {
		pin := filepath.Join(testenv.BPFFS(t), "weir")
		if bpffs.On("/sys/fs/bpf") {
			pin = "/sys/fs/bpf/weir-test-" + suffix
			t.Cleanup(func() { os.RemoveAll(pin) })
		}
		logs := runInNetns(t, ns, pin, "nsenter", "--net=/run/netns/"+ns)
		if strings.Contains(logs, privatePinsWarning) {
			t.Fatalf("weir warned about a private bpffs in the host's mount namespace:\n%s", logs)
		}
	})
}

// testNetns creates a network namespace named weir-test-RANDOM with its
// loopback up, removed when the test ends.
func testNetns(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	ns := "weir-test-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		testenv.SkipOrFail(t, fmt.Sprintf("cannot create a network namespace: %v: %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v: %s", ns, err, out)
	}
	return ns
}

// runInNetns runs weir through the wrapper command (ip netns exec, or
// nsenter) in ns, with an HTTP listener steered by BPF whose pins go
// under pin, until it serves; then stops it and returns its log.
func runInNetns(t *testing.T, ns, pin string, wrapper ...string) string {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "weir.yaml")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`version: 1
threads: 2
pid_file: %s
upgrade_sock: %s
bpf: {pin_path: %s}
services:
  - {name: hello, kind: respond, body: "hello", listen: ["127.0.0.1:8080"]}
`, filepath.Join(dir, "weir.pid"), filepath.Join(dir, "upgrade.sock"), pin)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	logs := logFile(t)
	args := append(append([]string{}, wrapper[1:]...), os.Args[0], "-c", conf)
	w := runWeir(t, exec.Command(wrapper[0], args...), logs)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "weir is serving") {
		select {
		case err := <-w.exited:
			t.Fatalf("weir exited (%v) before serving:\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("weir did not serve within 20s:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.signal(t, syscall.SIGTERM)
	if err := w.waitExit(t, 20*time.Second); err != nil {
		t.Fatalf("weir exited with %v:\n%s", err, logs)
	}
	out := logs.String()
	if strings.Contains(out, "SO_REUSEPORT steering in BPF is unavailable") {
		testenv.SkipOrFail(t, "weir pinned nothing: SO_REUSEPORT steering in BPF is unavailable here")
	}
	return out
}

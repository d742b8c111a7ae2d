//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/weir-lb/weir/internal/testenv"
)

// testOptions keeps maps small so that tests stay fast; TableSize is prime,
// as Maglev wants.
func testOptions(pinPath string) Options {
	return Options{PinPath: pinPath, MaxServices: 4, MaxBackends: 8, TableSize: 251, MaxFlows: 4096}
}

// needBPF skips or fails t unless it may load tc programs.
func needBPF(t testing.TB) {
	t.Helper()
	testenv.NeedRoot(t)
	if err := features.HaveProgramType(ebpf.SchedCLS); err != nil {
		testenv.SkipOrFail(t, fmt.Sprintf("kernel cannot load tc programs: %v", err))
	}
}

// newBPFFS mounts a private bpffs for t and returns its path.
func newBPFFS(t testing.TB) string {
	t.Helper()
	return testenv.BPFFS(t)
}

func unmount(t testing.TB, dir string) {
	t.Helper()
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		t.Errorf("unmount %s: %v", dir, err)
	}
}

// openTest opens a Dataplane on a fresh bpffs, closed when t ends.
func openTest(t testing.TB) *Dataplane {
	t.Helper()
	needBPF(t)
	return openAt(t, testOptions(filepath.Join(newBPFFS(t), "weir")))
}

func openAt(t testing.TB, opts Options) *Dataplane {
	t.Helper()
	d, err := Open(opts)
	if errors.Is(err, ErrUnsupported) {
		testenv.SkipOrFail(t, err.Error())
	}
	if err != nil {
		t.Fatalf("Open(%+v): %v", opts, err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// newNetns creates a network namespace, closed when t ends.
func newNetns(t testing.TB) netns.NsHandle { return testenv.Netns(t) }

// inNetns runs f on a thread inside ns and returns its error.
func inNetns(ns netns.NsHandle, f func() error) error {
	return testenv.InNetns(ns, f)
}

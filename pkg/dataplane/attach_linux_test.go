//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// attachedPrograms lists the programs on ifname's ingress, tcx and legacy tc
// separately, from inside ns.
func attachedPrograms(t *testing.T, ns netns.NsHandle, ifname string) (tcx, legacy []ebpf.ProgramID) {
	t.Helper()
	err := inNetns(ns, func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		for _, p := range res.Programs {
			tcx = append(tcx, p.ID)
		}
		filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			return err
		}
		for _, f := range filters {
			if bf, ok := f.(*netlink.BpfFilter); ok {
				legacy = append(legacy, ebpf.ProgramID(bf.Id))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("query %s: %v", ifname, err)
	}
	return tcx, legacy
}

func progID(t *testing.T, d *Dataplane) ebpf.ProgramID {
	t.Helper()
	info, err := d.objs.WeirIngress.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("kernel reports no program id")
	}
	return id
}

func TestAttachDetach(t *testing.T) {
	needBPF(t)
	modes := []struct {
		name string
		mode attachMode
	}{{"tcx", attachTCX}, {"legacy tc", attachLegacy}}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			opts := testOptions(filepath.Join(newBPFFS(t), "weir"))
			ns := newNetns(t)
			if err := inNetns(ns, func() error { return addVeth("weir-a", "weir-b") }); err != nil {
				t.Fatal(err)
			}
			// want reports the program expected on weir-a, in this mode's hook.
			want := func(id ...ebpf.ProgramID) {
				t.Helper()
				tcx, legacy := attachedPrograms(t, ns, "weir-a")
				wantTCX, wantLegacy := id, []ebpf.ProgramID(nil)
				if m.mode == attachLegacy {
					wantTCX, wantLegacy = nil, id
				}
				if !slices.Equal(tcx, wantTCX) || !slices.Equal(legacy, wantLegacy) {
					t.Errorf("attached: tcx %v, legacy %v; want tcx %v, legacy %v", tcx, legacy, wantTCX, wantLegacy)
				}
			}
			attach := func(d *Dataplane, ifname string) error {
				return inNetns(ns, func() error { return d.Attach(ifname) })
			}
			detach := func(d *Dataplane, ifname string) error {
				return inNetns(ns, func() error { return d.Detach(ifname) })
			}

			first, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			first.mode = m.mode
			for range 2 { // idempotent
				if err := attach(first, "weir-a"); err != nil {
					t.Fatalf("Attach: %v", err)
				}
			}
			firstID := progID(t, first)
			want(firstID)
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			want(firstID) // outlives the process that attached it

			// The next process takes over the hook in place.
			second := openAt(t, opts)
			second.mode = m.mode
			if err := attach(second, "weir-a"); err != nil {
				t.Fatalf("Attach from a new Dataplane: %v", err)
			}
			want(progID(t, second))

			for range 2 { // idempotent
				if err := detach(second, "weir-a"); err != nil {
					t.Fatalf("Detach: %v", err)
				}
			}
			want()
			if _, err := os.Stat(second.linkPin("weir-a")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("link pin after Detach: %v, want it gone", err)
			}

			if err := attach(second, "weir-missing"); !errors.Is(err, ErrNoInterface) {
				t.Errorf("Attach(weir-missing): %v, want ErrNoInterface", err)
			}
			if err := detach(second, "weir-missing"); !errors.Is(err, ErrNoInterface) {
				t.Errorf("Detach(weir-missing): %v, want ErrNoInterface", err)
			}
			if err := attach(second, "../x"); !errors.Is(err, ErrNoInterface) {
				t.Errorf("Attach(../x): %v, want ErrNoInterface", err)
			}
		})
	}
}

// TestAttachAfterInterfaceRecreated covers a pinned tcx link whose interface
// was deleted and created again under the same name.
func TestAttachAfterInterfaceRecreated(t *testing.T) {
	needBPF(t)
	d := openAt(t, testOptions(filepath.Join(newBPFFS(t), "weir")))
	ns := newNetns(t)
	step := func(what string, f func() error) {
		t.Helper()
		if err := inNetns(ns, f); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	step("add veth", func() error { return addVeth("weir-a", "weir-b") })
	step("attach", func() error { return d.Attach("weir-a") })
	step("delete veth", func() error {
		l, err := netlink.LinkByName("weir-a")
		if err != nil {
			return err
		}
		return netlink.LinkDel(l)
	})
	step("re-add veth", func() error { return addVeth("weir-a", "weir-b") })
	step("attach again", func() error { return d.Attach("weir-a") })
	if tcx, _ := attachedPrograms(t, ns, "weir-a"); !slices.Equal(tcx, []ebpf.ProgramID{progID(t, d)}) {
		t.Errorf("tcx programs on the new weir-a: %v", tcx)
	}
	step("delete veth", func() error {
		l, err := netlink.LinkByName("weir-a")
		if err != nil {
			return err
		}
		return netlink.LinkDel(l)
	})
	// Detach still removes the pin of the vanished interface.
	step("detach", func() error { return d.Detach("weir-a") })
	if _, err := os.Stat(d.linkPin("weir-a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link pin after Detach: %v, want it gone", err)
	}
}

// TestAttachTCXReplacesLegacyFilter covers an upgrade to a kernel with tcx:
// the filter an older attachment left must not keep running behind tcx.
func TestAttachTCXReplacesLegacyFilter(t *testing.T) {
	needBPF(t)
	d := openAt(t, testOptions(filepath.Join(newBPFFS(t), "weir")))
	ns := newNetns(t)
	if err := inNetns(ns, func() error { return addVeth("weir-a", "weir-b") }); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []attachMode{attachLegacy, attachAuto} {
		d.mode = mode
		if err := inNetns(ns, func() error { return d.Attach("weir-a") }); err != nil {
			t.Fatalf("Attach in mode %d: %v", mode, err)
		}
	}
	tcx, legacy := attachedPrograms(t, ns, "weir-a")
	if want := []ebpf.ProgramID{progID(t, d)}; !slices.Equal(tcx, want) || len(legacy) != 0 {
		t.Errorf("attached: tcx %v, legacy %v; want tcx %v only", tcx, legacy, want)
	}
}

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
)

// hooked is what runs on an interface's ingress.
type hooked struct {
	tcx, legacy []ebpf.ProgramID
	xdp         ebpf.ProgramID // 0: none
	xdpGeneric  bool
}

// hookedOn reads what runs on ifname's ingress, from inside ns.
func hookedOn(t *testing.T, ns netns.NsHandle, ifname string) hooked {
	t.Helper()
	var h hooked
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
			h.tcx = append(h.tcx, p.ID)
		}
		filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			return err
		}
		for _, f := range filters {
			if bf, ok := f.(*netlink.BpfFilter); ok {
				h.legacy = append(h.legacy, ebpf.ProgramID(bf.Id))
			}
		}
		if x := l.Attrs().Xdp; x != nil && x.Attached {
			h.xdp = ebpf.ProgramID(x.ProgId)
			h.xdpGeneric = x.AttachMode == nl.XDP_ATTACHED_SKB
		}
		return nil
	})
	if err != nil {
		t.Fatalf("query %s: %v", ifname, err)
	}
	return h
}

// attachedPrograms lists the programs on ifname's tc ingress, tcx and
// legacy tc separately, from inside ns.
func attachedPrograms(t *testing.T, ns netns.NsHandle, ifname string) (tcx, legacy []ebpf.ProgramID) {
	t.Helper()
	h := hookedOn(t, ns, ifname)
	return h.tcx, h.legacy
}

func (h hooked) String() string {
	return fmt.Sprintf("tcx %v, tc filter %v, xdp %d (generic %t)", h.tcx, h.legacy, h.xdp, h.xdpGeneric)
}

func (h hooked) equal(o hooked) bool {
	return slices.Equal(h.tcx, o.tcx) && slices.Equal(h.legacy, o.legacy) && h.xdp == o.xdp && h.xdpGeneric == o.xdpGeneric
}

// expectHooked is what attachment a of d's programs looks like: XDP has
// the tc build behind it, on a tcx link unless d is forced to legacy tc.
func expectHooked(t *testing.T, d *Dataplane, a Attachment) hooked {
	t.Helper()
	tc := hooked{tcx: []ebpf.ProgramID{progID(t, d)}}
	if a == AttachedTCFilter || (a.Hook() == HookXDP && d.mode == attachLegacy) {
		tc = hooked{legacy: []ebpf.ProgramID{progID(t, d)}}
	}
	switch a {
	case AttachedTCX, AttachedTCFilter:
		return tc
	case AttachedXDPNative, AttachedXDPGeneric:
		prog, err := d.xdpProgram()
		if err != nil {
			t.Fatal(err)
		}
		tc.xdp, tc.xdpGeneric = programID(t, prog), a == AttachedXDPGeneric
		return tc
	}
	t.Fatalf("unknown attachment %q", a)
	return hooked{}
}

func progID(t *testing.T, d *Dataplane) ebpf.ProgramID {
	t.Helper()
	return programID(t, d.objs.WeirIngress)
}

func programID(t *testing.T, p *ebpf.Program) ebpf.ProgramID {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("kernel reports no program id")
	}
	return id
}

// pinnedLinkID is the id of the link pinned at pin, 0 when there is none.
func pinnedLinkID(t *testing.T, pin string) link.ID {
	t.Helper()
	l, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.ID
}

// addBridge adds a bridge, a device whose driver has no native XDP.
func addBridge(name string) error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge %s: %w", name, err)
	}
	return netlink.LinkSetUp(br)
}

// attachCases are the ways AttachHook hooks an interface: veths run XDP in
// their driver, bridges do not.
var attachCases = []struct {
	name   string
	mode   attachMode
	hook   Hook
	bridge bool
	want   Attachment
}{
	{"tcx", attachTCX, HookTC, false, AttachedTCX},
	{"legacy tc", attachLegacy, HookTC, false, AttachedTCFilter},
	{"xdp native", attachAuto, HookXDP, false, AttachedXDPNative},
	{"xdp generic", attachAuto, HookXDP, true, AttachedXDPGeneric},
	{"auto native", attachAuto, HookAuto, false, AttachedXDPNative},
	{"auto without native", attachAuto, HookAuto, true, AttachedTCX},
}

func TestAttachDetach(t *testing.T) {
	needBPF(t)
	for _, c := range attachCases {
		t.Run(c.name, func(t *testing.T) {
			opts := testOptions(filepath.Join(newBPFFS(t), "weir"))
			ns := newNetns(t)
			if err := inNetns(ns, func() error {
				if c.bridge {
					return addBridge("weir-a")
				}
				return addVeth("weir-a", "weir-b")
			}); err != nil {
				t.Fatal(err)
			}
			want := func(h hooked) {
				t.Helper()
				if got := hookedOn(t, ns, "weir-a"); !got.equal(h) {
					t.Errorf("attached: %s; want %s", got, h)
				}
			}
			attach := func(d *Dataplane, ifname string) (a Attachment, err error) {
				err = inNetns(ns, func() error {
					a, err = d.AttachHook(ifname, c.hook)
					return err
				})
				return a, err
			}
			detach := func(d *Dataplane, ifname string) error {
				return inNetns(ns, func() error { return d.Detach(ifname) })
			}
			// The link that carries the hook (tcx behind XDP is checked
			// by TestAttachMovesBetweenHooks).
			pin := func(d *Dataplane) string {
				if c.want.Hook() == HookXDP {
					return d.xdpPin("weir-a")
				}
				return d.linkPin("weir-a")
			}

			first, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			first.mode = c.mode
			for range 2 { // idempotent
				a, err := attach(first, "weir-a")
				if err != nil || a != c.want {
					t.Fatalf("AttachHook(%s) = %q, %v; want %q", c.hook, a, err, c.want)
				}
			}
			before := expectHooked(t, first, c.want)
			want(before)
			linkID := pinnedLinkID(t, pin(first))
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			want(before) // outlives the process that attached it

			// The next process takes over the hook in place: the same link,
			// its program.
			second := openAt(t, opts)
			second.mode = c.mode
			if a, err := attach(second, "weir-a"); err != nil || a != c.want {
				t.Fatalf("AttachHook(%s) from a new Dataplane = %q, %v; want %q", c.hook, a, err, c.want)
			}
			want(expectHooked(t, second, c.want))
			if id := pinnedLinkID(t, pin(second)); id != linkID {
				t.Errorf("pinned link %d after the take-over, want %d (the same, updated)", id, linkID)
			}

			for range 2 { // idempotent
				if err := detach(second, "weir-a"); err != nil {
					t.Fatalf("Detach: %v", err)
				}
			}
			want(hooked{})
			for _, p := range []string{second.linkPin("weir-a"), second.xdpPin("weir-a")} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("link pin %s after Detach: %v, want it gone", p, err)
				}
			}

			if _, err := attach(second, "weir-missing"); !errors.Is(err, ErrNoInterface) {
				t.Errorf("AttachHook(weir-missing): %v, want ErrNoInterface", err)
			}
			if err := detach(second, "weir-missing"); !errors.Is(err, ErrNoInterface) {
				t.Errorf("Detach(weir-missing): %v, want ErrNoInterface", err)
			}
			if _, err := attach(second, "../x"); !errors.Is(err, ErrNoInterface) {
				t.Errorf("AttachHook(../x): %v, want ErrNoInterface", err)
			}
		})
	}
}

// TestAttachMovesBetweenHooks covers a reload or upgrade that changes an
// interface's hook: after each attach exactly one hook runs the program,
// whichever process attached before.
func TestAttachMovesBetweenHooks(t *testing.T) {
	needBPF(t)
	opts := testOptions(filepath.Join(newBPFFS(t), "weir"))
	ns := newNetns(t)
	if err := inNetns(ns, func() error {
		return errors.Join(addVeth("weir-a", "weir-b"), addBridge("weir-br"))
	}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		ifname string
		mode   attachMode
		hook   Hook
		want   Attachment
	}{
		{"weir-a", attachTCX, HookTC, AttachedTCX},
		{"weir-a", attachAuto, HookXDP, AttachedXDPNative},
		{"weir-a", attachTCX, HookTC, AttachedTCX},
		{"weir-a", attachAuto, HookAuto, AttachedXDPNative},
		{"weir-a", attachLegacy, HookTC, AttachedTCFilter},
		{"weir-a", attachAuto, HookXDP, AttachedXDPNative},
		{"weir-a", attachLegacy, HookTC, AttachedTCFilter},
		{"weir-a", attachAuto, HookTC, AttachedTCX},
		// A generic XDP link does not do for auto, which moves to tc.
		{"weir-br", attachAuto, HookXDP, AttachedXDPGeneric},
		{"weir-br", attachAuto, HookAuto, AttachedTCX},
		{"weir-br", attachAuto, HookXDP, AttachedXDPGeneric},
	}
	for i, s := range steps {
		// Every other step is a new process, as after an upgrade.
		d := openAt(t, opts)
		d.mode = s.mode
		var a Attachment
		err := inNetns(ns, func() (err error) {
			a, err = d.AttachHook(s.ifname, s.hook)
			return err
		})
		if err != nil || a != s.want {
			t.Fatalf("step %d: AttachHook(%s, %s) = %q, %v; want %q", i, s.ifname, s.hook, a, err, s.want)
		}
		if got, want := hookedOn(t, ns, s.ifname), expectHooked(t, d, s.want); !got.equal(want) {
			t.Errorf("step %d (%s on %s): attached %s; want %s", i, s.hook, s.ifname, got, want)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAttachAfterInterfaceRecreated covers pinned links (tcx, and XDP
// with tcx behind it) whose interface was deleted and created again under
// the same name.
func TestAttachAfterInterfaceRecreated(t *testing.T) {
	needBPF(t)
	for _, hook := range []Hook{HookTC, HookXDP} {
		t.Run(hook.String(), func(t *testing.T) { testAttachAfterInterfaceRecreated(t, hook) })
	}
}

func testAttachAfterInterfaceRecreated(t *testing.T, hook Hook) {
	d := openAt(t, testOptions(filepath.Join(newBPFFS(t), "weir")))
	ns := newNetns(t)
	step := func(what string, f func() error) {
		t.Helper()
		if err := inNetns(ns, f); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	attach := func() error {
		_, err := d.AttachHook("weir-a", hook)
		return err
	}
	deleteVeth := func() error {
		l, err := netlink.LinkByName("weir-a")
		if err != nil {
			return err
		}
		return netlink.LinkDel(l)
	}
	step("add veth", func() error { return addVeth("weir-a", "weir-b") })
	step("attach", attach)
	step("delete veth", deleteVeth)
	step("re-add veth", func() error { return addVeth("weir-a", "weir-b") })
	step("attach again", attach)
	want := AttachedTCX
	if hook == HookXDP {
		want = AttachedXDPNative
	}
	if got, want := hookedOn(t, ns, "weir-a"), expectHooked(t, d, want); !got.equal(want) {
		t.Errorf("on the new weir-a: %s; want %s", got, want)
	}
	step("delete veth", deleteVeth)
	// Detach still removes the pins of the vanished interface.
	step("detach", func() error { return d.Detach("weir-a") })
	for _, pin := range []string{d.linkPin("weir-a"), d.xdpPin("weir-a")} {
		if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("link pin %s after Detach: %v, want it gone", pin, err)
		}
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

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

// TestInterfacesAndDetachUnused attaches a data plane to two interfaces,
// each way AttachHook can, reads them back with Interfaces (from a second
// Dataplane on the same pins, as `weir status` does), then detaches the
// one no longer in use: the other keeps its hooks, and so does the
// interface a weir pinned elsewhere hooked with a tc filter of the same
// identity.
func TestInterfacesAndDetachUnused(t *testing.T) {
	needBPF(t)
	for _, c := range attachCases {
		t.Run(c.name, func(t *testing.T) {
			bpffs := newBPFFS(t)
			ns := newNetns(t)
			if err := inNetns(ns, func() error {
				if c.bridge {
					return errors.Join(addBridge("weir-a"), addBridge("weir-c"), addBridge("weir-e"))
				}
				return errors.Join(addVeth("weir-a", "weir-b"), addVeth("weir-c", "weir-d"), addVeth("weir-e", "weir-f"))
			}); err != nil {
				t.Fatal(err)
			}
			d := openAt(t, testOptions(filepath.Join(bpffs, "weir")))
			d.mode = c.mode
			// Another weir's tc filter, on its own pins.
			other := openAt(t, testOptions(filepath.Join(bpffs, "other")))
			other.mode = attachLegacy
			if err := inNetns(ns, func() error {
				_, err := other.AttachHook("weir-e", HookTC)
				for _, ifname := range []string{"weir-a", "weir-c"} {
					a, aerr := d.AttachHook(ifname, c.hook)
					if aerr == nil && a != c.want {
						aerr = errors.New(ifname + " got " + string(a))
					}
					err = errors.Join(err, aerr)
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			otherHooks := hookedOn(t, ns, "weir-e")
			want := InterfaceState{Attachment: c.want, TC: AttachedTCX}
			if c.want == AttachedTCFilter {
				want.TC = AttachedTCFilter
			}
			reader := openAt(t, testOptions(filepath.Join(bpffs, "weir")))
			var got []InterfaceState
			if err := inNetns(ns, func() (err error) { got, err = reader.Interfaces(); return err }); err != nil {
				t.Fatal(err)
			}
			wantA, wantC := want, want
			wantA.Name, wantC.Name = "weir-a", "weir-c"
			if !slices.Equal(got, []InterfaceState{wantA, wantC}) {
				t.Errorf("Interfaces() = %+v; want %+v", got, []InterfaceState{wantA, wantC})
			}

			var detached []InterfaceState
			if err := inNetns(ns, func() (err error) {
				detached, err = reader.DetachUnused(func(ifname string) bool { return ifname == "weir-a" })
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(detached, []InterfaceState{wantC}) {
				t.Errorf("DetachUnused detached %+v; want %+v", detached, []InterfaceState{wantC})
			}
			if h := hookedOn(t, ns, "weir-c"); !h.equal(hooked{}) {
				t.Errorf("weir-c still runs %s", h)
			}
			if h, w := hookedOn(t, ns, "weir-a"), expectHooked(t, d, c.want); !h.equal(w) {
				t.Errorf("weir-a, in use: %s; want %s", h, w)
			}
			if h := hookedOn(t, ns, "weir-e"); !h.equal(otherHooks) {
				t.Errorf("the other weir's weir-e: %s; want %s", h, otherHooks)
			}
			if err := inNetns(ns, func() (err error) { got, err = reader.Interfaces(); return err }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, []InterfaceState{wantA}) {
				t.Errorf("after DetachUnused, Interfaces() = %+v; want %+v", got, []InterfaceState{wantA})
			}
		})
	}
}

// TestDetachUnusedRemovesStalePins: the pins of an interface that was
// deleted go, whichever hook it had, and are reported without an
// attachment.
func TestDetachUnusedRemovesStalePins(t *testing.T) {
	needBPF(t)
	for _, hook := range []Hook{HookTC, HookXDP} {
		t.Run(hook.String(), func(t *testing.T) {
			d := openTest(t)
			ns := newNetns(t)
			var detached []InterfaceState
			if err := inNetns(ns, func() error {
				if err := addVeth("weir-a", "weir-b"); err != nil {
					return err
				}
				if _, err := d.AttachHook("weir-a", hook); err != nil {
					return err
				}
				if err := deleteLink("weir-a"); err != nil {
					return err
				}
				got, err := d.Interfaces()
				if err != nil || len(got) != 0 {
					return errors.Join(err, errors.New("Interfaces lists a deleted interface"))
				}
				detached, err = d.DetachUnused(func(string) bool { return false })
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(detached, []InterfaceState{{Name: "weir-a"}}) {
				t.Errorf("DetachUnused detached %+v; want the stale pins of weir-a", detached)
			}
			for _, pin := range []string{d.linkPin("weir-a"), d.xdpPin("weir-a")} {
				if id := pinnedLinkID(t, pin); id != 0 {
					t.Errorf("%s still pins link %d", pin, id)
				}
			}
		})
	}
}

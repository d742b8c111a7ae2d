//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The prefixes of the links' pins under PinPath (linkPin, xdpPin).
const (
	tcxPinPrefix = "link_ingress_"
	xdpPinPrefix = "link_xdp_"
)

// Interfaces reads back from the kernel which interfaces the program
// hooks, and how, sorted by name: the tcx and XDP links pinned under
// PinPath, whose interface still goes by the name of the pin, and weir's
// tc filters whose program works on this data plane's maps (those of
// another weir, pinned elsewhere, are not this one's). It reads what
// AttachHook left, whichever process attached, so that `weir status`
// can show it without asking the running weir.
func (d *Dataplane) Interfaces() ([]InterfaceState, error) {
	if err := d.lock(); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	h, err := d.hooked()
	if err != nil {
		return nil, err
	}
	out := make([]InterfaceState, 0, len(h.states))
	for _, name := range h.names() {
		if st, ok := h.states[name]; ok {
			out = append(out, st)
		}
	}
	return out, nil
}

// DetachUnused unhooks the program from every interface it hooks (as
// Interfaces reads them) for which inUse is false, both hooks, and
// removes the pins of links whose interface is gone. It reports what it
// detached, in name order; an entry with no Attachment is a pin whose
// interface no longer existed. Hooks that are not weir's (another
// tool's, or those of a weir pinned elsewhere) are never touched, nor is
// an interface inUse reports, however it is hooked.
func (d *Dataplane) DetachUnused(inUse func(ifname string) bool) ([]InterfaceState, error) {
	if err := d.lock(); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	h, err := d.hooked()
	if err != nil {
		return nil, err
	}
	var done []InterfaceState
	var errs []error
	for _, name := range h.names() {
		if inUse(name) {
			continue
		}
		st := h.states[name]
		st.Name = name
		// XDP first: the tc build behind it must outlive it, as in
		// AttachHook, for the packets XDP passes to the stack.
		_, err := d.detachXDP(name)
		if err == nil {
			_, err = d.detachTCX(name)
		}
		if err == nil && st.TC == AttachedTCFilter {
			err = detachLegacy(name, h.ifindex[name])
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, st)
	}
	return done, errors.Join(errs...)
}

// hookSet is what hooked found.
type hookSet struct {
	// states are the hooked interfaces by name, ifindex their indexes.
	states  map[string]InterfaceState
	ifindex map[string]int
	// pins are the names of every link pin, hooked or stale.
	pins map[string]bool
}

// names are every interface name of h, sorted.
func (h hookSet) names() []string {
	var out []string
	for n := range h.pins {
		out = append(out, n)
	}
	for n := range h.states {
		if !h.pins[n] {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// hooked finds weir's hooks: its pinned links and its tc filters.
func (d *Dataplane) hooked() (hookSet, error) {
	h := hookSet{states: map[string]InterfaceState{}, ifindex: map[string]int{}, pins: map[string]bool{}}
	entries, err := os.ReadDir(d.opts.PinPath)
	if err != nil {
		return h, fmt.Errorf("dataplane: list the pins in %s: %w", d.opts.PinPath, err)
	}
	for _, e := range entries {
		for _, prefix := range []string{tcxPinPrefix, xdpPinPrefix} {
			name, ok := strings.CutPrefix(e.Name(), prefix)
			if !ok || validIfname(name) != nil {
				continue
			}
			h.pins[name] = true
			if err := d.readPin(h, name, prefix); err != nil {
				return h, err
			}
		}
	}
	return h, d.readFilters(h)
}

// readPin records in h the link pinned as prefix+name, when it still
// hooks an interface of that name.
func (d *Dataplane) readPin(h hookSet, name, prefix string) error {
	pin := d.linkPin(name)
	if prefix == xdpPinPrefix {
		pin = d.xdpPin(name)
	}
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		return fmt.Errorf("dataplane: %s: load pinned link %s: %w", name, pin, err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return fmt.Errorf("dataplane: %s: inspect pinned link %s: %w", name, pin, err)
	}
	var ifindex int
	switch {
	case info.TCX() != nil:
		ifindex = int(info.TCX().Ifindex)
	case info.XDP() != nil:
		ifindex = int(info.XDP().Ifindex)
	}
	if ifindex == 0 || !namedAt(name, ifindex) {
		// Its interface is gone, or was renamed: the link hooks nothing
		// of that name.
		return nil
	}
	st := h.states[name]
	st.Name = name
	h.ifindex[name] = ifindex
	if prefix == tcxPinPrefix {
		st.TC = AttachedTCX
		if st.Attachment == "" {
			st.Attachment = AttachedTCX
		}
	} else {
		a, err := xdpAttachment(name, ifindex)
		if err != nil {
			return err
		}
		st.Attachment = a
	}
	h.states[name] = st
	return nil
}

// namedAt reports whether interface ifindex is called name.
func namedAt(name string, ifindex int) bool {
	l, err := netlink.LinkByIndex(ifindex)
	return err == nil && l.Attrs().Name == name
}

// readFilters records in h the interfaces that carry a tc filter of
// weir's (its handle and priority) whose program uses this data plane's
// maps.
func (d *Dataplane) readFilters(h hookSet) error {
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("dataplane: list interfaces: %w", err)
	}
	for _, l := range links {
		filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			continue // no clsact qdisc
		}
		if err != nil {
			return fmt.Errorf("dataplane: %s: list tc filters: %w", l.Attrs().Name, err)
		}
		for _, f := range filters {
			bf, ok := f.(*netlink.BpfFilter)
			if !ok || bf.Handle != legacyFilterHandle || bf.Priority != legacyFilterPriority {
				continue
			}
			mine, err := d.usesMaps(bf.Id)
			if err != nil {
				return fmt.Errorf("dataplane: %s: inspect the program of the tc filter: %w", l.Attrs().Name, err)
			}
			if !mine {
				continue
			}
			name := l.Attrs().Name
			st := h.states[name]
			st.Name, st.TC = name, AttachedTCFilter
			if st.Attachment == "" {
				st.Attachment = AttachedTCFilter
			}
			h.states[name], h.ifindex[name] = st, l.Attrs().Index
		}
	}
	return nil
}

// usesMaps reports whether program id works on this data plane's pinned
// maps: whatever weir process loaded it, it is this PinPath's program.
func (d *Dataplane) usesMaps(id int) (bool, error) {
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // unloaded since the listing
	}
	if err != nil {
		return false, err
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return false, err
	}
	ids, ok := info.MapIDs()
	if !ok {
		return false, fmt.Errorf("the kernel does not say which maps program %d uses", id)
	}
	mi, err := d.objs.WeirV1Svc.Info()
	if err != nil {
		return false, err
	}
	own, ok := mi.ID()
	if !ok {
		return false, errors.New("the kernel does not give map IDs")
	}
	return slices.Contains(ids, own), nil
}

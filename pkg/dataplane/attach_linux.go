//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// attachMode selects the hook Attach uses.
type attachMode int

const (
	attachAuto   attachMode = iota // tcx where the kernel has it (6.6+), else legacy
	attachTCX                      // tcx link only
	attachLegacy                   // clsact qdisc and a direct-action cls_bpf filter
)

// The legacy filter's identity. Unusual values, so that weir never replaces
// another tool's filter; the priority only orders it after theirs.
const (
	legacyFilterPriority = 0x7765
	legacyFilterHandle   = 0x77656972
	legacyFilterName     = "weir_v1"
)

// Attach hooks the program to ifname's ingress, where both client packets
// and backend replies arrive. With tcx the link is pinned under PinPath, so
// it outlives the process; a legacy tc filter lives in the qdisc anyway.
// Attaching again replaces the program in place (how an upgrade takes
// effect) and is otherwise a no-op.
func (d *Dataplane) Attach(ifname string) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	ifindex, err := interfaceIndex(ifname)
	if err != nil {
		return err
	}
	if d.mode != attachLegacy {
		err = d.attachTCX(ifname, ifindex)
		if err == nil {
			// A tc filter left by a weir that ran before tcx was available
			// would see packets tcx passed on.
			return detachLegacy(ifname, ifindex)
		}
		if d.mode == attachTCX || !errors.Is(err, ebpf.ErrNotSupported) {
			return err
		}
	}
	return d.attachLegacy(ifname, ifindex)
}

func (d *Dataplane) attachTCX(ifname string, ifindex int) error {
	pin := d.linkPin(ifname)
	l, err := link.LoadPinnedLink(pin, nil)
	switch {
	case err == nil:
		done, err := d.reuseLink(l, ifname, ifindex)
		if done || err != nil {
			return err
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("dataplane: %s: load pinned link %s: %w", ifname, pin, err)
	}
	l, err = link.AttachTCX(link.TCXOptions{
		Interface: ifindex,
		Program:   d.objs.WeirIngress,
		Attach:    ebpf.AttachTCXIngress,
	})
	if err != nil {
		return fmt.Errorf("dataplane: %s: attach tcx ingress: %w", ifname, err)
	}
	defer l.Close()
	if err := l.Pin(pin); err != nil {
		// Closing the only handle of an unpinned link detaches it again.
		return fmt.Errorf("dataplane: %s: pin link at %s: %w", ifname, pin, err)
	}
	return nil
}

// reuseLink updates a pinned link that still hooks ifname to the current
// program (done). A link whose interface is gone, or was recreated under
// the same name, is unpinned so that a new one can be attached.
func (d *Dataplane) reuseLink(l link.Link, ifname string, ifindex int) (done bool, err error) {
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return false, fmt.Errorf("dataplane: %s: inspect pinned link: %w", ifname, err)
	}
	if tcx := info.TCX(); tcx != nil && int(tcx.Ifindex) == ifindex {
		if err := l.Update(d.objs.WeirIngress); err != nil {
			return false, fmt.Errorf("dataplane: %s: replace program of pinned link: %w", ifname, err)
		}
		return true, nil
	}
	if err := l.Unpin(); err != nil {
		return false, fmt.Errorf("dataplane: %s: unpin stale link: %w", ifname, err)
	}
	return false, nil
}

func (d *Dataplane) attachLegacy(ifname string, ifindex int) error {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
	if err := netlink.QdiscAdd(qdisc); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("dataplane: %s: add clsact qdisc: %w", ifname, err)
	}
	if err := netlink.FilterReplace(legacyFilter(ifindex, d.objs.WeirIngress.FD())); err != nil {
		return fmt.Errorf("dataplane: %s: add tc filter: %w", ifname, err)
	}
	return nil
}

func legacyFilter(ifindex, fd int) *netlink.BpfFilter {
	return &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    netlink.HANDLE_MIN_INGRESS,
			Handle:    legacyFilterHandle,
			Protocol:  unix.ETH_P_ALL,
			Priority:  legacyFilterPriority,
		},
		Fd:           fd,
		Name:         legacyFilterName,
		DirectAction: true,
	}
}

// Detach unhooks the program from ifname, whichever way Attach hooked it.
// Detaching an interface that is not attached does nothing; a pinned link
// of an interface that no longer exists is removed.
func (d *Dataplane) Detach(ifname string) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := validIfname(ifname); err != nil {
		return err
	}
	unpinned, err := d.detachTCX(ifname)
	if err != nil {
		return err
	}
	ifindex, err := interfaceIndex(ifname)
	if err != nil {
		if unpinned {
			return nil
		}
		return err
	}
	return detachLegacy(ifname, ifindex)
}

func (d *Dataplane) detachTCX(ifname string) (found bool, err error) {
	pin := d.linkPin(ifname)
	l, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dataplane: %s: load pinned link %s: %w", ifname, pin, err)
	}
	defer l.Close()
	// A link whose interface vanished is already detached.
	if err := l.Detach(); err != nil && !errors.Is(err, unix.ENOLINK) && !errors.Is(err, ebpf.ErrNotSupported) {
		return true, fmt.Errorf("dataplane: %s: detach link: %w", ifname, err)
	}
	if err := l.Unpin(); err != nil {
		return true, fmt.Errorf("dataplane: %s: unpin link: %w", ifname, err)
	}
	return true, nil
}

func detachLegacy(ifname string, ifindex int) error {
	err := netlink.FilterDel(legacyFilter(ifindex, 0))
	if err == nil || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
		// ENOENT: no such filter; EINVAL: no clsact qdisc at all.
		return nil
	}
	return fmt.Errorf("dataplane: %s: delete tc filter: %w", ifname, err)
}

// linkPin is where the tcx link of ifname is pinned.
func (d *Dataplane) linkPin(ifname string) string {
	return filepath.Join(d.opts.PinPath, "link_ingress_"+ifname)
}

func interfaceIndex(ifname string) (int, error) {
	if err := validIfname(ifname); err != nil {
		return 0, err
	}
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %v", ErrNoInterface, ifname, err)
	}
	return l.Attrs().Index, nil
}

// validIfname rejects names the kernel would, and any that could escape
// PinPath when used in a file name.
func validIfname(ifname string) error {
	if ifname == "" || len(ifname) >= unix.IFNAMSIZ || strings.ContainsAny(ifname, "/ \t\n:") ||
		ifname == "." || ifname == ".." {
		return fmt.Errorf("%w: %q is not a valid interface name", ErrNoInterface, ifname)
	}
	return nil
}

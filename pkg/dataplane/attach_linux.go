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
	"github.com/vishvananda/netlink/nl"
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

// Attach hooks the program to ifname's tc ingress: AttachHook with
// HookTC.
func (d *Dataplane) Attach(ifname string) error {
	_, err := d.AttachHook(ifname, HookTC)
	return err
}

// AttachHook hooks the program to ifname's ingress, where both client
// packets and backend replies arrive, at hook, and reports how. With
// HookXDP (and HookAuto where it chooses XDP) the tc build runs at tc
// ingress too, behind the XDP one, for the packets XDP leaves to the
// stack untouched (those whose next hop's neighbour is not resolved yet).
// Links (tcx and XDP) are pinned under PinPath, so they outlive the
// process; a legacy tc filter lives in the qdisc anyway. Attaching again
// at the same hook replaces the programs in place (how an upgrade takes
// effect) and is otherwise a no-op. Attaching at another hook moves the
// interface there without a moment when neither hook runs: tc is
// attached (or updated) first, then XDP attached or removed.
func (d *Dataplane) AttachHook(ifname string, hook Hook) (Attachment, error) {
	if err := d.lock(); err != nil {
		return "", err
	}
	defer d.mu.Unlock()
	ifindex, err := interfaceIndex(ifname)
	if err != nil {
		return "", err
	}
	if hook != HookTC && hook != HookXDP && hook != HookAuto {
		return "", fmt.Errorf("dataplane: %s: unknown %s", ifname, hook)
	}
	tc, err := d.attachTC(ifname, ifindex)
	if err != nil {
		return "", err
	}
	if hook != HookTC {
		a, err := d.attachXDP(ifname, ifindex, hook == HookXDP)
		if !errors.Is(err, errNoNativeXDP) {
			return a, err
		}
		// auto, and the driver cannot run XDP itself: tc alone.
	}
	if _, err := d.detachXDP(ifname); err != nil {
		return "", err
	}
	return tc, nil
}

// attachTC attaches the tc build at tc ingress.
func (d *Dataplane) attachTC(ifname string, ifindex int) (Attachment, error) {
	if d.mode != attachLegacy {
		err := d.attachTCX(ifname, ifindex)
		if err == nil {
			// A tc filter left by a weir that ran before tcx was available
			// would see packets tcx passed on.
			return AttachedTCX, detachLegacy(ifname, ifindex)
		}
		if d.mode == attachTCX || !errors.Is(err, ebpf.ErrNotSupported) {
			return "", err
		}
	}
	if err := d.attachLegacy(ifname, ifindex); err != nil {
		return "", err
	}
	// Nor may a tcx link of an earlier attachment run before the filter.
	_, err := d.detachTCX(ifname)
	return AttachedTCFilter, err
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

// errNoNativeXDP reports, for HookAuto, an interface whose driver cannot
// run XDP itself, or a kernel that refused the XDP build.
var errNoNativeXDP = errors.New("dataplane: no native XDP")

// attachXDP attaches the XDP program to ifname, natively, else (when
// generic is set) in generic mode, and pins the link; a pinned link that
// still hooks ifname gets the current program instead. Without generic a
// driver that cannot run XDP natively is errNoNativeXDP.
func (d *Dataplane) attachXDP(ifname string, ifindex int, generic bool) (Attachment, error) {
	prog, err := d.xdpProgram()
	if err != nil {
		if !generic {
			return "", fmt.Errorf("%w: %s: %v", errNoNativeXDP, ifname, err)
		}
		return "", fmt.Errorf("dataplane: %s: attach xdp: %w", ifname, err)
	}
	pin := d.xdpPin(ifname)
	l, err := link.LoadPinnedLink(pin, nil)
	switch {
	case err == nil:
		a, err := reuseXDPLink(l, prog, ifname, ifindex, generic)
		if a != "" || err != nil {
			return a, err
		}
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("dataplane: %s: load pinned link %s: %w", ifname, pin, err)
	}
	a := AttachedXDPNative
	l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
	if err != nil {
		if !generic {
			return "", fmt.Errorf("%w: %s: %v", errNoNativeXDP, ifname, err)
		}
		native := err
		a = AttachedXDPGeneric
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPGenericMode})
		if err != nil {
			return "", fmt.Errorf("dataplane: %s: attach xdp: native mode: %v; generic mode: %w", ifname, native, err)
		}
	}
	defer l.Close()
	if err := l.Pin(pin); err != nil {
		// Closing the only handle of an unpinned link detaches it again.
		return "", fmt.Errorf("dataplane: %s: pin link at %s: %w", ifname, pin, err)
	}
	return a, nil
}

// reuseXDPLink updates a pinned XDP link that still hooks ifname to prog
// and reports its mode. A generic link does not do for HookAuto (generic
// unset): that is errNoNativeXDP, and AttachHook removes the link once tc
// runs. A link whose interface is gone, or was recreated under the same
// name, is unpinned (no attachment, no error).
func reuseXDPLink(l link.Link, prog *ebpf.Program, ifname string, ifindex int, generic bool) (Attachment, error) {
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return "", fmt.Errorf("dataplane: %s: inspect pinned link: %w", ifname, err)
	}
	if x := info.XDP(); x == nil || int(x.Ifindex) != ifindex {
		if err := l.Unpin(); err != nil {
			return "", fmt.Errorf("dataplane: %s: unpin stale link: %w", ifname, err)
		}
		return "", nil
	}
	a, err := xdpAttachment(ifname, ifindex)
	if err != nil {
		return "", err
	}
	if a == AttachedXDPGeneric && !generic {
		return "", fmt.Errorf("%w: %s runs weir's XDP link in generic mode", errNoNativeXDP, ifname)
	}
	if err := l.Update(prog); err != nil {
		return "", fmt.Errorf("dataplane: %s: replace program of pinned link: %w", ifname, err)
	}
	return a, nil
}

// xdpAttachment reads the mode of the XDP program on ifindex.
func xdpAttachment(ifname string, ifindex int) (Attachment, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrNoInterface, ifname, err)
	}
	if x := l.Attrs().Xdp; x != nil && x.AttachMode == nl.XDP_ATTACHED_SKB {
		return AttachedXDPGeneric, nil
	}
	return AttachedXDPNative, nil
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

// Detach unhooks the program from ifname, whichever hook and way
// AttachHook used. Detaching an interface that is not attached does
// nothing; a pinned link of an interface that no longer exists is
// removed.
func (d *Dataplane) Detach(ifname string) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := validIfname(ifname); err != nil {
		return err
	}
	unpinnedXDP, err := d.detachXDP(ifname)
	if err != nil {
		return err
	}
	unpinnedTCX, err := d.detachTCX(ifname)
	if err != nil {
		return err
	}
	ifindex, err := interfaceIndex(ifname)
	if err != nil {
		if unpinnedXDP || unpinnedTCX {
			return nil
		}
		return err
	}
	return detachLegacy(ifname, ifindex)
}

func (d *Dataplane) detachTCX(ifname string) (found bool, err error) {
	return detachPinned(ifname, d.linkPin(ifname))
}

func (d *Dataplane) detachXDP(ifname string) (found bool, err error) {
	return detachPinned(ifname, d.xdpPin(ifname))
}

// detachPinned detaches and unpins the link pinned at pin, if any.
func detachPinned(ifname, pin string) (found bool, err error) {
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
	return filepath.Join(d.opts.PinPath, tcxPinPrefix+ifname)
}

// xdpPin is where the XDP link of ifname is pinned.
func (d *Dataplane) xdpPin(ifname string) string {
	return filepath.Join(d.opts.PinPath, xdpPinPrefix+ifname)
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

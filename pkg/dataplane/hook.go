package dataplane

import "fmt"

// Hook is where on an interface's ingress the program runs.
type Hook uint8

// The hooks AttachHook accepts.
const (
	// HookTC runs the program at tc ingress: on a tcx link where the
	// kernel has one (6.6+), else as a cls_bpf filter on a clsact qdisc.
	// It sees every packet as a socket buffer, after the driver and
	// generic receive offload; it works on any interface.
	HookTC Hook = iota
	// HookXDP runs the program's XDP build at XDP, before the kernel
	// allocates a socket buffer: in the driver (native mode) where it
	// supports XDP, else in generic mode, which runs it just before tc and
	// saves little over it. The tc build runs behind it at tc ingress, as
	// with HookTC, for the packets XDP leaves to the stack untouched: those
	// whose next hop's neighbour is not resolved yet, which XDP cannot
	// resolve, and those that are not the data plane's.
	HookXDP
	// HookAuto is HookXDP where the driver runs XDP natively and HookTC
	// elsewhere.
	HookAuto
)

// String names h as the configuration does: "tc", "xdp", "auto".
func (h Hook) String() string {
	switch h {
	case HookTC:
		return "tc"
	case HookXDP:
		return "xdp"
	case HookAuto:
		return "auto"
	}
	return fmt.Sprintf("hook(%d)", uint8(h))
}

// ParseHook parses a Hook's name.
func ParseHook(s string) (Hook, error) {
	for _, h := range []Hook{HookTC, HookXDP, HookAuto} {
		if h.String() == s {
			return h, nil
		}
	}
	return 0, fmt.Errorf("dataplane: unknown hook %q: want tc, xdp or auto", s)
}

// Attachment is how AttachHook hooked an interface.
type Attachment string

// The attachments AttachHook reports.
const (
	// AttachedTCX is a tcx link at tc ingress.
	AttachedTCX Attachment = "tcx"
	// AttachedTCFilter is a cls_bpf filter on a clsact qdisc, where the
	// kernel predates tcx.
	AttachedTCFilter Attachment = "tc filter"
	// AttachedXDPNative is an XDP link in the driver, with the tc build
	// behind it (on a tcx link, or a filter where the kernel predates tcx).
	AttachedXDPNative Attachment = "xdp native"
	// AttachedXDPGeneric is an XDP link in generic mode (the driver has no
	// XDP support), with the tc build behind it.
	AttachedXDPGeneric Attachment = "xdp generic"
)

// Hook is the hook of the attachment.
func (a Attachment) Hook() Hook {
	if a == AttachedXDPNative || a == AttachedXDPGeneric {
		return HookXDP
	}
	return HookTC
}

// InterfaceState is how the program hooks one interface, as read back
// from the kernel: the links pinned under PinPath and weir's tc filters.
type InterfaceState struct {
	// Name is the interface's name, after which its pins are named.
	Name string
	// Attachment is the hook as AttachHook reports it: tcx or tc filter,
	// or with an XDP link, xdp native or xdp generic.
	Attachment Attachment
	// TC is the tc build's attachment, AttachedTCX or AttachedTCFilter:
	// with XDP the one behind it. It is empty where only the XDP build
	// runs, which AttachHook never leaves.
	TC Attachment
}

// String says how the interface is hooked: "xdp native, tcx behind".
func (s InterfaceState) String() string {
	if s.Attachment.Hook() == HookXDP {
		tc := s.TC
		if tc == "" {
			tc = "no tc"
		}
		return fmt.Sprintf("%s, %s behind", s.Attachment, tc)
	}
	return string(s.Attachment)
}

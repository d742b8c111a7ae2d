package config

import (
	"gopkg.in/yaml.v3"
)

// Attach is the hook the BPF data plane's program runs at on an interface
// (key attach of bpf, and of an entry of bpf.interfaces).
type Attach string

// The hooks.
const (
	// AttachTC runs the program at tc ingress, on any interface. The
	// default.
	AttachTC Attach = "tc"
	// AttachXDP runs it at XDP: in the driver where it supports XDP
	// (native mode), else in generic mode.
	AttachXDP Attach = "xdp"
	// AttachAuto is native XDP where the driver supports it, else tc.
	AttachAuto Attach = "auto"
)

// BPFInterface is one interface's settings (an entry of bpf.interfaces).
type BPFInterface struct {
	// Pos is where the interface's mapping is written.
	Pos Position
	// Attach is the interface's hook (key attach, default bpf.attach).
	Attach Attach
}

// AttachOn is the hook of interface ifname: its bpf.interfaces entry's,
// else bpf.attach.
func (b BPF) AttachOn(ifname string) Attach {
	if i, ok := b.Interfaces[ifname]; ok {
		return i.Attach
	}
	return b.Attach
}

// attachKeys are the attach choices, in the order errors list them.
var attachKeys = []Attach{AttachTC, AttachXDP, AttachAuto}

// bpfInterfaces reads bpf.interfaces: interface names to their settings,
// whose attach defaults to def.
func (p *parser) bpfInterfaces(n *yaml.Node, def Attach) map[string]BPFInterface {
	const path = "bpf.interfaces"
	if n.Kind != yaml.MappingNode {
		p.wrongType(n, path, "a mapping of interface names to their settings, as in {eth0: {attach: xdp}}")
		return nil
	}
	sm := p.mapping(n, path, nil)
	out := make(map[string]BPFInterface, len(sm.order))
	for _, name := range sm.order {
		k, v := sm.keys[name], sm.vals[name]
		if _, ok := p.str(k, path); !ok {
			continue
		}
		if msg := checkInterfaceName(name); msg != "" {
			p.errorf(k, sm.at(name), "%s", msg)
			continue
		}
		im := p.mapping(v, sm.at(name), []string{"attach"})
		if im == nil {
			continue
		}
		i := BPFInterface{Pos: p.pos(k), Attach: def}
		if !im.has("attach") {
			im.missing("attach", "say which hook the program runs at on "+name+": attach: tc, xdp or auto")
		}
		enumField(im, "attach", &i.Attach, attachKeys...)
		out[name] = i
	}
	return out
}

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"fmt"

	"github.com/weir-lb/weir/bpf"
)

// The program looks a packet up as a reply only when its destination port
// is in weir_v1_reply_ports: the hull of every half's SNAT ports. Both
// halves count, so that when a service's range changes the replies of
// flows on the old range are still translated until the service changes
// again (or, for a deleted service, until its reverse entries go; its last
// half keeps its range). A port in the hull but in no range costs a
// lookup that finds nothing, never a wrong translation: reverse entries
// are made on ports of a range only.

// portRange converts the program's [first, first+count) to a PortRange.
func portRange(r bpf.WeirPortRange) PortRange {
	if r.Count == 0 {
		return PortRange{}
	}
	return PortRange{First: r.First, Last: uint16(uint32(r.First) + uint32(r.Count) - 1)}
}

// weirPortRange converts r to the program's [first, first+count).
func weirPortRange(r PortRange) bpf.WeirPortRange {
	return bpf.WeirPortRange{First: r.First, Count: uint16(r.Len())}
}

// halfPorts returns the SNAT ports of every half, read from the maps the
// first time and kept up to date by setHalfPorts since: one process
// changes services at a time.
func (d *Dataplane) halfPorts() ([]PortRange, error) {
	if d.snatPorts != nil {
		return d.snatPorts, nil
	}
	ports := make([]PortRange, d.opts.halves())
	var sv bpf.WeirService
	for half := range ports {
		if err := d.objs.WeirV1Svc.Lookup(uint32(half), &sv); err != nil {
			return nil, fmt.Errorf("dataplane: read SNAT ports of half %d: %w", half, err)
		}
		ports[half] = portRange(sv.SnatPorts)
	}
	d.snatPorts = ports
	return ports, nil
}

// setHalfPorts records that half now holds ports and widens or narrows
// weir_v1_reply_ports to the hull of all halves. Called after the half is
// written and before it goes live, so that the first reply of a flow on
// the new range is already looked up.
func (d *Dataplane) setHalfPorts(half uint32, ports PortRange) error {
	all, err := d.halfPorts()
	if err != nil {
		return err
	}
	all[half] = ports
	var hull PortRange
	for _, r := range all {
		hull = hull.hull(r)
	}
	if err := d.objs.WeirV1ReplyPorts.Put(uint32(0), weirPortRange(hull)); err != nil {
		return fmt.Errorf("dataplane: write the reply ports %s: %w", hull, err)
	}
	return nil
}

// ReplyPorts is what weir_v1_reply_ports holds: the ports a packet must be
// addressed to for the program to look it up as a reply.
func (d *Dataplane) ReplyPorts() (PortRange, error) {
	if err := d.lock(); err != nil {
		return PortRange{}, err
	}
	defer d.mu.Unlock()
	var r bpf.WeirPortRange
	if err := d.objs.WeirV1ReplyPorts.Lookup(uint32(0), &r); err != nil {
		return PortRange{}, fmt.Errorf("dataplane: read the reply ports: %w", err)
	}
	return portRange(r), nil
}

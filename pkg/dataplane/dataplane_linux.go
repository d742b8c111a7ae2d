//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/rlimit"

	"github.com/weir-lb/weir/bpf"
	"github.com/weir-lb/weir/internal/bpffs"
)

// Dataplane is a loaded data plane: the program and the pinned maps it
// shares with every other weir process using the same PinPath. Its methods
// are safe for concurrent use; only one process should change services at a
// time.
type Dataplane struct {
	opts Options
	// mode selects how Attach hooks the program; tests force legacy tc.
	mode attachMode

	mu     sync.Mutex
	closed bool
	objs   bpf.WeirObjects
	// xdp is the XDP build of the program, on the same pinned maps; nil
	// when the kernel refused it, for the reason in xdpErr.
	xdp    *ebpf.Program
	xdpErr error
	// snatPorts caches the SNAT ports of every half of weir_v1_svc (see
	// halfPorts); nil until first needed.
	snatPorts []PortRange
}

// Open loads the program, in its tc and XDP builds, and creates, or reuses,
// the maps pinned under opts.PinPath. It mounts bpffs on PinPath's parent
// when needed. A kernel that takes the tc build but not the XDP one is no
// error: only attaching in XDP mode then fails, with the kernel's reason.
func Open(opts Options) (*Dataplane, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := features.HaveProgramType(ebpf.SchedCLS); err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return nil, fmt.Errorf("%w: tc programs: %v", ErrUnsupported, err)
		}
		return nil, fmt.Errorf("dataplane: probe tc program support: %w", err)
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones
	// make this a no-op.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("dataplane: lift memlock limit: %w", err)
	}
	if err := ensureBPFFS(opts.PinPath); err != nil {
		return nil, err
	}
	d := &Dataplane{opts: opts, mode: attachAuto}
	if err := d.load(); err != nil {
		return nil, err
	}
	d.xdp, d.xdpErr = loadXDP(d.opts)
	return d, nil
}

// load loads the object with maps sized by d.opts and pinned by name.
func (d *Dataplane) load() error {
	spec, err := bpf.LoadWeir()
	if err != nil {
		return fmt.Errorf("dataplane: parse embedded object: %w", err)
	}
	if err := sizeSpec(spec, d.opts); err != nil {
		return err
	}
	err = spec.LoadAndAssign(&d.objs, &ebpf.CollectionOptions{
		Maps: ebpf.MapOptions{PinPath: d.opts.PinPath},
	})
	switch {
	case errors.Is(err, ebpf.ErrMapIncompatible):
		return fmt.Errorf("%w: %s holds maps of other sizes or of another layout (other Options, or an "+
			"incompatible weir build); open it with the Options that created it, or remove it to start afresh: %v",
			ErrIncompatibleMaps, d.opts.PinPath, err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%w: %v", ErrUnsupported, err)
	case err != nil:
		return fmt.Errorf("dataplane: load program and maps into %s: %w", d.opts.PinPath, err)
	}
	return nil
}

// loadXDP loads the XDP build of the program (weir.c compiled with
// -DWEIR_XDP) onto the maps pinned under o.PinPath, which load has just
// created or reused: both builds then share every pinned map. The per-CPU
// scratch maps, which hold nothing between packets, are the build's own.
func loadXDP(o Options) (*ebpf.Program, error) {
	spec, err := bpf.LoadWeirXdp()
	if err != nil {
		return nil, fmt.Errorf("dataplane: parse embedded XDP object: %w", err)
	}
	if err := sizeSpec(spec, o); err != nil {
		return nil, err
	}
	var progs bpf.WeirXdpPrograms
	err = spec.LoadAndAssign(&progs, &ebpf.CollectionOptions{
		Maps: ebpf.MapOptions{PinPath: o.PinPath},
	})
	switch {
	case errors.Is(err, ebpf.ErrNotSupported):
		return nil, fmt.Errorf("%w: XDP program: %v", ErrUnsupported, err)
	case err != nil:
		return nil, fmt.Errorf("dataplane: load XDP program on the maps in %s: %w", o.PinPath, err)
	}
	return progs.WeirXdp, nil
}

// xdpProgram is the XDP build of the program, or why the kernel refused it.
func (d *Dataplane) xdpProgram() (*ebpf.Program, error) {
	if d.xdp == nil {
		return nil, d.xdpErr
	}
	return d.xdp, nil
}

// sizeSpec applies opts to the map sizes and to the program's constants,
// which must agree with them.
func sizeSpec(spec *ebpf.CollectionSpec, o Options) error {
	sizes := map[string]uint32{
		bpf.WeirMapWeirV1Vips:    o.halves(), // a VIP change briefly needs two keys
		bpf.WeirMapWeirV1Active:  o.MaxServices,
		bpf.WeirMapWeirV1Svc:     o.halves(),
		bpf.WeirMapWeirV1Backend: o.halves() * o.MaxBackends,
		bpf.WeirMapWeirV1Maglev:  o.halves() * o.TableSize,
		bpf.WeirMapWeirV1Live:    o.MaxServices * o.slotsPerService(),
		bpf.WeirMapWeirV1Ct:      o.MaxFlows,
		bpf.WeirMapWeirV1Rnat:    o.MaxFlows,
		bpf.WeirMapWeirV1Svcstat: o.MaxServices,
		bpf.WeirMapWeirV1Bestat:  o.MaxServices * o.slotsPerService(),
	}
	for name, size := range sizes {
		m, ok := spec.Maps[name]
		if !ok {
			return fmt.Errorf("dataplane: embedded object lacks map %s", name)
		}
		m.MaxEntries = size
	}
	constants := map[string]any{
		bpf.WeirVarWeirTableSize:        o.TableSize,
		bpf.WeirVarWeirMaxBackends:      o.MaxBackends,
		bpf.WeirVarWeirFlowCacheTtlNs:   uint64(o.FlowCacheTTL.Nanoseconds()),
		bpf.WeirVarWeirClosedTimeoutNs:  uint64(o.ClosedFlowTimeout.Nanoseconds()),
		bpf.WeirVarWeirTcpIdleTimeoutNs: uint64(o.TCPIdleTimeout.Nanoseconds()),
		bpf.WeirVarWeirUdpIdleTimeoutNs: uint64(o.UDPIdleTimeout.Nanoseconds()),
	}
	for name, value := range constants {
		v, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("dataplane: embedded object lacks constant %s", name)
		}
		if err := v.Set(value); err != nil {
			return fmt.Errorf("dataplane: set %s: %w", name, err)
		}
	}
	return nil
}

// Close releases this process's handles. Pinned maps, and links pinned by
// Attach, stay in the kernel, so forwarding continues without weir.
func (d *Dataplane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	if d.xdp != nil {
		errs = append(errs, d.xdp.Close())
	}
	errs = append(errs, d.objs.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dataplane: close: %w", err)
	}
	return nil
}

// lock takes d.mu and fails once d is closed; callers unlock.
func (d *Dataplane) lock() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// ensureBPFFS makes pinPath a directory on a bpffs, mounting one on its
// parent when neither is on one.
func ensureBPFFS(pinPath string) error {
	if err := bpffs.Ensure(pinPath); err != nil {
		return fmt.Errorf("dataplane: %w", err)
	}
	return nil
}

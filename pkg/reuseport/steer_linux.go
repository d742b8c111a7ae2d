package reuseport

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/weir-lb/weir/bpf"
	"github.com/weir-lb/weir/internal/bpffs"
)

// steering is one group's program and pinned maps.
type steering struct {
	dir     string
	prog    *ebpf.Program
	maps    bpf.ReuseportMaps
	migrate bool              // the program migrates closing sockets' queues
	slots   map[uint64]uint32 // socket cookie → sockarray slot
}

// canSteer reports whether this process may load an sk_reuseport
// program: it needs CAP_BPF (or root) and a kernel with the program type.
func canSteer() error {
	return features.HaveProgramType(ebpf.SkReuseport)
}

// openSteering loads the program and the group's maps from dir, creating
// and pinning those that are not there yet, and indexes the sockets the
// sockarray already holds (a predecessor's).
func openSteering(pinPath, group string) (*steering, error) {
	if pinPath == "" {
		return nil, fmt.Errorf("%w: no pin path", ErrNoSteering)
	}
	dir := filepath.Join(pinPath, PinDir, group)
	if err := bpffs.Ensure(pinPath); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoSteering, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoSteering, err)
	}
	s := &steering{dir: dir, slots: map[uint64]uint32{}}
	if err := s.load(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoSteering, err)
	}
	if err := s.index(); err != nil {
		s.close()
		return nil, fmt.Errorf("%w: %w", ErrNoSteering, err)
	}
	return s, nil
}

// load loads the migrating program, or on kernels without
// BPF_SK_REUSEPORT_SELECT_OR_MIGRATE (before 5.14) the plain one.
func (s *steering) load() error {
	migErr := s.loadProgram("weir_rp_migrate")
	if migErr == nil {
		s.migrate = true
		return nil
	}
	if err := s.loadProgram("weir_rp_select"); err != nil {
		return fmt.Errorf("load sk_reuseport program: %w (with migration: %w)", err, migErr)
	}
	return nil
}

func (s *steering) loadProgram(name string) error {
	spec, err := bpf.LoadReuseport()
	if err != nil {
		return err
	}
	if spec.Programs[name] == nil {
		return fmt.Errorf("no program %s in the reuseport ELF", name)
	}
	for p := range spec.Programs {
		if p != name {
			delete(spec.Programs, p)
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: s.dir}})
	if err != nil {
		return err
	}
	s.prog = coll.DetachProgram(name)
	s.maps = bpf.ReuseportMaps{
		WeirRp1Socks:  coll.DetachMap("weir_rp1_socks"),
		WeirRp1Active: coll.DetachMap("weir_rp1_active"),
		WeirRp1Ctl:    coll.DetachMap("weir_rp1_ctl"),
	}
	coll.Close()
	return nil
}

// index records which socket holds each occupied sockarray slot.
func (s *steering) index() error {
	for slot := range uint32(MaxSockets) {
		var c uint64
		err := s.maps.WeirRp1Socks.Lookup(slot, &c)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read sockarray slot %d: %w", slot, err)
		}
		s.slots[c] = slot
	}
	return nil
}

// place returns ln's sockarray slot, putting it in the first free one if
// it has none yet.
func (s *steering) place(ln *net.TCPListener) (uint32, error) {
	c, err := cookie(ln)
	if err != nil {
		return 0, err
	}
	if slot, ok := s.slots[c]; ok {
		return slot, nil
	}
	for slot := range uint32(MaxSockets) {
		err := withFD(ln, func(fd int) error {
			return s.maps.WeirRp1Socks.Update(slot, uint64(fd), ebpf.UpdateNoExist)
		})
		switch {
		case err == nil:
			s.slots[c] = slot
			return slot, nil
		case errors.Is(err, ebpf.ErrKeyExist):
			continue
		case errors.Is(err, unix.EBUSY):
			return 0, fmt.Errorf("%s is in another reuseport map (a predecessor with another pin path?): %w", ln.Addr(), err)
		default:
			return 0, fmt.Errorf("put %s in sockarray slot %d: %w", ln.Addr(), slot, err)
		}
	}
	return 0, fmt.Errorf("%w: the sockarray of %s is full (%d sockets)", ErrInvalidConfig, ln.Addr(), MaxSockets)
}

// activate makes slots the active set: every position up to the larger of
// the old and new counts first names a new member, then the count
// changes, so a program run never picks a socket that left.
func (s *steering) activate(slots []uint32) error {
	var ctl bpf.ReuseportRpCtl
	if err := s.maps.WeirRp1Ctl.Lookup(uint32(0), &ctl); err != nil {
		return fmt.Errorf("read the active count: %w", err)
	}
	n := uint32(len(slots))
	for pos := range min(max(n, ctl.Count), MaxSockets) {
		if err := s.maps.WeirRp1Active.Put(pos, slots[pos%n]); err != nil {
			return fmt.Errorf("set active position %d: %w", pos, err)
		}
	}
	if err := s.maps.WeirRp1Ctl.Put(uint32(0), bpf.ReuseportRpCtl{Count: n}); err != nil {
		return fmt.Errorf("set the active count to %d: %w", n, err)
	}
	return nil
}

// attach makes the program the group's selector, replacing any earlier
// one (a predecessor's): one socket stands for the whole group.
func (s *steering) attach(ln *net.TCPListener) error {
	err := withFD(ln, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_EBPF, s.prog.FD())
	})
	if err != nil {
		return fmt.Errorf("attach the reuseport program to %s: %w", ln.Addr(), err)
	}
	return nil
}

// empty reports whether no socket is left in the sockarray: the kernel
// empties a slot when its socket closes, so a successor still holding the
// group's sockets keeps it occupied.
func (s *steering) empty() bool {
	var c uint64
	for slot := range uint32(MaxSockets) {
		if err := s.maps.WeirRp1Socks.Lookup(slot, &c); !errors.Is(err, ebpf.ErrKeyNotExist) {
			return false
		}
	}
	return true
}

// close releases the program and maps, and removes the group's pins when
// no socket of the group is left to steer.
func (s *steering) close() error {
	unpin := s.maps.WeirRp1Socks != nil && s.empty()
	errs := []error{s.maps.Close()}
	if s.prog != nil {
		errs = append(errs, s.prog.Close())
	}
	if unpin {
		errs = append(errs, os.RemoveAll(s.dir))
		os.Remove(filepath.Dir(s.dir)) // the last group: an empty reuseport directory goes too
	}
	return errors.Join(errs...)
}

// Sweep removes the pinned maps of groups under pinPath that no socket is
// left in: those of a weir that was killed, or of an address no longer
// configured. A group with a live socket (this process's, a successor's)
// is kept.
func Sweep(pinPath string) error {
	root := filepath.Join(pinPath, PinDir)
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reuseport: sweep %s: %w", root, err)
	}
	var errs []error
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		socks, err := ebpf.LoadPinnedMap(filepath.Join(dir, "weir_rp1_socks"), nil)
		if err != nil {
			continue // not a group of this layout: leave it to its owner
		}
		s := steering{maps: bpf.ReuseportMaps{WeirRp1Socks: socks}}
		if s.empty() {
			errs = append(errs, os.RemoveAll(dir))
		}
		socks.Close()
	}
	return errors.Join(errs...)
}

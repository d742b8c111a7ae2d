//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/weir-lb/weir/bpf"
)

// batchChunk bounds one batch syscall's key and value buffers.
const batchChunk = 8192

// SetService programs svc with backends and its Maglev table (entries index
// backends; len(table) == TableSize, or 0 when there are no backends, which
// makes the service drop its packets as table_empty).
//
// Everything is written into the half of the service the program is not
// reading; a single write of the service's generation then makes it live, so
// no packet ever sees a half-written table. Backends that stay keep their
// flows and counters; flows of removed backends move to live ones. The new
// generation is returned. A non-nil error together with a non-zero generation
// means the new table is live but removing stale entries failed; the next
// SetService of the service retries that.
func (d *Dataplane) SetService(svc Service, backends []netip.AddrPort, table []uint32) (uint32, error) {
	svc, err := d.opts.normalizedService(svc)
	if err != nil {
		return 0, err
	}
	backends, err = d.opts.normalizedBackends(svc, backends)
	if err != nil {
		return 0, err
	}
	if err := d.opts.validateTable(svc.ID, table, len(backends)); err != nil {
		return 0, err
	}
	if err := d.lock(); err != nil {
		return 0, err
	}
	defer d.mu.Unlock()
	return d.setService(svc, backends, table)
}

// update is one SetService worked out: what generation next writes.
type update struct {
	svc      Service
	vip      bpf.WeirVipKey
	next     uint32
	backends []netip.AddrPort
	slots    []uint32                  // counter slot of backends[i]
	fresh    []uint32                  // slots whose counters start from zero
	table    []uint32                  // Maglev table, indexes into backends
	live     map[netip.AddrPort]uint32 // backends live before, with their slots
}

func (d *Dataplane) setService(svc Service, backends []netip.AddrPort, table []uint32) (uint32, error) {
	cur, err := d.generation(svc.ID)
	if err != nil {
		return 0, err
	}
	last, err := d.lastGeneration(svc.ID, cur)
	if err != nil {
		return 0, err
	}
	u := update{svc: svc, vip: vipKey(svc), next: nextGeneration(last), backends: backends, table: table}
	if err := d.checkVIPFree(u.vip, svc); err != nil {
		return 0, err
	}
	if u.live, err = d.prunedLiveBackends(svc.ID, cur, backends); err != nil {
		return 0, err
	}
	if u.slots, u.fresh, err = assignSlots(u.live, backends, d.opts.slotsPerService()); err != nil {
		return 0, err
	}
	undo, err := d.stage(&u)
	if err != nil {
		return 0, errors.Join(err, undo.run())
	}
	// The flip: from here on the program reads the new half.
	if err := d.objs.WeirV1Active.Put(svc.ID, bpf.WeirActiveGeneration{Generation: u.next}); err != nil {
		err = fmt.Errorf("dataplane: service %d: activate generation %d: %w", svc.ID, u.next, err)
		return 0, errors.Join(err, undo.run())
	}
	if err := d.retire(&u); err != nil {
		return u.next, fmt.Errorf("dataplane: service %d: generation %d is live, but: %w", svc.ID, u.next, err)
	}
	return u.next, nil
}

// undoList takes back map entries a SetService added before failing to
// switch, so that a failed call leaves the live generation as it was.
type undoList []func() error

func (l *undoList) add(f func() error) { *l = append(*l, f) }

func (l undoList) run() error {
	var errs []error
	for _, f := range l {
		errs = append(errs, f())
	}
	return errors.Join(errs...)
}

// stage writes everything generation u.next needs except the flip: its half,
// then the live and VIP entries, which must exist before the program can
// reach them through the new half.
func (d *Dataplane) stage(u *update) (undoList, error) {
	var undo undoList
	if err := d.writeHalf(u); err != nil {
		return undo, err
	}
	if err := d.addLiveBackends(u, &undo); err != nil {
		return undo, err
	}
	return undo, d.addVIP(u, &undo)
}

// writeHalf fills the half the program is not reading: fresh counter slots,
// backends, table and the service itself.
func (d *Dataplane) writeHalf(u *update) error {
	id := u.svc.ID
	for _, slot := range u.fresh {
		if err := d.zeroCounters(d.objs.WeirV1Bestat, d.backendStatKey(id, slot)); err != nil {
			return err
		}
	}
	half := halfIndex(id, u.next)
	if err := d.writeBackends(half, u.backends, u.slots); err != nil {
		return err
	}
	if err := d.writeTable(half, u.table); err != nil {
		return err
	}
	if err := d.objs.WeirV1Svc.Put(half, serviceValue(u.svc, u.next, len(u.backends))); err != nil {
		return fmt.Errorf("dataplane: service %d: write generation %d: %w", id, u.next, err)
	}
	return d.setHalfPorts(half, u.svc.SNATPorts)
}

func (d *Dataplane) addLiveBackends(u *update, undo *undoList) error {
	for i, b := range u.backends {
		if _, ok := u.live[b]; ok {
			continue
		}
		lk := liveKey(u.svc.ID, b)
		if err := d.objs.WeirV1Live.Put(lk, bpf.WeirLiveValue{Slot: u.slots[i]}); err != nil {
			return fmt.Errorf("dataplane: service %d: add live backend %s: %w", u.svc.ID, b, err)
		}
		undo.add(func() error { return deleteIfPresent(d.objs.WeirV1Live, lk) })
	}
	return nil
}

func (d *Dataplane) addVIP(u *update, undo *undoList) error {
	var owner bpf.WeirVipValue
	if err := d.objs.WeirV1Vips.Lookup(u.vip, &owner); errors.Is(err, ebpf.ErrKeyNotExist) {
		undo.add(func() error { return deleteIfPresent(d.objs.WeirV1Vips, u.vip) })
	}
	if err := d.objs.WeirV1Vips.Put(u.vip, bpf.WeirVipValue{ServiceId: u.svc.ID}); err != nil {
		return fmt.Errorf("dataplane: service %d: add VIP %s: %w", u.svc.ID, u.svc.VIP, err)
	}
	return nil
}

// retire removes what the previous generation needed and u.next does not:
// backends that left (their flows move on their next packet) and any other
// VIP of the service.
func (d *Dataplane) retire(u *update) error {
	stay := make(map[netip.AddrPort]bool, len(u.backends))
	for _, b := range u.backends {
		stay[b] = true
	}
	var errs []error
	for b := range u.live {
		if !stay[b] {
			errs = append(errs, deleteIfPresent(d.objs.WeirV1Live, liveKey(u.svc.ID, b)))
		}
	}
	errs = append(errs, d.deleteVIPs(u.svc.ID, &u.vip))
	return errors.Join(errs...)
}

// DeleteService stops balancing service id: its VIP no longer matches, its
// backends and counters are cleared. Replies of flows already translated are
// still translated back until their reverse entries age out. Programming the
// id again continues from the generation after its last one.
func (d *Dataplane) DeleteService(id uint32) error {
	if id >= d.opts.MaxServices {
		return fmt.Errorf("%w: id %d is not below MaxServices %d", ErrInvalidService, id, d.opts.MaxServices)
	}
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	cur, err := d.generation(id)
	if err != nil {
		return err
	}
	if cur == 0 {
		return fmt.Errorf("%w: id %d", ErrNoService, id)
	}
	if err := d.deleteVIPs(id, nil); err != nil {
		return err
	}
	if err := d.objs.WeirV1Active.Put(id, bpf.WeirActiveGeneration{}); err != nil {
		return fmt.Errorf("dataplane: service %d: deactivate: %w", id, err)
	}
	return d.clearService(id, cur)
}

// clearService removes an inactive service's live backends, halves and
// counters. The half of its last generation, last, keeps that generation
// (see lastGeneration).
func (d *Dataplane) clearService(id, last uint32) error {
	live, err := d.liveBackends(id)
	if err != nil {
		return err
	}
	var errs []error
	for b := range live {
		errs = append(errs, deleteIfPresent(d.objs.WeirV1Live, liveKey(id, b)))
	}
	ports, err := d.halfPorts()
	if err != nil {
		return err
	}
	for _, gen := range []uint32{last, last + 1} {
		// The last half keeps its SNAT ports, so that replies of the
		// service's flows are looked up until their reverse entries go.
		tombstone := bpf.WeirService{}
		if gen == last {
			tombstone.Generation = last
			tombstone.SnatPorts = weirPortRange(ports[halfIndex(id, gen)])
		}
		if err := d.objs.WeirV1Svc.Put(halfIndex(id, gen), tombstone); err != nil {
			errs = append(errs, fmt.Errorf("dataplane: service %d: clear half %d: %w", id, gen&1, err))
			continue
		}
		errs = append(errs, d.setHalfPorts(halfIndex(id, gen), portRange(tombstone.SnatPorts)))
	}
	errs = append(errs, d.zeroCounters(d.objs.WeirV1Svcstat, id))
	for slot := uint32(0); slot < d.opts.slotsPerService(); slot++ {
		errs = append(errs, d.zeroCounters(d.objs.WeirV1Bestat, d.backendStatKey(id, slot)))
	}
	return errors.Join(errs...)
}

// Services reads every programmed service back from the pinned maps, so it
// also reports what another process (an earlier weir) programmed.
func (d *Dataplane) Services() ([]ServiceState, error) {
	if err := d.lock(); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	var out []ServiceState
	for id := uint32(0); id < d.opts.MaxServices; id++ {
		gen, err := d.generation(id)
		if err != nil {
			return nil, err
		}
		if gen == 0 {
			continue
		}
		st, err := d.readService(id, gen)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (d *Dataplane) readService(id, gen uint32) (ServiceState, error) {
	var sv bpf.WeirService
	if err := d.objs.WeirV1Svc.Lookup(halfIndex(id, gen), &sv); err != nil {
		return ServiceState{}, fmt.Errorf("dataplane: service %d: read generation %d: %w", id, gen, err)
	}
	st := ServiceState{
		Service: Service{
			ID:         id,
			VIP:        netip.AddrPortFrom(addrFrom16(sv.Vip, sv.IpVersion), sv.VipPort),
			Proto:      sv.Proto,
			SNAT:       addrFrom16(sv.Snat, sv.IpVersion),
			SNATPorts:  portRange(sv.SnatPorts),
			Forwarding: Forwarding(sv.Forwarding),
			GUEPort:    sv.GuePort,
		},
		Generation: gen,
	}
	bes, err := d.readBackends(halfIndex(id, gen), sv.BackendCount)
	if err != nil {
		return ServiceState{}, fmt.Errorf("dataplane: service %d: %w", id, err)
	}
	if st.Stats, err = d.readCounters(d.objs.WeirV1Svcstat, id); err != nil {
		return ServiceState{}, err
	}
	for _, be := range bes {
		st.Backends = append(st.Backends, netip.AddrPortFrom(addrFrom16(be.Addr, be.IpVersion), be.Port))
		c, err := d.readCounters(d.objs.WeirV1Bestat, d.backendStatKey(id, be.Slot))
		if err != nil {
			return ServiceState{}, err
		}
		st.BackendStats = append(st.BackendStats, c)
	}
	return st, nil
}

// generation is the live generation of service id, 0 when none.
func (d *Dataplane) generation(id uint32) (uint32, error) {
	var g bpf.WeirActiveGeneration
	if err := d.objs.WeirV1Active.Lookup(id, &g); err != nil {
		return 0, fmt.Errorf("dataplane: service %d: read generation: %w", id, err)
	}
	return g.Generation, nil
}

// lastGeneration is the generation service id had last: cur while it is
// live, otherwise the one its deletion left in its halves (0 for a service
// never programmed). Continuing from it instead of from 0 means a
// re-created service never reuses a generation whose conntrack entries
// could still be around, pointing at backends it no longer has.
func (d *Dataplane) lastGeneration(id, cur uint32) (uint32, error) {
	if cur != 0 {
		return cur, nil
	}
	var last uint32
	for half := uint32(0); half < 2; half++ {
		var sv bpf.WeirService
		if err := d.objs.WeirV1Svc.Lookup(id*2+half, &sv); err != nil {
			return 0, fmt.Errorf("dataplane: service %d: read half %d: %w", id, half, err)
		}
		last = max(last, sv.Generation)
	}
	return last, nil
}

// checkVIPFree fails when another service's live generation uses key. A key
// left behind by another service's interrupted SetService is taken over.
func (d *Dataplane) checkVIPFree(key bpf.WeirVipKey, svc Service) error {
	var owner bpf.WeirVipValue
	err := d.objs.WeirV1Vips.Lookup(key, &owner)
	if errors.Is(err, ebpf.ErrKeyNotExist) || (err == nil && owner.ServiceId == svc.ID) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dataplane: look up VIP %s: %w", svc.VIP, err)
	}
	gen, err := d.generation(owner.ServiceId)
	if err != nil {
		return err
	}
	if gen == 0 {
		return nil // the owner is gone; its key is a leftover
	}
	var sv bpf.WeirService
	if err := d.objs.WeirV1Svc.Lookup(halfIndex(owner.ServiceId, gen), &sv); err != nil {
		return fmt.Errorf("dataplane: service %d: read generation %d: %w", owner.ServiceId, gen, err)
	}
	if sv.Vip == key.Addr && sv.VipPort == key.Port && sv.Proto == key.Proto && sv.IpVersion == key.IpVersion {
		return fmt.Errorf("%w: %s/%d belongs to service %d", ErrVIPInUse, svc.VIP, svc.Proto, owner.ServiceId)
	}
	return nil
}

// deleteVIPs removes every VIP key of service id except keep.
func (d *Dataplane) deleteVIPs(id uint32, keep *bpf.WeirVipKey) error {
	var (
		k     bpf.WeirVipKey
		v     bpf.WeirVipValue
		stale []bpf.WeirVipKey
	)
	it := d.objs.WeirV1Vips.Iterate()
	for it.Next(&k, &v) {
		if v.ServiceId == id && (keep == nil || k != *keep) {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("dataplane: service %d: list VIPs: %w", id, err)
	}
	var errs []error
	for _, sk := range stale {
		errs = append(errs, deleteIfPresent(d.objs.WeirV1Vips, sk))
	}
	return errors.Join(errs...)
}

// liveBackends lists the live-map entries of service id with their slots.
func (d *Dataplane) liveBackends(id uint32) (map[netip.AddrPort]uint32, error) {
	var (
		k bpf.WeirLiveKey
		v bpf.WeirLiveValue
	)
	out := make(map[netip.AddrPort]uint32)
	it := d.objs.WeirV1Live.Iterate()
	for it.Next(&k, &v) {
		if k.ServiceId == id {
			out[netip.AddrPortFrom(addrFrom16(k.Addr, k.IpVersion), k.Port)] = v.Slot
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("dataplane: service %d: list live backends: %w", id, err)
	}
	return out, nil
}

// prunedLiveBackends returns the live backends of service id after deleting
// those that neither generation cur nor the next one uses: leftovers of a
// SetService that was interrupted, which would otherwise hold slots forever.
func (d *Dataplane) prunedLiveBackends(id, cur uint32, next []netip.AddrPort) (map[netip.AddrPort]uint32, error) {
	live, err := d.liveBackends(id)
	if err != nil {
		return nil, err
	}
	keep := make(map[netip.AddrPort]bool, len(next))
	for _, b := range next {
		keep[b] = true
	}
	if cur != 0 {
		var sv bpf.WeirService
		if err := d.objs.WeirV1Svc.Lookup(halfIndex(id, cur), &sv); err != nil {
			return nil, fmt.Errorf("dataplane: service %d: read generation %d: %w", id, cur, err)
		}
		bes, err := d.readBackends(halfIndex(id, cur), sv.BackendCount)
		if err != nil {
			return nil, fmt.Errorf("dataplane: service %d: %w", id, err)
		}
		for _, be := range bes {
			keep[netip.AddrPortFrom(addrFrom16(be.Addr, be.IpVersion), be.Port)] = true
		}
	}
	for b := range live {
		if keep[b] {
			continue
		}
		if err := deleteIfPresent(d.objs.WeirV1Live, liveKey(id, b)); err != nil {
			return nil, err
		}
		delete(live, b)
	}
	return live, nil
}

func (d *Dataplane) readBackends(half, n uint32) ([]bpf.WeirBackend, error) {
	if n > d.opts.MaxBackends {
		return nil, fmt.Errorf("half %d claims %d backends, above MaxBackends %d", half, n, d.opts.MaxBackends)
	}
	out := make([]bpf.WeirBackend, n)
	for i := range out {
		if err := d.objs.WeirV1Backend.Lookup(half*d.opts.MaxBackends+uint32(i), &out[i]); err != nil {
			return nil, fmt.Errorf("read backend %d of half %d: %w", i, half, err)
		}
	}
	return out, nil
}

func (d *Dataplane) writeBackends(half uint32, backends []netip.AddrPort, slots []uint32) error {
	keys := make([]uint32, len(backends))
	vals := make([]bpf.WeirBackend, len(backends))
	for i, b := range backends {
		keys[i] = half*d.opts.MaxBackends + uint32(i)
		vals[i] = bpf.WeirBackend{Addr: addr16(b.Addr()), Port: b.Port(), IpVersion: ipVersion(b.Addr()), Slot: slots[i]}
	}
	if err := putAll(d.objs.WeirV1Backend, keys, vals); err != nil {
		return fmt.Errorf("dataplane: write backends of half %d: %w", half, err)
	}
	return nil
}

func (d *Dataplane) writeTable(half uint32, table []uint32) error {
	keys := make([]uint32, len(table))
	vals := make([]bpf.WeirMaglevEntry, len(table))
	for j, idx := range table {
		keys[j] = half*d.opts.TableSize + uint32(j)
		vals[j] = bpf.WeirMaglevEntry{Backend: idx}
	}
	if err := putAll(d.objs.WeirV1Maglev, keys, vals); err != nil {
		return fmt.Errorf("dataplane: write table of half %d: %w", half, err)
	}
	return nil
}

// putAll writes keys[i] → vals[i] in batches, one by one where the kernel
// lacks batch operations for the map type.
func putAll[K, V any](m *ebpf.Map, keys []K, vals []V) error {
	for start := 0; start < len(keys); start += batchChunk {
		end := min(start+batchChunk, len(keys))
		_, err := m.BatchUpdate(keys[start:end], vals[start:end], nil)
		if errors.Is(err, ebpf.ErrNotSupported) {
			return putEach(m, keys[start:], vals[start:])
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func putEach[K, V any](m *ebpf.Map, keys []K, vals []V) error {
	for i := range keys {
		if err := m.Put(keys[i], vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// readCounters sums the per-CPU counters at key of m.
func (d *Dataplane) readCounters(m *ebpf.Map, key uint32) (Counters, error) {
	var per []bpf.WeirCounters
	if err := m.Lookup(key, &per); err != nil {
		return Counters{}, fmt.Errorf("dataplane: read counters %d of %s: %w", key, m, err)
	}
	return sumCounters(per), nil
}

func (d *Dataplane) zeroCounters(m *ebpf.Map, key uint32) error {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("dataplane: count CPUs: %w", err)
	}
	if err := m.Put(key, make([]bpf.WeirCounters, cpus)); err != nil {
		return fmt.Errorf("dataplane: reset counters %d of %s: %w", key, m, err)
	}
	return nil
}

func sumCounters(per []bpf.WeirCounters) Counters {
	var c Counters
	var drops [numDropReasons]uint64
	for _, p := range per {
		c.Packets += p.Packets
		c.Bytes += p.Bytes
		c.NewFlows += p.NewFlows
		for i := range drops {
			drops[i] += p.Drops[i]
		}
	}
	c.Drops = make(map[string]uint64, numDropReasons)
	for i, name := range dropReasonNames() {
		c.Drops[name] = drops[i]
	}
	return c
}

// backendStatKey indexes weir_v1_bestat as the program does.
func (d *Dataplane) backendStatKey(id, slot uint32) uint32 {
	return id*d.opts.slotsPerService() + slot
}

// halfIndex indexes weir_v1_svc: the half generation gen lives in.
func halfIndex(id, gen uint32) uint32 { return id*2 + gen&1 }

func vipKey(svc Service) bpf.WeirVipKey {
	return bpf.WeirVipKey{
		Addr:      addr16(svc.VIP.Addr()),
		Port:      svc.VIP.Port(),
		Proto:     svc.Proto,
		IpVersion: ipVersion(svc.VIP.Addr()),
	}
}

func liveKey(id uint32, b netip.AddrPort) bpf.WeirLiveKey {
	return bpf.WeirLiveKey{ServiceId: id, Addr: addr16(b.Addr()), Port: b.Port(), IpVersion: ipVersion(b.Addr())}
}

func serviceValue(svc Service, gen uint32, backends int) bpf.WeirService {
	return bpf.WeirService{
		Vip:          addr16(svc.VIP.Addr()),
		Snat:         addr16(svc.SNAT),
		VipPort:      svc.VIP.Port(),
		Proto:        svc.Proto,
		IpVersion:    ipVersion(svc.VIP.Addr()),
		Generation:   gen,
		BackendCount: uint32(backends),
		SnatPorts:    weirPortRange(svc.SNATPorts),
		Forwarding:   uint8(svc.Forwarding),
		GuePort:      svc.GUEPort,
	}
}

func deleteIfPresent(m *ebpf.Map, key any) error {
	if err := m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("dataplane: delete from %s: %w", m, err)
	}
	return nil
}

package limit

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Key says how client addresses are grouped into the clients a limit
// counts. The zero Key counts every address on its own.
//
// An IPv6 user is usually given a whole /64 (or more), and can use any
// address in it: a per-address limit on IPv6 is one an attacker steps
// around by changing addresses, so IPv6Prefix: 64 is a common choice.
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are IPv4 addresses and are
// grouped by IPv4Prefix; zones are ignored.
type Key struct {
	// IPv4Prefix is the length of the IPv4 networks counted as one client,
	// 1 to 32; 0 means 32 (each address).
	IPv4Prefix int
	// IPv6Prefix is the length of the IPv6 networks counted as one client,
	// 1 to 128; 0 means 128 (each address).
	IPv6Prefix int
}

// Validate reports whether k's prefix lengths are in range.
func (k Key) Validate() error {
	if k.IPv4Prefix < 0 || k.IPv4Prefix > 32 {
		return fmt.Errorf("limit: IPv4 prefix length %d is out of range (1 to 32, or 0 for 32)", k.IPv4Prefix)
	}
	if k.IPv6Prefix < 0 || k.IPv6Prefix > 128 {
		return fmt.Errorf("limit: IPv6 prefix length %d is out of range (1 to 128, or 0 for 128)", k.IPv6Prefix)
	}
	return nil
}

// Prefix returns the network addr is counted in: the address itself
// (unmapped, without zone) as a /32 or /128 when k does not aggregate.
// It returns the zero Prefix for an invalid addr.
func (k Key) Prefix(addr netip.Addr) netip.Prefix {
	if !addr.IsValid() {
		return netip.Prefix{}
	}
	addr = addr.Unmap().WithZone("")
	bits := k.IPv6Prefix
	if bits == 0 {
		bits = 128
	}
	if addr.Is4() {
		bits = k.IPv4Prefix
		if bits == 0 {
			bits = 32
		}
	}
	p, _ := addr.Prefix(bits) // bits is in range: Validate
	return p
}

// clientKey is a client as a map key: its network's address in 16 bytes,
// IPv4 networks in their IPv4-mapped form, so that the two families
// never collide (a real IPv6 address is never mapped: keyer unmaps it).
type clientKey struct{ hi, lo uint64 }

// keyer turns addresses into clientKeys with precomputed masks.
type keyer struct {
	v4         uint64 // mask over the low 32 bits
	v6hi, v6lo uint64 // masks over the two halves
}

func newKeyer(k Key) keyer {
	v4, v6 := k.IPv4Prefix, k.IPv6Prefix
	if v4 == 0 {
		v4 = 32
	}
	if v6 == 0 {
		v6 = 128
	}
	var kr keyer
	kr.v4 = uint64(^uint32(0) << (32 - v4)) // v4 ≥ 1, so the shift is < 32
	kr.v6hi = highBits(min(v6, 64))
	kr.v6lo = highBits(max(v6-64, 0))
	return kr
}

// highBits returns a mask of the n (0 to 64) most significant bits.
func highBits(n int) uint64 {
	if n == 0 {
		return 0
	}
	return ^uint64(0) << (64 - n)
}

// key returns addr's client key; ok is false for an invalid addr.
func (kr *keyer) key(addr netip.Addr) (k clientKey, ok bool) {
	if !addr.IsValid() {
		return k, false
	}
	if addr.Is4() {
		b := addr.As4()
		return clientKey{0, 0xffff<<32 | uint64(binary.BigEndian.Uint32(b[:]))&kr.v4}, true
	}
	b := addr.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	if addr.Is4In6() {
		return clientKey{0, 0xffff<<32 | lo&kr.v4}, true
	}
	return clientKey{hi & kr.v6hi, lo & kr.v6lo}, true
}

// shardOf spreads keys over 1<<bits shards. The seed is random per
// limiter, so that no one can aim a set of addresses at one shard.
func shardOf(k clientKey, seed uint64, bits uint) uint64 {
	h := (k.hi ^ seed) * 0x9e3779b97f4a7c15
	h = (h ^ k.lo ^ h>>29) * 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return (h * 0x94d049bb133111eb) >> (64 - bits)
}

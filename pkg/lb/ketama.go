package lb

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
)

// ketamaPointsPerWeight is the number of ring points per unit of weight,
// nginx's constant: fewer points would change which keys nginx and weir
// agree on.
const ketamaPointsPerWeight = 160

// Ketama is consistent hashing that picks exactly the backend nginx picks
// with `hash $key consistent;` (ngx_http_upstream_hash_module) for the
// same servers, weights and key, so weir can replace or run beside an nginx
// tier without moving cache keys or sessions.
//
// Each backend places 160 points per unit of weight on a 32-bit ring; a
// key goes to the first point at or after CRC32(key). Removing a backend
// moves only the keys that were on it, and adding one moves only keys to
// it. Spread is looser than FNV or Maglev: with 160 points per backend a
// backend's share typically deviates from its weight share by about
// 1/sqrt(160·weight) of that share (8% for weight 1).
//
// When a key's backend is unusable, the Selector offers the owners of the
// following points, as nginx does, for one full turn of the ring: at most
// 160 × total weight candidates, every backend among them.
//
// Compatibility holds when nginx's server lines are written exactly as
// weir's normalised Backend.Addr: nginx hashes the name as written, so
// "[2001:DB8::1]:80" and "[2001:db8::1]:80", or "example.com" and
// "example.com:80", are different points. A name that nginx resolves to
// several addresses is there several peers sharing one set of points, and
// here one backend. Two differences are deliberate: nginx falls back to round robin for an
// empty key while Ketama hashes it like any other (CRC32 of nothing is 0,
// the first point), and nginx gives up on the ring after 20 tries while
// Ketama's fallback walks the whole ring.
//
// The zero value is ready to use.
type Ketama struct{}

var (
	_ Algorithm = Ketama{}
	_ Selector  = (*ketamaSelector)(nil)
)

// Build places the points of every backend on the ring. It fails with
// ErrBadWeight on a weight outside 1..MaxWeight and with ErrRingTooLarge
// when the weights sum to more than 16 Mi points (about 104,857 units of
// weight: ten backends at MaxWeight fit, eleven do not).
func (Ketama) Build(backends []Backend) (Selector, error) {
	weights, err := hashWeights(backends)
	if err != nil {
		return nil, err
	}
	var total uint64
	for _, w := range weights {
		total += w * ketamaPointsPerWeight
	}
	if total > maxRingEntries {
		return nil, fmt.Errorf("%w: Ketama: %d points (160 per unit of weight) for %d backends; the limit is %d",
			ErrRingTooLarge, total, len(backends), maxRingEntries)
	}
	points := make([]uint64, 0, total)
	for i := range backends {
		points = appendKetamaPoints(points, backends[i].Addr, weights[i], uint32(i))
	}
	return newKetamaSelector(points), nil
}

// appendKetamaPoints appends a backend's points, each packed as
// hash<<32 | backend index: one integer carries both halves through the
// sort.
//
// nginx computes the points as CRC32 over host, a NUL byte, port and the
// little-endian previous point (0 for the first), continuing one running
// CRC from the common prefix. crc32.Update resumes from a finished
// checksum, so the prefix is hashed once per backend.
func appendKetamaPoints(points []uint64, addr string, weight uint64, index uint32) []uint64 {
	host, port := nginxHostPort(addr)
	base := crc32.Update(0, crc32.IEEETable, []byte(host))
	base = crc32.Update(base, crc32.IEEETable, []byte{0})
	base = crc32.Update(base, crc32.IEEETable, []byte(port))
	var prev [4]byte
	for range weight * ketamaPointsPerWeight {
		h := crc32.Update(base, crc32.IEEETable, prev[:])
		points = append(points, uint64(h)<<32|uint64(index))
		binary.LittleEndian.PutUint32(prev[:], h)
	}
	return points
}

// nginxHostPort splits a server name the way nginx does before hashing it.
// A "unix:" prefix (any case) leaves the path as host with no port.
// Otherwise the port is the run of digits after the last colon, and a name
// that does not end in ":digits" is all host. Unlike net.SplitHostPort it
// keeps IPv6 brackets: nginx hashes "[::1]", not "::1".
func nginxHostPort(server string) (host, port string) {
	if len(server) >= len(unixPrefix) && strings.EqualFold(server[:len(unixPrefix)], unixPrefix) {
		return server[len(unixPrefix):], ""
	}
	for j := len(server) - 1; j >= 0; j-- {
		c := server[j]
		if c == ':' {
			return server[:j], server[j+1:]
		}
		if c < '0' || c > '9' {
			break
		}
	}
	return server, ""
}

// ketamaSelector is the sorted ring, split into parallel slices so that the
// binary search touches only the hashes.
type ketamaSelector struct {
	hashes []uint32
	owners []uint32
}

// newKetamaSelector sorts the packed points and drops every point whose
// hash an earlier point already has, as nginx does. nginx sorts with
// qsort, which leaves the survivor of a collision unspecified; keeping the
// first backend in list order is deterministic, and matches glibc's qsort
// for most of its history (a stable merge sort). Collisions are rare (an
// expected 0.03 among the 16,000 points of 100 backends), and only keys
// landing on a collided point could go elsewhere under another libc.
func newKetamaSelector(points []uint64) *ketamaSelector {
	sortKetamaPoints(points)
	s := &ketamaSelector{
		hashes: make([]uint32, 0, len(points)),
		owners: make([]uint32, 0, len(points)),
	}
	for i, p := range points {
		h := uint32(p >> 32)
		if i > 0 && h == s.hashes[len(s.hashes)-1] {
			continue
		}
		s.hashes = append(s.hashes, h)
		s.owners = append(s.owners, uint32(p))
	}
	return s
}

// sortKetamaPoints sorts packed points by hash, leaving points with equal
// hashes in their input order, which is ascending backend index because
// Build appends backend by backend. It is an LSD radix sort, four stable
// counting passes over the hash bytes: heavy weights make millions of
// points, which it sorts several times faster than a comparison sort.
func sortKetamaPoints(points []uint64) {
	src, dst := points, make([]uint64, len(points))
	for shift := 32; shift < 64; shift += 8 {
		var offsets [256]int
		for _, p := range src {
			offsets[byte(p>>shift)]++
		}
		sum := 0
		for digit, count := range offsets {
			offsets[digit] = sum
			sum += count
		}
		for _, p := range src {
			digit := byte(p >> shift)
			dst[offsets[digit]] = p
			offsets[digit]++
		}
		src, dst = dst, src
	}
	// An even number of passes leaves the result in points.
}

// Start places the cursor on the first point at or after CRC32(key),
// wrapping past the top of the ring to the first point.
func (s *ketamaSelector) Start(key []byte) Cursor {
	h := crc32.ChecksumIEEE(key)
	pos, _ := slices.BinarySearch(s.hashes, h)
	if pos == len(s.hashes) {
		pos = 0
	}
	return Cursor{Hash: uint64(h), Pos: uint64(pos)}
}

// Next returns the owners of the key's point and of the points after it,
// one full turn of the ring. Neighbouring points mostly belong to different
// backends, so a dead backend's keys spread over the others; repeats are
// left for the caller to skip.
func (s *ketamaSelector) Next(c Cursor) (int, Cursor, bool) {
	n := uint64(len(s.owners))
	if c.Step < 0 || uint64(c.Step) >= n {
		return 0, c, false
	}
	index := s.owners[(c.Pos+uint64(c.Step))%n]
	c.Step++
	return int(index), c, true
}

// KeyedSelection returns true: Ketama maps keys to backends (see Keyed).
func (Ketama) KeyedSelection() bool { return true }

package l4

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/weir-lb/weir/pkg/lb"
)

// Selector is what a proxy needs of a load balancer: the first usable
// backend for a key that accept (when not nil) also allows, trying at most
// maxIterations distinct backends. Any *lb.LoadBalancer is one, so the
// proxies honour its health checks, draining and algorithm.
type Selector interface {
	SelectWith(key []byte, maxIterations int, accept func(*lb.Backend) bool) (*lb.Backend, bool)
}

var _ Selector = (*lb.LoadBalancer[lb.Maglev])(nil)

// anyCandidate lets a selection go through every backend the algorithm
// offers: a connection is better served by any usable backend than
// refused. The algorithm's own bound (every backend once, within a few
// times the pool size for Maglev) ends the selection.
const anyCandidate = math.MaxInt

// dialAny selects a backend for key and connects to it with dial, trying
// at most attempts backends and never the same one twice, since a backend
// that just failed would most likely fail again. The backend it returns is
// Acquired for the caller to Release. Failed attempts are counted in
// stats. It fails with ErrNoBackend when no backend was usable at all, and
// with ErrConnect, naming every backend tried, when all attempts failed.
func dialAny(ctx context.Context, sel Selector, key []byte, attempts int,
	dial func(*lb.Backend) (net.Conn, error), stats *counters) (*lb.Backend, net.Conn, error) {
	var tried []string
	untried := func(b *lb.Backend) bool { return !slices.Contains(tried, b.Addr) }
	var failures []error
	for range attempts {
		b, ok := sel.SelectWith(key, anyCandidate, untried)
		if !ok {
			break
		}
		tried = append(tried, b.Addr)
		b.Acquire()
		conn, err := dial(b)
		if err == nil {
			if c := countersOf(b); c != nil {
				c.flows.Add(1)
			}
			return b, conn, nil
		}
		b.Release()
		stats.connectFailures.Add(1)
		failures = append(failures, err)
		if ctx.Err() != nil {
			break // the proxy is closing: no point in another backend
		}
	}
	if len(failures) == 0 {
		return nil, nil, ErrNoBackend
	}
	return nil, nil, connectError(tried, failures)
}

// connectError is the failure of a connection every attempt of which
// failed: ErrConnect, naming the backends tried and what each did.
func connectError(tried []string, failures []error) error {
	return fmt.Errorf("%w (tried %s): %w", ErrConnect, strings.Join(tried, ", "), errors.Join(failures...))
}

// flowKeyLen is the length of a selection key: a 16-byte address and a
// 2-byte port.
const flowKeyLen = 18

// flowKey is the selection key of a client flow: its address in 16-byte
// form (IPv4 as IPv4-mapped IPv6, so a dual-stack socket's mapped clients
// key like plain IPv4 ones) followed by its port, big-endian. Keying on
// the port as well as the address spreads one client's flows over the
// backends, while one flow keeps its backend under a consistent algorithm.
// A zero AddrPort (a Unix socket client) keys as all zeroes.
func flowKey(ap netip.AddrPort) [flowKeyLen]byte {
	var k [flowKeyLen]byte
	a := ap.Addr().As16()
	copy(k[:16], a[:])
	binary.BigEndian.PutUint16(k[16:], ap.Port())
	return k
}

// addrPortOf returns the IP address and port of a, or the zero AddrPort
// when a is not a TCP or UDP address.
func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	return netip.AddrPort{}
}

// bufferPool hands out fixed-size byte buffers. Pooling pointers to
// slices keeps Get and Put free of allocations.
type bufferPool struct {
	size int
	pool sync.Pool
}

func newBufferPool(size int) *bufferPool {
	p := &bufferPool{size: size}
	p.pool.New = func() any {
		b := make([]byte, size)
		return &b
	}
	return p
}

func (p *bufferPool) get() *[]byte  { return p.pool.Get().(*[]byte) }
func (p *bufferPool) put(b *[]byte) { p.pool.Put(b) }

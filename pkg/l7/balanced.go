package l7

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
)

// Selector is what Balanced needs of a load balancer; every
// *lb.LoadBalancer has it.
type Selector interface {
	SelectWith(key []byte, maxIterations int, accept func(*lb.Backend) bool) (*lb.Backend, bool)
}

// KeyKind says which part of a request a hashing selection is keyed by.
type KeyKind uint8

const (
	// KeyNone: the selection ignores keys (round robin, random, least-loaded).
	KeyNone KeyKind = iota
	// KeyClientIP: the client's IP address.
	KeyClientIP
	// KeyURI: the request target, path and query.
	KeyURI
	// KeyHeader: the value of the header Name.
	KeyHeader
	// KeyCookie: the value of the cookie Name.
	KeyCookie
	// KeyQuery: the raw value of the query parameter Name.
	KeyQuery
)

// HashKey chooses the selection key. A request that lacks the header,
// cookie or query parameter is keyed by its client IP instead, so that
// such requests spread out rather than all landing on one backend.
type HashKey struct {
	Kind KeyKind
	Name string
}

// Balanced is a Proxy that sends each request to a backend chosen by a
// load balancer, with the connection settings of Template.
type Balanced struct {
	// LB chooses backends. Required.
	LB Selector
	// Key is what hashing selections are keyed by.
	Key HashKey
	// Template holds the TLS settings and timeouts of every peer; its
	// Addr and Backend are filled from the chosen backend.
	Template Peer
	// Host, when not empty, replaces the Host header sent upstream.
	Host string
	// MaxIterations bounds how many unhealthy backends one selection
	// skips; 0 means 32.
	MaxIterations int
	// Sticky, when not nil, keeps each client on its backend by a
	// cookie (see Sticky).
	Sticky *Sticky
	// Slots, when not nil, is LB bounding its backends' requests in
	// flight (max_connections): selection takes a slot, waiting in the
	// queue when every backend is full (see SlotSelector).
	Slots SlotSelector

	// peers caches one immutable Peer per backend address, so choosing a
	// peer allocates nothing. Copy-on-write: readers never lock.
	peers   atomic.Pointer[map[string]*Peer]
	peersMu sync.Mutex
	// sticky indexes the current backends by sticky id.
	sticky   atomic.Pointer[stickyIndex]
	stickyMu sync.Mutex
}

var (
	_ Proxy                 = (*Balanced)(nil)
	_ UpstreamRequestFilter = (*Balanced)(nil)
	_ ResponseFilter        = (*Balanced)(nil)
)

// UpstreamPeer selects a healthy backend, skipping those this request
// already tried; with Sticky, the one the request's cookie names when it
// may serve.
func (b *Balanced) UpstreamPeer(s *Session) (*Peer, error) {
	if b.Sticky != nil {
		be, err := b.stickyBackend(s)
		if err == nil && be != nil && b.Slots != nil {
			be, err = b.slotOf(s, be)
		}
		if err != nil {
			return nil, err
		}
		if be != nil {
			return b.peer(be), nil
		}
	}
	maxIter := b.MaxIterations
	if maxIter <= 0 {
		maxIter = 32
	}
	key := b.key(s)
	var accept func(*lb.Backend) bool
	if len(s.Tried) > 0 {
		accept = func(be *lb.Backend) bool { return !triedBackend(s.Tried, be.Addr) }
	}
	if b.Slots != nil {
		return b.slotPeer(s, key, maxIter, accept)
	}
	be, ok := b.LB.SelectWith(key, maxIter, accept)
	if !ok {
		if len(s.Tried) > 0 {
			return nil, fmt.Errorf("%w: every healthy backend was tried", ErrUpstreamConnect)
		}
		return nil, ErrNoHealthyUpstream
	}
	return b.peer(be), nil
}

func triedBackend(tried []*Peer, addr string) bool {
	for _, p := range tried {
		if p.Addr == addr {
			return true
		}
	}
	return false
}

// peer returns the cached Peer for be, making it on first use.
func (b *Balanced) peer(be *lb.Backend) *Peer {
	if m := b.peers.Load(); m != nil {
		if p := (*m)[be.Addr]; p != nil && p.Backend.SameAs(be) {
			return p
		}
	}
	b.peersMu.Lock()
	defer b.peersMu.Unlock()
	old := b.peers.Load()
	next := make(map[string]*Peer, 8)
	// Addresses that left the pool are never deleted one by one; a cache
	// grown this large has mostly those, so start it afresh.
	if old != nil && len(*old) < maxCachedPeers {
		for k, v := range *old {
			next[k] = v
		}
	}
	p := b.Template
	p.Addr = be.Addr
	bc := *be
	p.Backend = &bc
	next[be.Addr] = &p
	b.peers.Store(&next)
	return &p
}

// maxCachedPeers bounds Balanced's peer cache under address churn.
const maxCachedPeers = 4096

// UpstreamRequestFilter rewrites Host when asked to.
func (b *Balanced) UpstreamRequestFilter(s *Session, req *h1.Request) error {
	if b.Host != "" {
		req.Header.Set("Host", b.Host)
	}
	return nil
}

// ResponseFilter sets the sticky cookie when the request's did not name
// the backend that served it.
func (b *Balanced) ResponseFilter(s *Session, resp *h1.Response) error {
	if b.Sticky != nil {
		b.setStickyCookie(s, resp)
	}
	return nil
}

// key extracts the selection key from the request.
func (b *Balanced) key(s *Session) []byte {
	req := s.Req
	switch b.Key.Kind {
	case KeyNone:
		return nil
	case KeyURI:
		return req.Target
	case KeyHeader:
		if v, ok := req.Header.Get(b.Key.Name); ok && len(v) > 0 {
			return v
		}
	case KeyCookie:
		if v := cookieValue(&req.Header, b.Key.Name); v != nil {
			return v
		}
	case KeyQuery:
		if v := queryValue(req.Target, b.Key.Name); v != nil {
			return v
		}
	}
	return s.ClientIP()
}

// cookieValue finds the cookie name in the Cookie header fields.
func cookieValue(h *h1.Header, name string) []byte {
	for i := 0; i < h.Len(); i++ {
		n, v := h.At(i)
		if !asciiEqualFold(n, "Cookie") {
			continue
		}
		for len(v) > 0 {
			var pair []byte
			pair, v, _ = bytes.Cut(v, []byte(";"))
			pair = bytes.TrimSpace(pair)
			if k, val, ok := bytes.Cut(pair, []byte("=")); ok && string(k) == name {
				return val
			}
		}
	}
	return nil
}

// queryValue returns the raw (still escaped) value of the first query
// parameter called name.
func queryValue(target []byte, name string) []byte {
	_, q, ok := bytes.Cut(target, []byte("?"))
	if !ok {
		return nil
	}
	for len(q) > 0 {
		var pair []byte
		pair, q, _ = bytes.Cut(q, []byte("&"))
		k, v, _ := bytes.Cut(pair, []byte("="))
		if string(k) == name {
			return v
		}
	}
	return nil
}

// Respond is a Proxy that answers every request itself with a fixed
// status, header and body: a built-in origin for demos, tests and health
// targets, like nginx's return.
type Respond struct {
	Status int
	Header h1.Header
	Body   []byte
}

var (
	_ Proxy         = (*Respond)(nil)
	_ RequestFilter = (*Respond)(nil)
)

// RequestFilter answers the request.
func (r *Respond) RequestFilter(s *Session) (bool, error) {
	return true, s.Respond(r.Status, &r.Header, r.Body)
}

// UpstreamPeer is never reached: RequestFilter answers every request.
func (r *Respond) UpstreamPeer(*Session) (*Peer, error) {
	return nil, fmt.Errorf("%w: a respond service has no upstream", ErrNoHealthyUpstream)
}

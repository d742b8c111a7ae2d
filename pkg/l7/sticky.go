package l7

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
)

// Sticky keeps a client on the backend that served it, by a cookie that
// names the backend (HAProxy's "cookie … insert"). The cookie holds an
// opaque id of the backend: the first 64 bits of HMAC-SHA256 of its
// address, keyed by Secret, in hex. It depends on nothing else, so every
// weir node given the same Secret, and every restart or upgrade, names a
// backend alike, and a client keeps its backend across them.
//
// A request whose cookie names a backend that is usable (healthy,
// enabled and not ejected by passive health) and not already tried by the
// request goes there, unless it is a backup (lb.Backend.Backup) while a
// primary is usable: backups serve only when no primary can, as
// lb.LoadBalancer.Select has it, so a client that failed over returns to
// the primaries with them. Any other request is balanced as usual, and
// its response sets the cookie anew.
// The cookie is sent upstream as the client sent it (HAProxy without
// "indirect"): an application may read it, and removing it would rewrite
// every Cookie field on the hot path.
//
// Sticky needs Balanced.LB to be a BackendLister (every *lb.LoadBalancer
// is), and Balanced's ResponseFilter to run: a Proxy wrapping Balanced
// calls it.
type Sticky struct {
	// Cookie is the cookie's name. Required.
	Cookie string
	// TTL is the cookie's lifetime (Max-Age and Expires); 0 makes a
	// session cookie, dropped when the browser closes.
	TTL time.Duration
	// Secure and HTTPOnly add those attributes.
	Secure, HTTPOnly bool
	// SameSite adds SameSite=Lax, Strict or None; 0 and
	// http.SameSiteDefaultMode add nothing.
	SameSite http.SameSite
	// Secret keys the backend ids. With none, an id is a plain hash of
	// the address, which a client could match against guessed addresses;
	// set one (the same on every node) to keep addresses private.
	Secret []byte
}

// BackendLister lets sticky sessions find the backend a cookie names;
// every *lb.LoadBalancer has it. Current returns the backends without
// copying, and a new slice whenever they change.
type BackendLister interface {
	Current() []lb.Backend
}

// stickyIndex maps the ids of one backend set (one Current slice) to
// their backends. It is rebuilt when the set changes, never per request.
type stickyIndex struct {
	backends []lb.Backend
	byID     map[uint64]int
	byAddr   map[string]uint64
	// primaries indexes the primary backends when the set has backups,
	// and is nil without: a backup's cookie is honoured only while none
	// of them is usable.
	primaries []int
	// attrs is the cookie's attributes, after its value.
	attrs string
}

// same reports whether cur is the slice the index was built from.
func (x *stickyIndex) same(cur []lb.Backend) bool {
	return len(x.backends) == len(cur) && (len(cur) == 0 || &x.backends[0] == &cur[0])
}

// stickyID is the opaque id of the backend at addr.
func (st *Sticky) id(addr string) uint64 {
	m := hmac.New(sha256.New, st.Secret)
	m.Write([]byte(st.Cookie))
	m.Write([]byte{0})
	m.Write([]byte(addr))
	return binary.BigEndian.Uint64(m.Sum(nil))
}

// attrs renders the attributes that follow the cookie's value, all but
// Expires, which changes with every response.
func (st *Sticky) attrs() string {
	a := "; Path=/"
	if st.TTL > 0 {
		a += "; Max-Age=" + strconv.FormatInt(int64(st.TTL/time.Second), 10)
	}
	if st.Secure {
		a += "; Secure"
	}
	if st.HTTPOnly {
		a += "; HttpOnly"
	}
	switch st.SameSite {
	case http.SameSiteLaxMode:
		a += "; SameSite=Lax"
	case http.SameSiteStrictMode:
		a += "; SameSite=Strict"
	case http.SameSiteNoneMode:
		a += "; SameSite=None"
	}
	return a
}

// stickyIndex returns the index of the current backend set, building it
// when the set changed since the last one.
func (b *Balanced) stickyIndex(cur []lb.Backend) *stickyIndex {
	if x := b.sticky.Load(); x != nil && x.same(cur) {
		return x
	}
	b.stickyMu.Lock()
	defer b.stickyMu.Unlock()
	if x := b.sticky.Load(); x != nil && x.same(cur) {
		return x
	}
	x := &stickyIndex{backends: cur, byID: make(map[uint64]int, len(cur)), byAddr: make(map[string]uint64, len(cur)),
		attrs: b.Sticky.attrs()}
	var backups bool
	for i := range cur {
		id := b.Sticky.id(cur[i].Addr)
		x.byID[id] = i
		x.byAddr[cur[i].Addr] = id
		backups = backups || cur[i].Backup
	}
	if backups {
		x.primaries = []int{}
		for i := range cur {
			if !cur[i].Backup {
				x.primaries = append(x.primaries, i)
			}
		}
	}
	b.sticky.Store(x)
	return x
}

// stickyBackend returns the backend the request's cookie names, when it
// may serve the request; nil to balance it as usual.
func (b *Balanced) stickyBackend(s *Session) (*lb.Backend, error) {
	lister, ok := b.LB.(BackendLister)
	if !ok {
		return nil, fmt.Errorf("%w: sticky sessions need a selector that lists its backends, not %T", ErrFilter, b.LB)
	}
	id, ok := parseStickyID(cookieValue(&s.Req.Header, b.Sticky.Cookie))
	if !ok {
		return nil, nil
	}
	cur := lister.Current()
	x := b.stickyIndex(cur)
	i, ok := x.byID[id]
	if !ok {
		return nil, nil
	}
	be := &cur[i]
	// Usable covers passive health: an ejected backend is not usable.
	if !be.Usable() || triedBackend(s.Tried, be.Addr) || be.Backup && x.primaryUsable(cur) {
		return nil, nil
	}
	return be, nil
}

// primaryUsable reports whether a primary backend of cur (the set x was
// built from) may take traffic, which keeps the backups out.
func (x *stickyIndex) primaryUsable(cur []lb.Backend) bool {
	for _, i := range x.primaries {
		if cur[i].Usable() {
			return true
		}
	}
	return false
}

// setStickyCookie adds the Set-Cookie naming the backend that served the
// request, unless the request's cookie named it already.
func (b *Balanced) setStickyCookie(s *Session, resp *h1.Response) {
	lister, ok := b.LB.(BackendLister)
	if !ok || len(s.Tried) == 0 {
		return
	}
	x := b.stickyIndex(lister.Current())
	id, ok := x.byAddr[s.Tried[len(s.Tried)-1].Addr]
	if !ok {
		return // the backend left the set meanwhile: name none
	}
	if have, ok := parseStickyID(cookieValue(&s.Req.Header, b.Sticky.Cookie)); ok && have == id {
		return
	}
	var buf [256]byte
	v := append(buf[:0], b.Sticky.Cookie...)
	v = append(v, '=')
	v = appendStickyID(v, id)
	v = append(v, x.attrs...)
	if b.Sticky.TTL > 0 {
		v = append(v, "; Expires="...)
		v = time.Now().Add(b.Sticky.TTL).UTC().AppendFormat(v, http.TimeFormat)
	}
	name := [...]byte{'S', 'e', 't', '-', 'C', 'o', 'o', 'k', 'i', 'e'}
	resp.Header.AddBytes(name[:], v)
}

const hexDigits = "0123456789abcdef"

func appendStickyID(dst []byte, id uint64) []byte {
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[id>>uint(shift)&0xf])
	}
	return dst
}

// parseStickyID parses the 16 lower-case hex digits of an id.
func parseStickyID(v []byte) (uint64, bool) {
	if len(v) != 16 {
		return 0, false
	}
	var id uint64
	for _, c := range v {
		switch {
		case '0' <= c && c <= '9':
			id = id<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			id = id<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return id, true
}

package route

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/l7/h1"
)

// Table is a compiled routing table: an l7.Proxy that takes each request
// by the first of its routes that matches it, and serves it as that
// route says. Make one with New; a Table does not change once made, and
// is safe for concurrent use.
//
// The Table answers redirects, fixed responses and unmatched requests
// itself, in its RequestFilter; it sends the rest to the route's upstream
// proxy, whose phases (RequestFilter, UpstreamPeer, UpstreamRequestFilter,
// ResponseFilter, ResponseBodyFilter, FailToConnect, Log, and CtxMaker's
// NewCtx once the route is known) it calls in turn. It keeps its own per-request state in
// Session.RouteCtx, so s.Ctx is the upstream proxy's.
type Table struct {
	// Logger, when set before the Table serves, receives the failed
	// connection attempts that a retry hides, as an l7.Server logs them
	// when its Proxy does no routing; nil discards them.
	Logger *slog.Logger

	entries []*entry
	// exact maps a lower-case host name to the routes that may take its
	// requests: those listing it, and those whose wildcard matches it.
	exact map[string]*hostSet
	// wild maps a wildcard's suffix (".example.com") to the routes whose
	// wildcards match every name ending in it.
	wild map[string]*hostSet
	// anyHost holds the routes without host conditions.
	anyHost hostSet

	unmatched atomic.Uint64
	scratch   sync.Pool
	notFound  h1.Header
}

var (
	_ l7.Proxy                 = (*Table)(nil)
	_ l7.RequestFilter         = (*Table)(nil)
	_ l7.UpstreamRequestFilter = (*Table)(nil)
	_ l7.ResponseFilter        = (*Table)(nil)
	_ l7.FailToConnect         = (*Table)(nil)
	_ l7.Logger                = (*Table)(nil)
	_ l7.ResponseBodyFilter    = (*Table)(nil)
)

// notFoundBody answers a request no route takes.
var notFoundBody = []byte("weir: no route for this request\n")

// entry is one compiled route.
type entry struct {
	index int32
	name  string
	// plain says the route has no condition the lookup structures do
	// not hold: no regexp, methods, header fields or query.
	plain bool

	// Conditions. Host and path conditions are held by the lookup
	// structures; pathRe is checked on the candidates they return.
	hosts    []string // as hostName returns them; for building the index
	pathKind PathKind
	path     string // an exact or prefix path; for building the index
	pathRe   *regexp.Regexp
	methods  []string
	headers  []fieldCond
	query    []fieldCond

	// The action: upstream (with the phases it implements), redirect or
	// respond.
	upstream   l7.Proxy
	reqFilter  l7.RequestFilter
	upFilter   l7.UpstreamRequestFilter
	respFilter l7.ResponseFilter
	bodyFilter l7.ResponseBodyFilter
	fail       l7.FailToConnect
	logger     l7.Logger
	ctxMaker   l7.CtxMaker
	redirect   *redirect
	respond    *respond

	rewrite    *rewrite
	reqRules   rules
	respRules  rules
	maxRetries int
	// maxRequestBody is the route's body limit, 0 for the server's.
	maxRequestBody int64

	// sent is the request's state once the request rules are applied:
	// Session.RouteCtx moves from the entry to &sent, so that retries do
	// not apply them again.
	sent sentState
}

// sentState marks, in Session.RouteCtx, a request whose upstream request
// has been prepared.
type sentState struct{ e *entry }

// scratch is a request's working memory for building targets, header
// values and answers, pooled by the Table.
type scratch struct {
	path, target, value []byte
	header              h1.Header
}

// errNoRoute ends a request whose upstream phases run without the
// Table's RequestFilter having matched a route: a Table wrapped by a
// proxy that does not call it.
var errNoRoute = errors.New("route: upstream phase without a matched route (the Table's RequestFilter did not run)")

// New compiles routes into a Table. upstreams[i] is the proxy that
// serves routes[i] when its action is Upstream, and nil otherwise. Every
// route is checked; the error names the first route that is wrong and
// says why.
func New(routes []Route, upstreams []l7.Proxy) (*Table, error) {
	if len(upstreams) != len(routes) {
		return nil, fmt.Errorf("route.New: %d routes but %d upstream proxies; give one per route (nil for redirects and fixed responses)",
			len(routes), len(upstreams))
	}
	t := &Table{entries: make([]*entry, len(routes))}
	names := make(map[string]int, len(routes))
	for i := range routes {
		e, err := compile(i, &routes[i], upstreams[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label(i, &routes[i]), err)
		}
		if j, dup := names[e.name]; dup {
			return nil, fmt.Errorf("%s: name %q already names route %d; route names label metrics and must be unique",
				label(i, &routes[i]), e.name, j)
		}
		names[e.name] = i
		t.entries[i] = e
	}
	t.index()
	t.notFound.Set("Content-Type", "text/plain; charset=utf-8")
	t.scratch.New = func() any { return new(scratch) }
	return t, nil
}

// label names route i in errors.
func label(i int, r *Route) string {
	if r.Name != "" {
		return fmt.Sprintf("route %q", r.Name)
	}
	return "route " + strconv.Itoa(i)
}

// compile checks one route and compiles its conditions and action.
func compile(i int, r *Route, up l7.Proxy) (*entry, error) {
	e := &entry{index: int32(i), name: r.Name, maxRetries: r.MaxRetries, maxRequestBody: r.MaxRequestBody}
	if e.name == "" {
		e.name = strconv.Itoa(i)
	}
	e.sent.e = e
	if err := e.compileMatch(&r.Match); err != nil {
		return nil, err
	}
	e.plain = e.pathRe == nil && len(e.methods)+len(e.headers)+len(e.query) == 0
	if err := e.compileAction(r, up); err != nil {
		return nil, err
	}
	var err error
	if e.reqRules, err = compileRules(&r.RequestHeaders, true); err != nil {
		return nil, fmt.Errorf("request headers: %w", err)
	}
	if e.respRules, err = compileRules(&r.ResponseHeaders, false); err != nil {
		return nil, fmt.Errorf("response headers: %w", err)
	}
	if e.respond != nil {
		e.respond.prepare(&e.respRules)
	}
	return e, nil
}

func (e *entry) compileAction(r *Route, up l7.Proxy) error {
	actions := 0
	for _, set := range []bool{r.Upstream != "", r.Redirect != nil, r.Respond != nil} {
		if set {
			actions++
		}
	}
	if actions != 1 {
		return fmt.Errorf("has %d actions; give exactly one of upstream, redirect and respond", actions)
	}
	if r.Upstream == "" {
		if up != nil {
			return errors.New("has an upstream proxy but no upstream: its action is a redirect or a fixed response")
		}
		if r.Rewrite != nil || len(r.RequestHeaders.Set)+len(r.RequestHeaders.Add)+len(r.RequestHeaders.Remove) > 0 {
			return errors.New("rewrites the path or request headers, but sends nothing upstream: use them with an upstream action")
		}
	}
	switch {
	case r.Redirect != nil:
		rd, err := compileRedirect(r.Redirect)
		if err != nil {
			return fmt.Errorf("redirect: %w", err)
		}
		e.redirect = rd
		return nil
	case r.Respond != nil:
		rs, err := compileRespond(r.Respond)
		if err != nil {
			return fmt.Errorf("respond: %w", err)
		}
		e.respond = rs
		return nil
	}
	if up == nil {
		return fmt.Errorf("upstream %q has no proxy; pass the proxy that selects from it", r.Upstream)
	}
	if _, nested := up.(*Table); nested {
		return fmt.Errorf("upstream %q is itself a routing table; tables do not nest, list its routes here instead", r.Upstream)
	}
	e.upstream = up
	e.reqFilter, _ = up.(l7.RequestFilter)
	e.upFilter, _ = up.(l7.UpstreamRequestFilter)
	e.respFilter, _ = up.(l7.ResponseFilter)
	e.bodyFilter, _ = up.(l7.ResponseBodyFilter)
	e.fail, _ = up.(l7.FailToConnect)
	e.logger, _ = up.(l7.Logger)
	e.ctxMaker, _ = up.(l7.CtxMaker)
	if r.Rewrite != nil {
		rw, err := compileRewrite(r.Rewrite)
		if err != nil {
			return fmt.Errorf("rewrite: %w", err)
		}
		e.rewrite = rw
	}
	return nil
}

// Unmatched returns how many requests no route took (answered 404).
func (t *Table) Unmatched() uint64 { return t.unmatched.Load() }

// Len returns the number of routes.
func (t *Table) Len() int { return len(t.entries) }

// Names returns the routes' names in table order, as Session.Route
// gives them: a route's Name, or its index when Name is empty.
func (t *Table) Names() []string {
	names := make([]string, len(t.entries))
	for i, e := range t.entries {
		names[i] = e.name
	}
	return names
}

func (t *Table) getScratch() *scratch { return t.scratch.Get().(*scratch) }

func (t *Table) putScratch(sc *scratch) {
	// A hostile request may have grown a buffer; don't keep it.
	if cap(sc.path)+cap(sc.target)+cap(sc.value) > 64<<10 {
		return
	}
	sc.header.Reset()
	t.scratch.Put(sc)
}

// routeOf returns the route that took the request, nil if none did.
func routeOf(s *l7.Session) *entry {
	switch st := s.RouteCtx.(type) {
	case *entry:
		return st
	case *sentState:
		return st.e
	}
	return nil
}

// UpstreamPeer asks the matched route's upstream proxy for a peer.
func (t *Table) UpstreamPeer(s *l7.Session) (*l7.Peer, error) {
	e := routeOf(s)
	if e == nil || e.upstream == nil {
		return nil, fmt.Errorf("%w: %w", l7.ErrFilter, errNoRoute)
	}
	return e.upstream.UpstreamPeer(s)
}

// UpstreamRequestFilter applies the route's request header rules, once
// per request (a retry keeps what the first attempt set), and then the
// upstream proxy's filter, on every attempt: a pool that sets Host has
// the last word on it.
func (t *Table) UpstreamRequestFilter(s *l7.Session, req *h1.Request) error {
	var e *entry
	switch st := s.RouteCtx.(type) {
	case *entry:
		e = st
		if !e.reqRules.empty() {
			t.applyRules(&e.reqRules, &req.Header, s)
		}
		s.RouteCtx = &e.sent
	case *sentState:
		e = st.e
	default:
		return errNoRoute
	}
	if e.upFilter != nil {
		return e.upFilter.UpstreamRequestFilter(s, req)
	}
	return nil
}

// ResponseFilter runs the upstream proxy's filter, then applies the
// route's response header rules.
func (t *Table) ResponseFilter(s *l7.Session, resp *h1.Response) error {
	e := routeOf(s)
	if e == nil {
		return nil
	}
	if e.respFilter != nil {
		if err := e.respFilter.ResponseFilter(s, resp); err != nil {
			return err
		}
	}
	if !e.respRules.empty() {
		t.applyRules(&e.respRules, &resp.Header, s)
	}
	return nil
}

// ResponseBodyFilter passes the phase to the upstream proxy, which may
// compress the body (a proxy embedding a compress.Policy).
func (t *Table) ResponseBodyFilter(s *l7.Session, resp *h1.Response, dst io.Writer) l7.BodyEncoder {
	if e := routeOf(s); e != nil && e.bodyFilter != nil {
		return e.bodyFilter.ResponseBodyFilter(s, resp, dst)
	}
	return nil
}

// FailToConnect lets the upstream proxy decide whether to retry, and
// otherwise logs the failure and retries, as l7.Server does.
func (t *Table) FailToConnect(s *l7.Session, p *l7.Peer, err error) bool {
	if e := routeOf(s); e != nil && e.fail != nil {
		return e.fail.FailToConnect(s, p, err)
	}
	if t.Logger != nil {
		t.Logger.Info("upstream connect failed; trying another", "route", s.Route, "peer", p.Addr,
			"request_id", string(s.RequestID), "err", err)
	}
	return true
}

// Log passes the end of the request to the upstream proxy's Logger.
func (t *Table) Log(s *l7.Session, err error) {
	if e := routeOf(s); e != nil && e.logger != nil {
		e.logger.Log(s, err)
	}
}

// applyRules applies header rules to h, expanding templates in pooled
// memory.
func (t *Table) applyRules(r *rules, h *h1.Header, s *l7.Session) {
	if r.constant {
		r.apply(h, s, nil)
		return
	}
	sc := t.getScratch()
	sc.value = r.apply(h, s, sc.value)
	t.putScratch(sc)
}

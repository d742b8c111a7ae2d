package route

import (
	"fmt"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/l7/h1"
)

// errClimbs answers a request whose path climbs above the root ("/..",
// "/a/../..") with 400: no file system path or route is meant by it, and
// a backend resolving it would reach outside what the routes describe.
var errClimbs = fmt.Errorf("%w: %w", l7.ErrDownstream,
	&h1.Error{Status: 400, Msg: "request path climbs above the root", Err: h1.ErrMalformed})

// RequestFilter routes the request: it normalises the path, finds the
// first route that matches, and answers a redirect, a fixed response or
// (when no route matches) a 404 itself; for an upstream route it rewrites
// the target and hands the request on to the route's proxy.
func (t *Table) RequestFilter(s *l7.Session) (bool, error) {
	e, tgt, err := t.find(s)
	switch {
	case err != nil:
		return false, err
	case e == nil:
		t.unmatched.Add(1)
		return true, answerErr(s.Respond(404, &t.notFound, notFoundBody))
	}
	s.Route, s.RouteCtx = e.name, e
	switch {
	case e.redirect != nil:
		return true, answerErr(t.answerRedirect(s, e, tgt.path(s.Req.Target), tgt.query(s.Req.Target)))
	case e.respond != nil:
		return true, answerErr(t.answerRespond(s, e))
	}
	if e.maxRetries >= 0 {
		s.MaxRetries = e.maxRetries
	}
	if e.maxRequestBody > 0 {
		s.MaxRequestBody = e.maxRequestBody
	}
	if e.rewrite != nil {
		if err := t.rewriteTarget(s, e.rewrite, tgt); err != nil {
			return false, err
		}
	}
	if e.ctxMaker != nil {
		s.Ctx = e.ctxMaker.NewCtx()
	}
	if e.reqFilter != nil {
		return e.reqFilter.RequestFilter(s)
	}
	return false, nil
}

// find normalises the request's path, replacing it in the request when
// that changed it, and returns the first route that takes the request
// (nil if none does) and where the parts of the target are.
func (t *Table) find(s *l7.Session) (*entry, target, error) {
	req := s.Req
	hs := t.hostSetOf(authority(req))
	tgt := splitTarget(req.Method, req.Target)
	path := tgt.path(req.Target)
	if tgt.hasPath && !clean(path) {
		sc := t.getScratch()
		np, ok := normalise(sc.path, path)
		sc.path = np
		if !ok {
			t.putScratch(sc)
			return nil, tgt, errClimbs
		}
		// What matched is what the backend sees: the normalised path
		// replaces the one sent.
		sc.target = tgt.replacePath(sc.target[:0], req.Target, np)
		s.SetTarget(sc.target)
		t.putScratch(sc)
		tgt = splitTarget(req.Method, req.Target)
		path = tgt.path(req.Target)
	}
	v := view{method: req.Method, path: path, hasPath: tgt.hasPath, query: tgt.query(req.Target), header: &req.Header}
	return t.lookup(hs, &v), tgt, nil
}

// answerErr marks the failure to send an answer the client's: it left.
func answerErr(err error) error {
	if err != nil {
		return fmt.Errorf("%w: %w", l7.ErrDownstream, err)
	}
	return nil
}

// rewriteTarget applies the route's rewrite to the request's path,
// keeping the query.
func (t *Table) rewriteTarget(s *l7.Session, rw *rewrite, tgt target) error {
	req := s.Req
	if !tgt.hasPath {
		return nil
	}
	sc := t.getScratch()
	defer t.putScratch(sc)
	out, changed, ok := rw.apply(sc.path[:0], tgt.path(req.Target))
	if !ok {
		return errClimbs
	}
	if changed {
		sc.path = out
		sc.target = tgt.replacePath(sc.target[:0], req.Target, out)
		s.SetTarget(sc.target)
	}
	return nil
}

// answerRedirect answers with the route's redirect.
func (t *Table) answerRedirect(s *l7.Session, e *entry, path, query []byte) error {
	sc := t.getScratch()
	defer t.putScratch(sc)
	sc.value = e.redirect.location(sc.value[:0], s, path, query)
	sc.header.SetValue("Location", sc.value)
	if !e.respRules.empty() {
		sc.value = e.respRules.apply(&sc.header, s, sc.value)
	}
	return s.Respond(e.redirect.status, &sc.header, nil)
}

// answerRespond answers with the route's fixed response.
func (t *Table) answerRespond(s *l7.Session, e *entry) error {
	rs := e.respond
	if rs.ready {
		return s.Respond(rs.status, &rs.header, rs.body)
	}
	sc := t.getScratch()
	defer t.putScratch(sc)
	sc.header.CopyFrom(&rs.header)
	sc.value = e.respRules.apply(&sc.header, s, sc.value)
	return s.Respond(rs.status, &sc.header, rs.body)
}

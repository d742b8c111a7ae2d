package server

import (
	"crypto/tls"
	"fmt"

	"github.com/weir-lb/weir/pkg/accesslog"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/metrics"
)

// requestObserver is an HTTP service's l7.Observer: its metrics, its
// access log, or both. A service with neither has no observer at all, so
// it pays nothing.
type requestObserver struct {
	service string
	metrics *metrics.HTTPService // nil: not counted
	log     *accesslog.Writer    // nil: not logged
	format  *accesslog.Format
}

var _ l7.Observer = (*requestObserver)(nil)

// observer builds the observer of service sc, nil when it has neither
// metrics nor an access log.
func (s *Server) observer(sc *config.Service) (*requestObserver, error) {
	o := &requestObserver{service: sc.Name}
	if s.metrics != nil {
		o.metrics = s.metrics.HTTPService(sc.Name)
	}
	if al := sc.AccessLog; al != nil && s.accessLogs != nil {
		w, err := s.accessLogs.Get(al.Path)
		if err != nil {
			return nil, fmt.Errorf("access_log at %s: %w", al.Pos, err)
		}
		o.log, o.format = w, al.Format
		if s.metrics != nil {
			s.metrics.AccessLog(w.Path(), w.Dropped)
		}
	}
	if o.metrics == nil && o.log == nil {
		return nil, nil
	}
	return o, nil
}

// ConnOpened implements l7.Observer.
func (o *requestObserver) ConnOpened() {
	if o.metrics != nil {
		o.metrics.ConnOpened()
	}
}

// ConnClosed implements l7.Observer.
func (o *requestObserver) ConnClosed() {
	if o.metrics != nil {
		o.metrics.ConnClosed()
	}
}

// Handshake implements l7.Observer.
func (o *requestObserver) Handshake(st *tls.ConnectionState, err error) {
	if o.metrics != nil {
		o.metrics.Handshake(st, err)
	}
}

// StreamOpened implements l7.Observer.
func (o *requestObserver) StreamOpened() {
	if o.metrics != nil {
		o.metrics.StreamOpened()
	}
}

// RequestStarted implements l7.Observer.
func (o *requestObserver) RequestStarted(s *l7.Session) {
	if o.metrics != nil {
		o.metrics.RequestStarted(s)
	}
}

// RequestDone implements l7.Observer: the request is counted, then
// logged.
func (o *requestObserver) RequestDone(s *l7.Session, err error) {
	if o.metrics != nil {
		o.metrics.RequestDone(s, err)
	}
	if o.log != nil {
		var r accesslog.Record
		o.record(&r, s, err)
		o.log.Log(o.format, &r)
	}
}

// record fills r from the session. Every []byte field points into the
// session, valid until RequestDone returns; Log formats before that.
func (o *requestObserver) record(r *accesslog.Record, s *l7.Session, err error) {
	req := s.Req
	*r = accesslog.Record{
		Service: o.service, Route: s.Route, Start: s.Start, Client: s.Client,
		Method: req.Method, Host: req.Host, Target: s.ReceivedTarget(), Proto: s.Proto.String(),
		Status: s.Status, BytesReceived: s.BytesReceived, BytesSent: s.BytesSent,
		Duration: s.End.Sub(s.Start), Attempts: s.Attempts, RequestID: s.RequestID,
		Reason: l7.EndReason(err),
	}
	if n := len(s.Tried); n > 0 {
		r.Upstream, r.Connect, r.FirstByte = s.Tried[n-1].Addr, s.Connect, s.FirstByte
	}
	if s.TLS != nil {
		r.TLSVersion, r.SNI = tlsVersionName(s.TLS.Version), s.TLS.ServerName
	}
	r.UserAgent, _ = req.Header.Get("User-Agent")
	r.Referer, _ = req.Header.Get("Referer")
}

// tlsVersionName names a TLS version as nginx's $ssl_protocol does.
func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS10:
		return "TLSv1"
	}
	return "TLS"
}

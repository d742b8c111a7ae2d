// Package dnstest runs a DNS server on loopback for tests
// (github.com/miekg/dns): it answers A records from a zone, and the test
// can make it hold its answers, answer nothing, or answer garbage, to see
// what a resolver that misbehaves does to weir.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Mode is how the server treats queries.
type Mode int

const (
	// Answer answers from the zone at once.
	Answer Mode = iota
	// Hold answers from the zone once the mode changes (or the test ends).
	Hold
	// Silent reads every query and answers none.
	Silent
	// Garbage answers every query with bytes that are no DNS message.
	Garbage
)

// wait bounds every wait of the server: far above anything a test should
// need, so that only a hang trips it.
const wait = 20 * time.Second

// Server is a DNS server on 127.0.0.1 (UDP).
type Server struct {
	// Addr is the server's address, host:port.
	Addr string
	zone map[string]string // lower-case fqdn → IPv4 address

	mu      sync.Mutex
	mode    Mode
	release chan struct{} // closed when the mode leaves Hold
	queries int           // in the current mode
	asked   chan struct{} // closed by the first query in the current mode
}

// Start starts a server in mode answering A records from zone (fully
// qualified names, with the trailing dot), and stops it when the test
// ends.
func Start(t testing.TB, mode Mode, zone map[string]string) *Server {
	t.Helper()
	s := &Server{zone: map[string]string{}, mode: mode, release: make(chan struct{}), asked: make(chan struct{})}
	for name, ip := range zone {
		s.zone[strings.ToLower(name)] = ip
	}
	s.Addr = Serve(t, s)
	// Registered after Serve's, so it runs first: held handlers return
	// before the server stops.
	t.Cleanup(func() { s.SetMode(Answer) })
	return s
}

// Serve serves DNS over UDP on a free port of 127.0.0.1 with h until the
// test ends, and returns the address. It is the plumbing of Start, for
// tests whose server answers in ways of its own.
func Serve(t testing.TB, h dns.Handler) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("DNS server: %v", err)
	case <-time.After(wait):
		t.Fatal("DNS server did not start")
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("DNS server shutdown: %v", err)
		}
		select {
		case <-done:
		case <-time.After(wait):
			t.Error("DNS server did not stop")
		}
	})
	return pc.LocalAddr().String()
}

// SetMode switches the server to mode; leaving Hold lets the held answers
// go.
func (s *Server) SetMode(mode Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == Hold {
		close(s.release)
		s.release = make(chan struct{})
	}
	s.mode = mode
	s.queries = 0
	s.asked = make(chan struct{})
}

// Asked returns a channel closed by the first query in the current mode.
func (s *Server) Asked() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked
}

// WaitAsked fails t unless a query comes in the current mode within 20 s.
func (s *Server) WaitAsked(t testing.TB) {
	t.Helper()
	select {
	case <-s.Asked():
	case <-time.After(wait):
		t.Fatalf("nobody asked the resolver within %v", wait)
	}
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.mu.Lock()
	mode, release := s.mode, s.release
	s.queries++
	if s.queries == 1 {
		close(s.asked)
	}
	s.mu.Unlock()
	switch mode {
	case Silent:
		return
	case Garbage:
		w.Write([]byte("\x00\x01 this is not a DNS message"))
		return
	case Hold:
		select {
		case <-release:
		case <-time.After(wait):
			return
		}
	}
	w.WriteMsg(s.answer(req))
}

// answer is the zone's answer to req.
func (s *Server) answer(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	if len(req.Question) != 1 {
		return resp
	}
	q := req.Question[0]
	ip, ok := s.zone[strings.ToLower(q.Name)]
	switch {
	case !ok:
		resp.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeA:
		if rr, err := dns.NewRR(fmt.Sprintf("%s 0 IN A %s", q.Name, ip)); err == nil {
			resp.Answer = append(resp.Answer, rr)
		}
	}
	return resp
}

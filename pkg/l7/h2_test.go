package l7

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
	"golang.org/x/net/http2"
)

// protoOrigin answers with the protocol it was spoken to in, and echoes
// a POST body.
func protoOrigin(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Proto", r.Proto)
	fmt.Fprintf(w, "%s %s %s", r.Proto, r.Method, body)
}

func TestHTTP2Downstream(t *testing.T) {
	pki := newTestPKI(t)
	o := startOrigin(t, protoOrigin)
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)

	newServer := func() *Server { return &Server{Proxy: &Balanced{LB: pool}} }
	tlsSrv := newServer()
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go tlsSrv.Serve(tls.NewListener(tln, &tls.Config{
		Certificates: []tls.Certificate{pki.cert(t, "front.example")},
		NextProtos:   []string{"h2", "http/1.1"},
	}))
	t.Cleanup(func() { tlsSrv.Close() })
	plainAddr := startProxy(t, newServer())

	tests := []struct {
		name   string
		client *http.Client
		url    string
	}{
		{"h2 over TLS (ALPN)", &http.Client{Transport: &http2.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pki.roots, ServerName: "front.example"},
		}}, "https://" + tln.Addr().String()},
		{"h2c prior knowledge", &http.Client{Transport: &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		}}, "http://" + plainAddr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.client.Timeout = 5 * time.Second
			// Concurrent streams on one connection, with bodies both ways.
			var wg sync.WaitGroup
			errs := make(chan error, 20)
			for i := range 20 {
				wg.Go(func() {
					msg := fmt.Sprintf("stream-%d-%s", i, strings.Repeat("x", i*500))
					resp, err := tc.client.Post(tc.url+"/echo", "text/plain", strings.NewReader(msg))
					if err != nil {
						errs <- err
						return
					}
					defer resp.Body.Close()
					body, _ := io.ReadAll(resp.Body)
					if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(body) != "HTTP/1.1 POST "+msg {
						errs <- fmt.Errorf("got %s %d %.40q", resp.Proto, resp.StatusCode, body)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestHTTP2Upstream(t *testing.T) {
	pki := newTestPKI(t)
	var conns atomic.Int64
	countConns := func(s *http.Server) {
		s.ConnState = func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		}
	}
	tlsOrigin := startOriginTLS(t, protoOrigin, &tls.Config{Certificates: []tls.Certificate{pki.cert(t, "backend.internal")}}, countConns)
	h2cOrigin := startOriginTLS(t, protoOrigin, nil, func(s *http.Server) {
		s.Protocols = new(http.Protocols)
		s.Protocols.SetUnencryptedHTTP2(true)
		countConns(s)
	})
	tests := []struct {
		name string
		addr string
		peer Peer
	}{
		{"h2 over TLS", tlsOrigin.addr, Peer{TLS: true, SNI: "backend.internal", RootCAs: pki.roots, ALPN: ALPNH2H1}},
		{"h2c", h2cOrigin.addr, Peer{ALPN: ALPNH2}},
		{"h2c (ALPNH2C)", h2cOrigin.addr, Peer{ALPN: ALPNH2C}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conns.Store(0)
			pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, tc.addr)
			addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool, Template: tc.peer}})
			c := newClient()
			var wg sync.WaitGroup
			errs := make(chan error, 30)
			for i := range 30 {
				wg.Go(func() {
					msg := fmt.Sprintf("body-%d", i)
					resp, err := c.Post("http://"+addr+"/", "text/plain", strings.NewReader(msg))
					if err != nil {
						errs <- err
						return
					}
					defer resp.Body.Close()
					body, _ := io.ReadAll(resp.Body)
					if resp.StatusCode != 200 || string(body) != "HTTP/2.0 POST "+msg || resp.Header.Get("X-Proto") != "HTTP/2.0" {
						errs <- fmt.Errorf("got %d %q", resp.StatusCode, body)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if n := conns.Load(); n != 1 {
				t.Errorf("30 concurrent requests opened %d HTTP/2 connections upstream, want 1 (multiplexed)", n)
			}
		})
	}
}

func TestHTTP2UpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	o := startOriginTLS(t, func(w http.ResponseWriter, r *http.Request) { <-release }, nil, func(s *http.Server) {
		s.Protocols = new(http.Protocols)
		s.Protocols.SetUnencryptedHTTP2(true)
	})
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool, Template: Peer{ALPN: ALPNH2, Timeouts: Timeouts{Read: 200 * time.Millisecond}}}})
	if code, _ := get(t, newClient(), "http://"+addr+"/"); code != 504 {
		t.Fatalf("stalled HTTP/2 upstream gave %d, want 504", code)
	}
}

// TestALPN: each value's config spelling and what it offers over TLS;
// h2c means h2 on a TLS peer.
func TestALPN(t *testing.T) {
	for _, tc := range []struct {
		alpn   ALPN
		name   string
		protos string
	}{
		{ALPNH1, "h1", "http/1.1"},
		{ALPNH2, "h2", "h2"},
		{ALPNH2H1, "h2h1", "h2,http/1.1"},
		{ALPNH2C, "h2c", "h2"},
	} {
		if got := tc.alpn.String(); got != tc.name {
			t.Errorf("ALPN %d spells %q, want %q", tc.alpn, got, tc.name)
		}
		if got := strings.Join(tc.alpn.protos(), ","); got != tc.protos {
			t.Errorf("%s offers %q over TLS, want %q", tc.name, got, tc.protos)
		}
	}
}

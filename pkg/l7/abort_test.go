package l7

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
	"golang.org/x/net/http2"
)

// An HTTP/2 client that resets a stream whose upstream has not answered
// yet ends the upstream exchange at once: the origin sees its request
// cancelled long before the proxy's read timeout, and the connection and
// the backend go on serving.
func TestH2ResetStreamAbortsTheUpstreamExchange(t *testing.T) {
	h2c := func(s *http.Server) {
		s.Protocols = new(http.Protocols)
		s.Protocols.SetUnencryptedHTTP2(true)
	}
	tests := []struct {
		name      string
		configure func(*http.Server)
		peer      Peer
	}{
		{"HTTP/1.1 upstream", func(*http.Server) {}, Peer{}},
		{"h2c upstream", h2c, Peer{ALPN: ALPNH2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			cancelled := make(chan struct{}, 1)
			o := startOriginTLS(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/hold" {
					w.Write([]byte("ok"))
					return
				}
				arrived <- struct{}{}
				select {
				case <-r.Context().Done():
					cancelled <- struct{}{}
				case <-time.After(3 * h2TestTimeout):
				}
			}, nil, tc.configure)
			pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)
			peer := tc.peer
			peer.Timeouts.Read = time.Minute // far beyond the test's patience
			addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool, Template: peer}})

			c := dialH2(t, addr)
			c.headers(1, true, ":method", "GET", ":scheme", "http", ":authority", "front.example", ":path", "/hold")
			select {
			case <-arrived:
			case <-time.After(h2TestTimeout):
				t.Fatal("the held request never reached the origin")
			}
			if err := c.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
				t.Fatal(err)
			}
			select {
			case <-cancelled:
			case <-time.After(h2TestTimeout):
				t.Fatalf("the origin still held the request %v after the client reset its stream", h2TestTimeout)
			}
			c.headers(3, true, h2Base...)
			if r := c.response(3); r.status != 200 || string(r.body) != "ok" {
				t.Fatalf("request after the reset: %v", r)
			}
			if c.goAway != nil {
				t.Fatalf("the reset ended the connection: GOAWAY %+v", c.goAway)
			}
		})
	}
}

var errTest = errors.New("upstream exchange failed")

// The abort's own rules: what watch, fire, unwatch and settle do in each
// order.
func TestAbort(t *testing.T) {
	t.Run("nil abort is inert", func(t *testing.T) {
		var a *abort
		if err := a.watch(nil, nil); err != nil {
			t.Errorf("watch: %v", err)
		}
		if a.unwatch() != nil {
			t.Error("unwatch reported a fired abort")
		}
		if err := a.settle(errTest); err != errTest {
			t.Errorf("settle changed the error to %v", err)
		}
	})
	t.Run("fire before watch refuses the exchange", func(t *testing.T) {
		var a abort
		a.fire(errStreamReset)
		if err := a.watch(nil, nil); err != errStreamReset {
			t.Errorf("watch after fire: %v, want %v", err, errStreamReset)
		}
	})
	t.Run("fire while watched cancels and blames the client", func(t *testing.T) {
		var a abort
		var cause error
		if err := a.watch(nil, func(err error) { cause = err }); err != nil {
			t.Fatal(err)
		}
		a.fire(errStreamReset)
		a.fire(errStreamGone) // only the first counts
		if cause != errStreamReset {
			t.Errorf("cancel got %v, want %v", cause, errStreamReset)
		}
		err := a.settle(errTest)
		if !errors.Is(err, ErrDownstream) || !errors.Is(err, errStreamReset) {
			t.Errorf("settle: %v, want ErrDownstream and the reset", err)
		}
	})
	t.Run("fire after unwatch only records", func(t *testing.T) {
		var a abort
		called := false
		a.watch(nil, func(error) { called = true })
		if a.unwatch() != nil {
			t.Error("unwatch reported a fire that had not happened")
		}
		a.fire(errStreamReset)
		if called {
			t.Error("fire cancelled an exchange no longer watched")
		}
		if err := a.settle(nil); err != nil {
			t.Errorf("settle of a success: %v", err)
		}
	})
	t.Run("reset readies it for the next request", func(t *testing.T) {
		var a abort
		a.fire(errStreamReset)
		a.reset()
		if err := a.watch(nil, nil); err != nil {
			t.Errorf("watch after reset: %v", err)
		}
	})
}

package l7

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/retry"
)

// failing answers 503 with a body naming name, after reading the request.
func failing(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(503)
		fmt.Fprintf(w, "down: %s", name)
	}
}

// bodyEcho answers 200 with the request's method and body.
func bodyEcho(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s %d %x", r.Method, len(b), sumOf(b))
}

func sumOf(b []byte) uint32 {
	var s uint32
	for i, c := range b {
		s = s*31 + uint32(c) + uint32(i)
	}
	return s
}

func h2cServer(s *http.Server) {
	s.Protocols = new(http.Protocols)
	s.Protocols.SetUnencryptedHTTP2(true)
}

// retryProxy serves a round-robin pool over addrs with pol.
func retryProxy(t *testing.T, pol *retry.Policy, alpn ALPN, addrs ...string) string {
	t.Helper()
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, addrs...)
	return startProxy(t, &Server{Proxy: &Balanced{LB: pool, Template: Peer{Retry: pol, ALPN: alpn}}})
}

// TestRetryStatusGoesToAnotherBackend: with one backend of three
// answering 503, every GET succeeds, over HTTP/1.1 and HTTP/2 upstream
// connections; the failing backend sees each request at most once and
// every 503 it gave was retried.
func TestRetryStatusGoesToAnotherBackend(t *testing.T) {
	for _, tc := range []struct {
		name      string
		alpn      ALPN
		configure []func(*http.Server)
	}{
		{"h1", ALPNH1, nil},
		{"h2c", ALPNH2C, []func(*http.Server){h2cServer}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := startOriginTLS(t, failing("bad"), nil, tc.configure...)
			a := startOriginTLS(t, hello("a"), nil, tc.configure...)
			b := startOriginTLS(t, hello("b"), nil, tc.configure...)
			pol := &retry.Policy{On: retry.Of(retry.Status503), Attempts: 3, Budget: &retry.Budget{Percent: 20, MinConcurrency: 3}}
			addr := retryProxy(t, pol, tc.alpn, bad.addr, a.addr, b.addr)
			c := newClient()
			const n = 30
			for i := range n {
				if code, body := get(t, c, "http://"+addr+"/"); code != 200 || !strings.HasPrefix(body, "hello from") {
					t.Fatalf("request %d: %d %q, want 200 from a healthy backend", i, code, body)
				}
			}
			if got := bad.requests.Load(); got == 0 || got > n {
				t.Errorf("the failing backend saw %d requests, want 1 to %d", got, n)
			}
			st := pol.Stats()
			if st.Retries[retry.Status503] != uint64(bad.requests.Load()) || st.BudgetExhausted != 0 {
				t.Errorf("stats %+v; want one 503 retry per request the failing backend saw (%d)", st, bad.requests.Load())
			}
			if total := bad.requests.Load() + a.requests.Load() + b.requests.Load(); total != n+bad.requests.Load() {
				t.Errorf("the backends saw %d requests for %d GETs and %d retries", total, n, bad.requests.Load())
			}
		})
	}
}

// TestRetryOnlyWhatIsSafe sends one request to a pool whose first
// backend answers 503 and whose second echoes the body: what is retried
// reaches the second with the same bytes, what is not gets the first's
// 503 as it was.
func TestRetryOnlyWhatIsSafe(t *testing.T) {
	small := bytes.Repeat([]byte("0123456789"), 100)
	large := bytes.Repeat([]byte("x"), maxKeptBody+1)
	for _, tc := range []struct {
		name    string
		method  string
		body    []byte
		chunked bool
		retried bool
	}{
		{"GET", "GET", nil, false, true},
		{"DELETE", "DELETE", nil, false, true},
		{"POST without a body", "POST", nil, false, false},
		{"POST with a body", "POST", small, false, false},
		{"PUT with a small body", "PUT", small, false, true},
		{"PUT with a small chunked body", "PUT", small, true, true},
		{"PUT with a body just within the buffer", "PUT", large[:maxKeptBody], false, true},
		{"PUT with a body over the buffer", "PUT", large, false, false},
		{"PUT with a chunked body over the buffer", "PUT", large, true, false},
	} {
		for _, up := range []struct {
			name      string
			alpn      ALPN
			configure []func(*http.Server)
		}{{"h1", ALPNH1, nil}, {"h2c", ALPNH2C, []func(*http.Server){h2cServer}}} {
			t.Run(tc.name+"/"+up.name, func(t *testing.T) {
				bad := startOriginTLS(t, failing("bad"), nil, up.configure...)
				good := startOriginTLS(t, bodyEcho, nil, up.configure...)
				pol := &retry.Policy{On: retry.Of(retry.Status503, retry.Reset), Attempts: 2}
				addr := retryProxy(t, pol, up.alpn, bad.addr, good.addr)
				var body io.Reader
				if tc.body != nil {
					body = bytes.NewReader(tc.body)
					if tc.chunked {
						body = io.MultiReader(body) // no length known: chunked
					}
				}
				req, _ := http.NewRequest(tc.method, "http://"+addr+"/", body)
				resp, err := newClient().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if tc.retried {
					want := fmt.Sprintf("%s %d %x", tc.method, len(tc.body), sumOf(tc.body))
					if resp.StatusCode != 200 || string(got) != want {
						t.Errorf("got %d %q, want 200 %q from the second backend", resp.StatusCode, got, want)
					}
					if good.requests.Load() != 1 {
						t.Errorf("the second backend saw %d requests, want 1", good.requests.Load())
					}
				} else {
					if resp.StatusCode != 503 || string(got) != "down: bad" {
						t.Errorf("got %d %q, want the first backend's 503 relayed", resp.StatusCode, got)
					}
					if good.requests.Load() != 0 {
						t.Errorf("the request was sent again: the second backend saw %d", good.requests.Load())
					}
				}
				if bad.requests.Load() != 1 {
					t.Errorf("the failing backend saw %d requests, want 1", bad.requests.Load())
				}
			})
		}
	}
}

// TestRetryNeverAfterTheHeadWentDownstream: a backend that sends a
// response head and part of its body, then resets, is not retried, reset
// being a retried condition: the client already has the head.
func TestRetryNeverAfterTheHeadWentDownstream(t *testing.T) {
	var cut atomic.Int64
	cutOff := rawOrigin(t, func(c net.Conn) {
		cut.Add(1)
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial"))
		c.(*net.TCPConn).SetLinger(0)
	})
	good := startOrigin(t, hello("good"))
	pol := &retry.Policy{On: retry.Of(retry.Reset, retry.Timeout, retry.Status503), Attempts: 3}
	addr := retryProxy(t, pol, ALPNH1, cutOff, good.addr)
	out, _ := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(out, "partial") {
		t.Errorf("got %q, want the cut-off response as far as it went", out)
	}
	if cut.Load() != 1 || good.requests.Load() != 0 {
		t.Errorf("backends saw %d and %d requests, want 1 and 0", cut.Load(), good.requests.Load())
	}
	if st := pol.Stats(); st.Total != 0 {
		t.Errorf("%d retries counted", st.Total)
	}
}

// TestRetryResetBeforeAnyByte: a connection closed before any byte of a
// response is a reset, retried for a GET, not for a POST.
func TestRetryResetBeforeAnyByte(t *testing.T) {
	for _, tc := range []struct {
		method string
		want   int
	}{{"GET", 200}, {"POST", 502}} {
		t.Run(tc.method, func(t *testing.T) {
			var resets atomic.Int64
			reset := rawOrigin(t, func(c net.Conn) {
				resets.Add(1)
				c.(*net.TCPConn).SetLinger(0)
			})
			good := startOrigin(t, hello("good"))
			pol := &retry.Policy{On: retry.Of(retry.Reset), Attempts: 2}
			addr := retryProxy(t, pol, ALPNH1, reset, good.addr)
			out, _ := rawExchange(t, addr, tc.method+" / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			if got := firstLine(out); got != fmt.Sprintf("HTTP/1.1 %d %s", tc.want, http.StatusText(tc.want)) {
				t.Errorf("got %q, want %d", got, tc.want)
			}
			if resets.Load() != 1 {
				t.Errorf("the resetting backend saw %d requests, want 1", resets.Load())
			}
		})
	}
}

// TestRetryPerTryTimeout: a backend that does not answer within the
// per-try timeout is abandoned (its request's context ends) and the
// request goes to another, over either upstream protocol; on the last
// attempt the timeout answers 504.
func TestRetryPerTryTimeout(t *testing.T) {
	for _, up := range []struct {
		name      string
		alpn      ALPN
		configure []func(*http.Server)
	}{{"h1", ALPNH1, nil}, {"h2c", ALPNH2C, []func(*http.Server){h2cServer}}} {
		t.Run(up.name, func(t *testing.T) {
			abandoned := make(chan struct{}, 4)
			stall := func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
					abandoned <- struct{}{}
				case <-time.After(5 * time.Second):
				}
			}
			slow := startOriginTLS(t, stall, nil, up.configure...)
			fast := startOriginTLS(t, hello("fast"), nil, up.configure...)
			pol := &retry.Policy{On: retry.Of(retry.Timeout), Attempts: 2, PerTryTimeout: 200 * time.Millisecond}
			addr := retryProxy(t, pol, up.alpn, slow.addr, fast.addr)
			if code, body := get(t, newClient(), "http://"+addr+"/"); code != 200 || body != "hello from fast" {
				t.Fatalf("got %d %q, want 200 from the fast backend", code, body)
			}
			select {
			case <-abandoned:
			case <-time.After(5 * time.Second):
				t.Fatal("the slow attempt was not abandoned")
			}
			if st := pol.Stats(); st.Retries[retry.Timeout] != 1 {
				t.Errorf("stats %+v, want one timeout retry", st)
			}

			// Both slow: the second attempt's timeout is the answer.
			slow2 := startOriginTLS(t, stall, nil, up.configure...)
			addr = retryProxy(t, pol, up.alpn, slow.addr, slow2.addr)
			if code, _ := get(t, newClient(), "http://"+addr+"/"); code != 504 {
				t.Errorf("got %d, want 504 when every attempt timed out", code)
			}
		})
	}
}

// TestRetryAttemptsAndBudget: the attempts bound the tries, the last
// failure is relayed as it is, and a budget with no room refuses every
// retry, counting the refusals.
func TestRetryAttemptsAndBudget(t *testing.T) {
	for _, tc := range []struct {
		name     string
		attempts int
		budget   *retry.Budget
		tries    int64
		denied   uint64
	}{
		{"three attempts", 3, nil, 3, 0},
		{"attempts beyond the backends", 5, nil, 5, 0},
		{"one attempt", 1, nil, 1, 0},
		{"empty budget", 3, &retry.Budget{Percent: 0, MinConcurrency: 0}, 1, 1},
		{"floor of one", 3, &retry.Budget{Percent: 0, MinConcurrency: 1}, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits [3]*origin
			addrs := make([]string, 3)
			for i := range hits {
				hits[i] = startOrigin(t, failing(fmt.Sprint(i)))
				addrs[i] = hits[i].addr
			}
			pol := &retry.Policy{On: retry.Of(retry.Status503), Attempts: tc.attempts, Budget: tc.budget}
			obs := &retryObserver{done: make(chan *retrySeen, 1)}
			pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, addrs...)
			addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool, Template: Peer{Retry: pol}}, Observer: obs})
			code, body := get(t, newClient(), "http://"+addr+"/")
			if code != 503 || !strings.HasPrefix(body, "down: ") {
				t.Errorf("got %d %q, want a backend's 503 relayed", code, body)
			}
			var total int64
			for _, o := range hits {
				total += o.requests.Load()
			}
			if total != tc.tries {
				t.Errorf("the backends saw %d requests, want %d", total, tc.tries)
			}
			st := pol.Stats()
			if st.Total != uint64(tc.tries-1) || st.BudgetExhausted != tc.denied {
				t.Errorf("stats %+v, want %d retries and %d refusals", st, tc.tries-1, tc.denied)
			}
			var s *retrySeen
			select {
			case s = <-obs.done:
			case <-time.After(5 * time.Second):
				t.Fatal("the request was not reported done")
			}
			if s.Attempts != int(tc.tries) || s.Retries[retry.Status503] != uint64(tc.tries-1) || s.RetryDenied != (tc.denied > 0) {
				t.Errorf("session %+v", s)
			}
			if tc.budget != nil {
				if req, ret := tc.budget.Active(); req != 0 || ret != 0 {
					t.Errorf("budget holds %d requests and %d retries after the request", req, ret)
				}
			}
		})
	}
}

// retryObserver passes on a copy of each request's retry counts.
type retryObserver struct {
	balance
	done chan *retrySeen
}

type retrySeen struct {
	Attempts    int
	Retries     retry.Counts
	RetryDenied bool
}

func (o *retryObserver) RequestDone(s *Session, err error) {
	o.balance.RequestDone(s, err)
	o.done <- &retrySeen{s.Attempts, s.Retries, s.RetryDenied}
}

// TestRetryConnectByPolicy: with a policy, connect failures are retried
// as it says (here: not at all, connect not being named), whatever
// MaxRetries says.
func TestRetryConnectByPolicy(t *testing.T) {
	dead := testenv.RefusedAddr(t)
	live := startOrigin(t, hello("live"))
	for _, tc := range []struct {
		name string
		on   retry.Conditions
		want int
	}{{"connect named", retry.Of(retry.Connect), 200}, {"connect not named", retry.Of(retry.Status503), 502}} {
		t.Run(tc.name, func(t *testing.T) {
			pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, dead, live.addr)
			pol := &retry.Policy{On: tc.on, Attempts: 2}
			addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool, Template: Peer{Retry: pol}}, MaxRetries: 5})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/", strings.NewReader("x"))
			resp, err := newClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("got %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

// TestRetryFromHTTP2Client: a small PUT from an HTTP/2 client is retried
// with the same bytes, over either upstream protocol, and a POST is not:
// the HTTP/2 downstream's body is kept and replayed as HTTP/1.1's is.
func TestRetryFromHTTP2Client(t *testing.T) {
	body := strings.Repeat("abcdefgh", 512)
	h2c := &http.Client{Transport: &http.Transport{Protocols: new(http.Protocols)}, Timeout: 10 * time.Second}
	h2c.Transport.(*http.Transport).Protocols.SetUnencryptedHTTP2(true)
	for _, up := range []struct {
		name      string
		alpn      ALPN
		configure []func(*http.Server)
	}{{"h1", ALPNH1, nil}, {"h2c", ALPNH2C, []func(*http.Server){h2cServer}}} {
		for _, tc := range []struct {
			method string
			want   int
		}{{"PUT", 200}, {"POST", 503}} {
			t.Run(up.name+"/"+tc.method, func(t *testing.T) {
				bad := startOriginTLS(t, failing("bad"), nil, up.configure...)
				good := startOriginTLS(t, bodyEcho, nil, up.configure...)
				pol := &retry.Policy{On: retry.Of(retry.Status503), Attempts: 2}
				addr := retryProxy(t, pol, up.alpn, bad.addr, good.addr)
				req, _ := http.NewRequest(tc.method, "http://"+addr+"/", strings.NewReader(body))
				resp, err := h2c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.ProtoMajor != 2 {
					t.Fatalf("the client spoke %s", resp.Proto)
				}
				if resp.StatusCode != tc.want {
					t.Fatalf("got %d %q, want %d", resp.StatusCode, got, tc.want)
				}
				if want := fmt.Sprintf("PUT %d %x", len(body), sumOf([]byte(body))); tc.want == 200 && string(got) != want {
					t.Errorf("the second backend got %q, want %q", got, want)
				}
				wantGood := int64(0)
				if tc.want == 200 {
					wantGood = 1
				}
				if bad.requests.Load() != 1 || good.requests.Load() != wantGood {
					t.Errorf("backends saw %d and %d requests", bad.requests.Load(), good.requests.Load())
				}
			})
		}
	}
}

// TestRetryAfterAnEarlyAnswer: a backend that answers 503 without
// reading the request body (the client still sending it) has the request
// retried with the whole body: what was kept, then the rest as the client
// sends it.
func TestRetryAfterAnEarlyAnswer(t *testing.T) {
	for _, up := range []struct {
		name      string
		alpn      ALPN
		configure []func(*http.Server)
	}{{"h1", ALPNH1, nil}, {"h2c", ALPNH2C, []func(*http.Server){h2cServer}}} {
		t.Run(up.name, func(t *testing.T) {
			answered := make(chan struct{})
			early := func(w http.ResponseWriter, r *http.Request) {
				// Else net/http's HTTP/1.1 server reads the whole
				// body before it answers.
				http.NewResponseController(w).EnableFullDuplex()
				w.WriteHeader(503)
				w.(http.Flusher).Flush()
				close(answered)
				// Answered without reading: now take the rest, or its
				// end, before returning. A full-duplex handler that
				// leaves its body unread has net/http read it to its
				// end after the handler, which panics with "invalid
				// concurrent Body.Read call" when it waits for the next
				// request (golang/go#68560).
				io.Copy(io.Discard, r.Body)
			}
			bad := startOriginTLS(t, early, nil, up.configure...)
			good := startOriginTLS(t, bodyEcho, nil, up.configure...)
			pol := &retry.Policy{On: retry.Of(retry.Status503), Attempts: 2}
			addr := retryProxy(t, pol, up.alpn, bad.addr, good.addr)
			body := bytes.Repeat([]byte("0123456789abcdef"), 2048) // 32 KiB
			pr, pw := io.Pipe()
			go func() {
				// The first half at once, the rest once the first
				// backend has answered.
				pw.Write(body[:len(body)/2])
				<-answered
				pw.Write(body[len(body)/2:])
				pw.Close()
			}()
			req, _ := http.NewRequest("PUT", "http://"+addr+"/", pr)
			req.ContentLength = int64(len(body))
			resp, err := newClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := fmt.Sprintf("PUT %d %x", len(body), sumOf(body))
			if resp.StatusCode != 200 || string(got) != want {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, got, want)
			}
		})
	}
}

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testResolver is a DNS server on 127.0.0.1 answering one A record,
// whose answers the test can hold back or stop altogether.
type testResolver struct {
	addr string
	name string // fqdn, lower case
	ip   string

	mu      sync.Mutex
	mode    string        // "answer", "hold" (answer once released) or "silent"
	release chan struct{} // closed to let held answers go
	queries int
	asked   chan struct{} // closed by the first query in the current mode
}

func startTestResolver(t *testing.T, name, ip string) *testResolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &testResolver{addr: pc.LocalAddr().String(), name: name, ip: ip, mode: "answer",
		release: make(chan struct{}), asked: make(chan struct{})}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: r, NotifyStartedFunc: func() { close(started) }}
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("DNS server: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("DNS server did not start")
	}
	t.Cleanup(func() {
		r.setMode("answer")
		srv.Shutdown()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("DNS server did not stop")
		}
	})
	return r
}

// setMode switches to mode; leaving "hold" releases the held answers.
func (r *testResolver) setMode(mode string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mode == "hold" {
		close(r.release)
		r.release = make(chan struct{})
	}
	r.mode = mode
	r.asked = make(chan struct{})
	r.queries = 0
}

// waitAsked waits for a query in the current mode.
func (r *testResolver) waitAsked(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	asked := r.asked
	r.mu.Unlock()
	select {
	case <-asked:
	case <-time.After(20 * time.Second):
		t.Fatal("nobody asked the resolver within 20s")
	}
}

func (r *testResolver) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	r.mu.Lock()
	mode, release := r.mode, r.release
	r.queries++
	if r.queries == 1 {
		close(r.asked)
	}
	r.mu.Unlock()
	switch mode {
	case "silent":
		return
	case "hold":
		select {
		case <-release:
		case <-time.After(30 * time.Second):
			return
		}
	}
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	if len(req.Question) == 1 {
		q := req.Question[0]
		switch {
		case strings.ToLower(q.Name) != r.name:
			resp.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			if rr, err := dns.NewRR(fmt.Sprintf("%s 0 IN A %s", q.Name, r.ip)); err == nil {
				resp.Answer = append(resp.Answer, rr)
			}
		}
	}
	w.WriteMsg(resp)
}

// ask sends one request to addr and returns the status line's code and
// the body.
func ask(addr string) (int, string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// The new weir of an upgrade reports ready once every service serves; a
// DNS-discovered service serves once its first discovery is done. While
// the new weir's resolver holds its answer, the old weir goes on serving
// that service with the backends it discovered, so its clients wait for
// nothing; once the answer comes, the hand-over completes. And a resolver
// that never answers holds the hand-over only until the discovery's
// timeout (5 s), not for good: the upgrade still completes, well within
// grace_period_seconds.
func TestUpgradeWaitsForEachServicesFirstDiscovery(t *testing.T) {
	backend := backendHTTP(t, "discovered")
	_, port, _ := net.SplitHostPort(backend)
	for _, tc := range []struct {
		name, mode string
		wantBody   string // of the DNS service once the new weir serves it
	}{
		{"resolver holds its answer", "hold", "discovered"},
		{"resolver never answers", "silent", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resolver := startTestResolver(t, "app.weir.test.", "127.0.0.1")
			lab := newUpgradeLab(t)
			discAddr := freeAddr(t)
			lab.write(t, 2, fmt.Sprintf(`  - name: disc
    kind: http_proxy
    listen: ["%s"]
    upstream:
      discovery: {type: dns, names: ["app.weir.test.:%s"], server: "%s", network: ip4, refresh: 1h}
`, discAddr, port, resolver.addr))
			conf, err := os.ReadFile(lab.conf)
			if err != nil {
				t.Fatal(err)
			}
			// Room for the 5 s DNS timeout in the hand-over.
			conf = []byte(strings.Replace(string(conf), "grace_period_seconds: 5", "grace_period_seconds: 15", 1))
			if err := os.WriteFile(lab.conf, conf, 0o644); err != nil {
				t.Fatal(err)
			}
			logs := logFile(t)
			old := startWeir(t, logs, "-c", lab.conf)
			lab.waitPIDFile(t, old.cmd.Process.Pid)
			if code, body, err := ask(discAddr); err != nil || code != 200 || body != "discovered" {
				t.Fatalf("the DNS service before the upgrade: %d %q %v\n%s", code, body, err, logs)
			}

			resolver.setMode(tc.mode)
			next := startWeir(t, logs, "-u", "-c", lab.conf)
			old.signal(t, syscall.SIGQUIT)
			resolver.waitAsked(t) // the new weir waits for its discovery
			began := time.Now()

			// Meanwhile the old weir serves both services.
			waitServing(t, lab.addr)
			if code, body, err := ask(discAddr); err != nil || code != 200 || body != "discovered" {
				t.Fatalf("the DNS service while the new weir waits for its discovery: %d %q %v\n%s", code, body, err, logs)
			}
			select {
			case err := <-old.exited:
				t.Fatalf("the old weir exited (%v) before the new one discovered its backends\n%s", err, logs)
			default:
			}
			if tc.mode == "hold" {
				resolver.setMode("answer")
			}
			if err := old.waitExit(t, 20*time.Second); err != nil {
				t.Fatalf("the old weir exited with %v\n%s", err, logs)
			}
			t.Logf("hand-over done %v after the new weir asked its resolver", time.Since(began).Round(time.Millisecond))
			if strings.Contains(logs.String(), "upgrade failed") {
				t.Fatalf("the upgrade failed:\n%s", logs)
			}
			lab.waitPIDFile(t, next.cmd.Process.Pid)
			waitServing(t, lab.addr)
			code, body, err := ask(discAddr)
			switch {
			case err != nil:
				t.Fatalf("the DNS service after the upgrade: %v", err)
			case tc.wantBody != "" && (code != 200 || body != tc.wantBody):
				t.Fatalf("the DNS service after the upgrade: %d %q, want 200 %q", code, body, tc.wantBody)
			case tc.wantBody == "" && code != http.StatusServiceUnavailable:
				// No backend discovered yet: documented, as after a
				// fresh start with a dead resolver.
				t.Fatalf("the DNS service with no backend discovered: %d %q, want 503", code, body)
			}
			next.signal(t, syscall.SIGTERM)
			if err := next.waitExit(t, 20*time.Second); err != nil {
				t.Fatalf("the new weir exited with %v", err)
			}
		})
	}
}

// backendHTTP is an HTTP server on loopback answering body.
func backendHTTP(t *testing.T, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"golang.org/x/net/http2"
)

// clientAddr is the loopback address the tests' client binds to, so
// that the address each hop announces can be told from 127.0.0.1.
const clientAddr = "127.0.0.7"

// getFrom sends GET target with Host host to addr from a connection bound
// to clientAddr, with raw bytes (a PROXY header) written first when
// preface is set, and returns the response and its body; err when the
// connection ended without one.
func getFrom(t *testing.T, addr, host, target, preface string) (*http.Response, string, error) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientAddr)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, clientAddr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "%sGET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", preface, target, host); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body), err
}

// TestProxyProtocolThroughTheConfiguration: a listener that trusts the
// real HAProxy in front of it (send-proxy-v2) takes the client's address
// from HAProxy's header, for X-Forwarded-For, the access log and pools
// that announce it in turn (proxy_protocol: v1, v2) to the real NGINX; a
// header from an untrusted peer is refused.
func TestProxyProtocolThroughTheConfiguration(t *testing.T) {
	echo := startEcho(t, "echo")
	ports := freePorts(t, 4)
	weir, haproxy, nginx := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
	direct := fmt.Sprintf("127.0.0.1:%d", ports[3])
	accessLog := t.TempDir() + "/access.log"
	observedServer(t, fmt.Sprintf(`version: 1
upstreams:
  echo: {backends: [%q]}
  announced: {backends: [%q], proxy_protocol: v1}
  announced2: {backends: [%q], proxy_protocol: v2}
services:
  - name: edge
    kind: http_proxy
    listen:
      - addr: %q
        proxy_protocol: {trusted: [127.0.0.1/32]}
      - %q
    access_log: {path: %q, format: json}
    routes:
      - match: {path: {prefix: /nginx}}
        upstream: announced
      - match: {path: {prefix: /v2/nginx}}
        upstream: announced2
      - upstream: echo
`, echo.addr, nginx, nginx, weir, direct, accessLog))
	testenv.NGINX(t, fmt.Sprintf(`server {
    listen %s proxy_protocol;
    location / { return 200 "$proxy_protocol_addr"; }
  }`, nginx), nginx)
	testenv.HAProxy(t, fmt.Sprintf(`global
  maxconn 100
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend front
  bind %s
  default_backend weir
backend weir
  server weir %s send-proxy-v2
`, haproxy, weir), haproxy)

	t.Run("backend sees the client behind HAProxy", func(t *testing.T) {
		resp, body, err := getFrom(t, haproxy, "site.test", "/who", "")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("through HAProxy: %v %v %q", resp, err, body)
		}
		var e echoed
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Fatal(err)
		}
		if got := http.Header(e.Header).Get("X-Forwarded-For"); got != clientAddr {
			t.Errorf("backend saw X-Forwarded-For %q, want %s", got, clientAddr)
		}
	})
	t.Run("NGINX sees the client weir announces", func(t *testing.T) {
		// New connections each time: each announces its client; v1 and
		// v2 alike.
		for i, target := range []string{"/nginx", "/nginx", "/v2/nginx", "/v2/nginx"} {
			resp, body, err := getFrom(t, haproxy, "site.test", target, "")
			if err != nil || resp.StatusCode != 200 || body != clientAddr {
				t.Fatalf("request %d (%s) through HAProxy and weir to NGINX: %v %v, NGINX saw %q, want %s", i, target, resp, err, body, clientAddr)
			}
		}
	})
	t.Run("HTTP/2 streams of one client announced to NGINX", func(t *testing.T) {
		// Concurrent streams of one h2c connection from clientAddr, on the
		// listener without PROXY protocol: each upstream connection weir
		// opens for them announces that client.
		h2 := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientAddr)}}
			return d.DialContext(ctx, network, addr)
		}}
		c := &http.Client{Transport: h2, Timeout: 10 * time.Second}
		var wg sync.WaitGroup
		errs := make(chan string, 16)
		for i := range 16 {
			wg.Go(func() { // no t.Fatal off the test's goroutine
				resp, err := c.Get("http://" + direct + []string{"/nginx", "/v2/nginx"}[i%2])
				if err != nil {
					errs <- err.Error()
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(body) != clientAddr {
					errs <- fmt.Sprintf("HTTP/%d %d, NGINX saw %q (%v)", resp.ProtoMajor, resp.StatusCode, body, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("%s, want %s over HTTP/2", e, clientAddr)
		}
	})
	t.Run("untrusted peer's header refused", func(t *testing.T) {
		for _, header := range []string{
			"PROXY TCP4 192.0.2.1 127.0.0.1 1111 80\r\n",
			"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01\x7f\x00\x00\x01\x04\x57\x00\x50",
		} {
			before := echo.requests.Load()
			resp, body, err := getFrom(t, weir, "site.test", "/who", header)
			if err == nil && resp.StatusCode < 400 {
				t.Errorf("a header from untrusted %s was served: %d %q", clientAddr, resp.StatusCode, body)
			}
			if n := echo.requests.Load() - before; n != 0 {
				t.Errorf("the backend saw %d requests from a forged header", n)
			}
		}
	})
	t.Run("access log names the client behind HAProxy", func(t *testing.T) {
		// The five requests through HAProxy, which connects from
		// 127.0.0.1, the 16 straight from clientAddr, and the two refused ones, straight from clientAddr
		// (not the address their forged headers name).
		lines := waitLines(t, accessLog, 23)
		if len(lines) != 23 {
			t.Errorf("%d access log lines, want 23", len(lines))
		}
		for _, line := range lines {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("access log line %q: %v", line, err)
			}
			if ip, _ := rec["client_ip"].(string); ip != clientAddr {
				t.Errorf("access log client_ip %q, want %s: %s", ip, clientAddr, line)
			}
		}
	})
}

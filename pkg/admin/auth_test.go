package admin

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
)

// TestToken checks who needs the token: changes always, reads only on a
// listener other hosts can reach. A refused request changes nothing and
// logs a warning that never repeats the token presented.
func TestToken(t *testing.T) {
	const wrong = "not-the-token-but-close-0123456"
	auths := []struct {
		name   string
		header string // Authorization
		ok     bool
	}{
		{"none", "", false},
		{"wrong", "Bearer " + wrong, false},
		{"right", "Bearer " + testToken, true},
		{"right, scheme lower-case", "bearer " + testToken, true},
		{"right token, basic scheme", "Basic " + testToken, false},
		{"empty bearer", "Bearer ", false},
	}
	for _, loopback := range []bool{true, false} {
		for _, mutate := range []bool{false, true} {
			for _, auth := range auths {
				name := map[bool]string{true: "loopback", false: "remote"}[loopback] + "/" +
					map[bool]string{true: "change", false: "read"}[mutate] + "/" + auth.name
				t.Run(name, func(t *testing.T) {
					var log testenv.Buffer
					opts := options(&log)
					opts.Token = []byte(testToken)
					e := serve(t, opts, &log, loopback)
					method, target := "GET", "/status"
					if mutate {
						method, target = "POST", "/api/v1/services/web/backends/127.0.0.1:8081/drain"
					}
					resp, body := e.do(t, method, target, "", "Authorization", auth.header)
					wantOK := auth.ok || (loopback && !mutate)
					if !wantOK {
						checkRefused(t, e, resp, body, method, target, wrong)
						return
					}
					if resp.StatusCode != 200 {
						t.Fatalf("status %d, want 200: %s", resp.StatusCode, body)
					}
					if mutate && len(e.state.Calls()) != 1 {
						t.Errorf("calls %q, want the drain", e.state.Calls())
					}
				})
			}
		}
	}
}

// checkRefused checks a 401: the challenge, nothing changed, and a
// warning that says who and what but not the token.
func checkRefused(t *testing.T, e *endpoint, resp *http.Response, body, method, target, wrong string) {
	t.Helper()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401: %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate %q, want a Bearer challenge", got)
	}
	checkJSONAnswer(t, resp.StatusCode, body)
	if calls := e.state.Calls(); len(calls) != 0 {
		t.Errorf("a refused request changed the State: %q", calls)
	}
	log := e.log.String()
	for _, want := range []string{"level=WARN", "request refused", "remote=127.0.0.1:", "method=" + method, "path=" + target} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, wrong) || strings.Contains(log, testToken) {
		t.Errorf("the log shows a token:\n%s", log)
	}
}

// TestBrowserChecks checks the protections of a loopback endpoint
// against the web pages its operator visits: a page on another origin
// cannot change anything (CSRF), and a page that rebinds its own name
// to 127.0.0.1 cannot read anything (the Host check).
func TestBrowserChecks(t *testing.T) {
	const drain = "/api/v1/services/web/backends/127.0.0.1:8081/drain"
	tests := []struct {
		name           string
		token          bool // configure a token and present it
		loopback       bool
		method, target string
		headers        []string // with "{addr}" for the endpoint's address
		status         int
	}{
		{name: "Host is the address", loopback: true, method: "GET", target: "/status", status: 200},
		{name: "Host localhost", loopback: true, method: "GET", target: "/status", headers: []string{"Host", "localhost:9901"}, status: 200},
		{name: "Host LOCALHOST.", loopback: true, method: "GET", target: "/status", headers: []string{"Host", "LOCALHOST."}, status: 200},
		{name: "Host under .localhost", loopback: true, method: "GET", target: "/status", headers: []string{"Host", "weir.localhost:9901"}, status: 200},
		{name: "Host ::1", loopback: true, method: "GET", target: "/status", headers: []string{"Host", "[::1]:9901"}, status: 200},
		{name: "Host 127.1.2.3", loopback: true, method: "GET", target: "/status", headers: []string{"Host", "127.1.2.3"}, status: 200},
		{name: "rebound name", loopback: true, method: "GET", target: "/status", headers: []string{"Host", "attacker.example:9901"}, status: 403},
		{name: "rebound name on the page", loopback: true, method: "GET", target: "/", headers: []string{"Host", "attacker.example"}, status: 403},
		{name: "name ending in localhost", loopback: true, method: "GET", target: "/status", headers: []string{"Host", "evil-localhost:9901"}, status: 403},
		{name: "name starting with localhost", loopback: true, method: "GET", target: "/status", headers: []string{"Host", "localhost.attacker.example"}, status: 403},
		{name: "name of a loopback IP", loopback: true, method: "GET", target: "/status", headers: []string{"Host", "127.0.0.1.nip.io"}, status: 403},
		{name: "rebound name with the token", token: true, loopback: true, method: "GET", target: "/status", headers: []string{"Host", "attacker.example"}, status: 403},
		{name: "any name on a remote listener", token: true, method: "GET", target: "/status", headers: []string{"Host", "weir.example.net:9901"}, status: 200},

		{name: "change without browser headers", loopback: true, method: "POST", target: drain, status: 200},
		{name: "change from the page's origin", loopback: true, method: "POST", target: drain, headers: []string{"Origin", "http://{addr}"}, status: 200},
		{name: "change from another origin", loopback: true, method: "POST", target: drain, headers: []string{"Origin", "http://attacker.example"}, status: 403},
		{name: "change from another port", loopback: true, method: "POST", target: drain, headers: []string{"Origin", "http://127.0.0.1:1"}, status: 403},
		{name: "change cross-site", loopback: true, method: "POST", target: drain, headers: []string{"Sec-Fetch-Site", "cross-site"}, status: 403},
		{name: "change same-site", loopback: true, method: "DELETE", target: "/api/v1/services/web/backends/127.0.0.1:8081", headers: []string{"Sec-Fetch-Site", "same-site"}, status: 403},
		{name: "change same-origin", loopback: true, method: "POST", target: drain, headers: []string{"Sec-Fetch-Site", "same-origin"}, status: 200},
		{name: "change typed in by the user", loopback: true, method: "PUT", target: "/api/v1/services/web/backends/127.0.0.1:9000", headers: []string{"Sec-Fetch-Site", "none"}, status: 200},
		{name: "change cross-site with the token", token: true, loopback: true, method: "POST", target: drain, headers: []string{"Sec-Fetch-Site", "cross-site"}, status: 403},
		{name: "read cross-site", loopback: true, method: "GET", target: "/status", headers: []string{"Sec-Fetch-Site", "cross-site", "Origin", "http://attacker.example"}, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log testenv.Buffer
			opts := options(&log)
			headers := tt.headers
			if tt.token {
				opts.Token = []byte(testToken)
				headers = append(headers, "Authorization", "Bearer "+testToken)
			}
			e := serve(t, opts, &log, tt.loopback)
			for i := range headers {
				headers[i] = strings.ReplaceAll(headers[i], "{addr}", e.addr)
			}
			resp, body := e.do(t, tt.method, tt.target, "", headers...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.status == 403 {
				checkJSONAnswer(t, resp.StatusCode, body)
				if calls := e.state.Calls(); len(calls) != 0 {
					t.Errorf("a refused request changed the State: %q", calls)
				}
				if !strings.Contains(log.String(), "request refused") {
					t.Errorf("no warning:\n%s", log.String())
				}
			}
		})
	}
}

// TestUnixSocket serves on a Unix socket, which no browser can reach:
// any Host passes, and the log names the peer by uid and pid.
func TestUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "weir-admin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "admin.sock") // short: sun_path has 108 bytes
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var log testenv.Buffer
	opts := options(&log)
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	run(t, h, l, true)
	c := &http.Client{Transport: &http.Transport{
		Proxy: nil, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}, Timeout: 10 * time.Second}
	for _, tt := range []struct{ method, url string }{
		{"GET", "http://localhost/status"},
		{"GET", "http://weir.example/status"},
		{"POST", "http://weir.example/api/v1/services/web/backends/127.0.0.1:8081/drain"},
	} {
		req, err := http.NewRequest(tt.method, tt.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s %s: status %d: %s", tt.method, tt.url, resp.StatusCode, body)
		}
	}
	if want := "remote=\"unix uid="; !strings.Contains(log.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, log.String())
	}
}

// TestServeHTTPDirectly checks the Handler mounted in another server:
// requests count as loopback only when their connection's local address
// is, and a remote one without a token is refused.
func TestServeHTTPDirectly(t *testing.T) {
	h, err := New(Options{State: newFake(), Logger: options(io.Discard).Logger})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		local  net.Addr
		status int
	}{
		{"loopback", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9901}, 200},
		{"unix", &net.UnixAddr{Name: "/run/weir/admin.sock", Net: "unix"}, 200},
		{"remote", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9901}, 403},
		{"unknown", nil, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", "http://localhost/status", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.local != nil {
				req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, tt.local))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
		})
	}
}

// TestLoopbackHost checks the Host rule on its own.
func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"":                   true,
		"localhost":          true,
		"localhost:80":       true,
		"a.b.localhost:1":    true,
		"127.0.0.1":          true,
		"127.255.0.9:1":      true,
		"[::1]":              true,
		"[::1]:9901":         true,
		"[::ffff:127.0.0.1]": true,
		"::1":                true,
		"10.0.0.1":           false,
		"[::2]:1":            false,
		"localhost.example":  false,
		"example.com":        false,
		"0.0.0.0":            false,
	} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %t, want %t", host, got, want)
		}
	}
}

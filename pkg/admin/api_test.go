package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
)

// TestRoutes sends every route, right and wrong, to an endpoint on
// loopback without a token, and checks the status, the changes the
// State was asked for, and that API errors are JSON.
func TestRoutes(t *testing.T) {
	const be = "/api/v1/services/web/backends/127.0.0.1:8081"
	tests := []struct {
		name, method, target, body string
		status                     int
		allow                      string   // the Allow header of a 405
		calls                      []string // changes asked of the State
		contentType                string   // prefix; "" means application/json
	}{
		{name: "page", method: "GET", target: "/", status: 200, contentType: "text/html"},
		{name: "page HEAD", method: "HEAD", target: "/", status: 200, contentType: "text/html"},
		{name: "page POST", method: "POST", target: "/", status: 405, allow: "GET, HEAD", contentType: "text/plain"},
		{name: "status", method: "GET", target: "/status", status: 200},
		{name: "api status", method: "GET", target: "/api/v1/status", status: 200},
		{name: "status POST", method: "POST", target: "/status", status: 405, allow: "GET, HEAD", contentType: "text/plain"},
		{name: "api status POST", method: "POST", target: "/api/v1/status", status: 405, allow: "GET, HEAD"},
		{name: "no metrics without a gatherer", method: "GET", target: "/metrics", status: 404, contentType: "text/plain"},
		{name: "unknown page", method: "GET", target: "/nope", status: 404, contentType: "text/plain"},
		{name: "unknown API route", method: "GET", target: "/api/v1/nope", status: 404},

		{name: "drain", method: "POST", target: be + "/drain", status: 200, calls: []string{"SetEnabled(web, 127.0.0.1:8081, false)"}},
		{name: "enable", method: "POST", target: be + "/enable", status: 200, calls: []string{"SetEnabled(web, 127.0.0.1:8081, true)"}},
		{name: "drain GET", method: "GET", target: be + "/drain", status: 405, allow: "POST"},
		{name: "enable PUT", method: "PUT", target: be + "/enable", status: 405, allow: "POST"},
		{name: "drain unknown service", method: "POST", target: "/api/v1/services/nope/backends/127.0.0.1:8081/drain", status: 404,
			calls: []string{"SetEnabled(nope, 127.0.0.1:8081, false)"}},
		{name: "drain unknown backend", method: "POST", target: "/api/v1/services/web/backends/127.0.0.1:1/drain", status: 404,
			calls: []string{"SetEnabled(web, 127.0.0.1:1, false)"}},
		{name: "drain fails", method: "POST", target: "/api/v1/services/broken/backends/127.0.0.1:9/drain", status: 500,
			calls: []string{"SetEnabled(broken, 127.0.0.1:9, false)"}},
		{name: "drain IPv6 percent-encoded", method: "POST", target: "/api/v1/services/web/backends/%5B%3A%3A1%5D%3A8082/drain", status: 200,
			calls: []string{"SetEnabled(web, [::1]:8082, false)"}},
		{name: "drain IPv6 brackets", method: "POST", target: "/api/v1/services/web/backends/[::1]:8082/drain", status: 200,
			calls: []string{"SetEnabled(web, [::1]:8082, false)"}},
		{name: "enable unix backend", method: "POST", target: "/api/v1/services/web/backends/unix:%2Frun%2Fapp.sock/enable", status: 200,
			calls: []string{"SetEnabled(web, unix:/run/app.sock, true)"}},
		{name: "drain service with a space", method: "POST", target: "/api/v1/services/my%20web/backends/127.0.0.1:8081/drain", status: 404,
			calls: []string{"SetEnabled(my web, 127.0.0.1:8081, false)"}},

		{name: "weight in body", method: "POST", target: be + "/weight", body: `{"weight": 5}`, status: 200, calls: []string{"SetWeight(web, 127.0.0.1:8081, 5)"}},
		{name: "weight in query", method: "POST", target: be + "/weight?value=7", status: 200, calls: []string{"SetWeight(web, 127.0.0.1:8081, 7)"}},
		{name: "weight out of range", method: "POST", target: be + "/weight", body: `{"weight": 0}`, status: 400, calls: []string{"SetWeight(web, 127.0.0.1:8081, 0)"}},
		{name: "weight missing", method: "POST", target: be + "/weight", status: 400},
		{name: "weight body without weight", method: "POST", target: be + "/weight", body: `{}`, status: 400},
		{name: "weight not a number", method: "POST", target: be + "/weight", body: `{"weight": "5"}`, status: 400},
		{name: "weight fraction", method: "POST", target: be + "/weight", body: `{"weight": 1.5}`, status: 400},
		{name: "weight unknown field", method: "POST", target: be + "/weight", body: `{"weight": 5, "wieght": 6}`, status: 400},
		{name: "weight two values", method: "POST", target: be + "/weight", body: `{"weight": 5} {"weight": 6}`, status: 400},
		{name: "weight malformed", method: "POST", target: be + "/weight", body: `{"weight": 5`, status: 400},
		{name: "weight query not a number", method: "POST", target: be + "/weight?value=five", status: 400},
		{name: "weight query twice", method: "POST", target: be + "/weight?value=1&value=2", status: 400},
		{name: "weight in query and body", method: "POST", target: be + "/weight?value=3", body: `{"weight": 3}`, status: 400},
		{name: "weight body too large", method: "POST", target: be + "/weight", body: `{"weight": 5, "pad": "` + strings.Repeat("x", maxBodyBytes) + `"}`, status: 413},
		{name: "weight GET", method: "GET", target: be + "/weight", status: 405, allow: "POST"},

		{name: "add", method: "PUT", target: "/api/v1/services/web/backends/127.0.0.1:9000", status: 200, calls: []string{"AddBackend(web, 127.0.0.1:9000, 1)"}},
		{name: "add with weight", method: "PUT", target: "/api/v1/services/web/backends/127.0.0.1:9000", body: `{"weight": 3}`, status: 200,
			calls: []string{"AddBackend(web, 127.0.0.1:9000, 3)"}},
		{name: "add with weight in query", method: "PUT", target: "/api/v1/services/web/backends/127.0.0.1:9000?value=4", status: 200,
			calls: []string{"AddBackend(web, 127.0.0.1:9000, 4)"}},
		{name: "add duplicate", method: "PUT", target: be, status: 400, calls: []string{"AddBackend(web, 127.0.0.1:8081, 1)"}},
		{name: "add to discovered service", method: "PUT", target: "/api/v1/services/dns/backends/192.0.2.11:80", status: 409,
			calls: []string{"AddBackend(dns, 192.0.2.11:80, 1)"}},
		{name: "add malformed body", method: "PUT", target: "/api/v1/services/web/backends/127.0.0.1:9000", body: `weight=3`, status: 400},
		{name: "remove", method: "DELETE", target: be, status: 200, calls: []string{"RemoveBackend(web, 127.0.0.1:8081)"}},
		{name: "remove unknown", method: "DELETE", target: "/api/v1/services/web/backends/127.0.0.1:1", status: 404,
			calls: []string{"RemoveBackend(web, 127.0.0.1:1)"}},
		{name: "remove from discovered service", method: "DELETE", target: "/api/v1/services/dns/backends/192.0.2.10:80", status: 409,
			calls: []string{"RemoveBackend(dns, 192.0.2.10:80)"}},
		{name: "backend GET", method: "GET", target: be, status: 405, allow: "PUT, DELETE"},
		{name: "backend PATCH", method: "PATCH", target: be, status: 405, allow: "PUT, DELETE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log testenv.Buffer
			e := serve(t, options(&log), &log, true)
			resp, body := e.do(t, tt.method, tt.target, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s: status %d, want %d; body %s", tt.method, tt.target, resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow: %q, want %q", got, tt.allow)
			}
			if got := e.state.Calls(); !slices.Equal(got, tt.calls) {
				t.Errorf("State calls %q, want %q", got, tt.calls)
			}
			wantType := cmpOr(tt.contentType, "application/json")
			if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, wantType) {
				t.Errorf("Content-Type %q, want %s", got, wantType)
			}
			if wantType == "application/json" && tt.method != "HEAD" {
				checkJSONAnswer(t, resp.StatusCode, body)
			}
		})
	}
}

// cmpOr returns a, or b when a is empty.
func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkJSONAnswer checks that an error answer is {"error": "..."} and a
// change's answer says ok.
func checkJSONAnswer(t *testing.T, status int, body string) {
	t.Helper()
	var answer map[string]any
	if err := json.Unmarshal([]byte(body), &answer); err != nil {
		t.Fatalf("the answer is not JSON: %v\n%s", err, body)
	}
	msg, _ := answer["error"].(string)
	if status >= 400 && msg == "" {
		t.Errorf("error answer without an error: %s", body)
	}
	if status < 400 && msg != "" {
		t.Errorf("successful answer with an error: %s", body)
	}
}

// TestChangeAnswer checks what a change answers and logs: the backend as
// it is now, and an audit line saying who changed what.
func TestChangeAnswer(t *testing.T) {
	var log testenv.Buffer
	e := serve(t, options(&log), &log, true)
	resp, body := e.do(t, "POST", "/api/v1/services/web/backends/%5B::1%5D:8082/weight", `{"weight": 9}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var got changeResult
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if !got.OK || got.Action != "weight" || got.Service != "web" || got.Backend != "[::1]:8082" {
		t.Errorf("answer %+v", got)
	}
	if got.Current == nil || got.Current.Weight != 9 || got.Current.Addr != "[::1]:8082" {
		t.Errorf("current backend %+v, want [::1]:8082 with weight 9", got.Current)
	}
	for _, want := range []string{"level=INFO", "admin: change applied", "action=weight", "service=web", "backend=[::1]:8082", "weight=9", "remote=127.0.0.1:"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}

	resp, body = e.do(t, "DELETE", "/api/v1/services/web/backends/127.0.0.1:8081", "")
	if resp.StatusCode != 200 || strings.Contains(body, "current") {
		t.Errorf("remove: status %d, body %s; want 200 without a current backend", resp.StatusCode, body)
	}
	resp, body = e.do(t, "POST", "/api/v1/services/broken/backends/127.0.0.1:9/drain", "")
	if resp.StatusCode != 500 || !strings.Contains(body, "drain backend 127.0.0.1:9 of service broken: bpf map update") {
		t.Errorf("failed change: status %d, body %s", resp.StatusCode, body)
	}
	if !strings.Contains(log.String(), "level=ERROR msg=\"admin: change failed\"") {
		t.Errorf("a failed change is not logged as an error:\n%s", log.String())
	}
}

// TestStatusJSON checks that /status carries the State's Status intact,
// and how the Handler tidies what JSON cannot carry or reads badly.
func TestStatusJSON(t *testing.T) {
	var log testenv.Buffer
	e := serve(t, options(&log), &log, true)
	for _, target := range []string{"/status", "/api/v1/status"} {
		resp, body := e.do(t, "GET", target, "")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", target, resp.StatusCode)
		}
		var got Status
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		if want := e.state.Status(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s round trip:\n got %+v\nwant %+v", target, got, want)
		}
		if !strings.Contains(body, "\n  \"version\": \"v1.2.3\"") {
			t.Errorf("%s is not indented JSON:\n%s", target, body)
		}
	}

	// An empty State: the version from Options, [] rather than null, and
	// rates JSON can encode.
	e.state.mu.Lock()
	e.state.status = Status{Now: testNow, Services: []ServiceStatus{{Name: "idle", RequestRate: math.NaN(), ErrorRate: math.Inf(1)}}}
	e.state.mu.Unlock()
	resp, body := e.do(t, "GET", "/status", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, want := range []string{`"version": "test"`, `"listeners": []`, `"backends": []`, `"request_rate": 0`, `"error_rate": 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("/status lacks %s:\n%s", want, body)
		}
	}
	e.state.mu.Lock()
	e.state.status = Status{}
	e.state.mu.Unlock()
	if _, body := e.do(t, "GET", "/status", ""); !strings.Contains(body, `"services": []`) {
		t.Errorf("no services is not []:\n%s", body)
	}
}

// TestFindBackendNormalisedAddress finds a backend by an address the
// State has written in another form.
func TestFindBackendNormalisedAddress(t *testing.T) {
	h, err := New(Options{State: newFake()})
	if err != nil {
		t.Fatal(err)
	}
	if b := h.findBackend("web", "[0:0::1]:8082"); b == nil || b.Addr != "[::1]:8082" {
		t.Errorf("findBackend([0:0::1]:8082) = %+v, want [::1]:8082", b)
	}
	if b := h.findBackend("web", "127.0.0.1:1"); b != nil {
		t.Errorf("findBackend(unknown) = %+v", b)
	}
}

// TestLastCheckOmitted checks that a backend never checked has no
// last_check in JSON rather than year 1.
func TestLastCheckOmitted(t *testing.T) {
	data, err := json.Marshal(BackendStatus{Addr: "127.0.0.1:1", LastCheck: time.Time{}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "last_check") {
		t.Errorf("never checked backend: %s", data)
	}
}

// TestNew checks the Options New refuses, and that a token file's
// trailing newline is no part of the token.
func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"no state", Options{}, "Options.State is nil"},
		{"empty token", Options{State: newFake(), Token: []byte(" \n")}, "token is empty"},
		{"token with a control byte", Options{State: newFake(), Token: []byte("abc\x00def")}, "printable ASCII"},
		{"token with a space", Options{State: newFake(), Token: []byte("abc def")}, "printable ASCII"},
		{"no token", Options{State: newFake()}, ""},
		{"token with a newline", Options{State: newFake(), Token: []byte(testToken + "\n")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("New: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("New: %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}

	var log testenv.Buffer
	opts := options(&log)
	opts.Token = []byte(testToken + "\n")
	e := serve(t, opts, &log, true)
	if resp, body := e.do(t, "POST", "/api/v1/services/web/backends/127.0.0.1:8081/drain", "", "Authorization", "Bearer "+testToken); resp.StatusCode != 200 {
		t.Errorf("token read from a file with a newline: status %d: %s", resp.StatusCode, body)
	}
}

// TestHTTPStatus maps State errors, wrapped as a State wraps them.
func TestHTTPStatus(t *testing.T) {
	for err, want := range map[error]int{
		ErrUnknownService: http.StatusNotFound,
		ErrUnknownBackend: http.StatusNotFound,
		ErrBadRequest:     http.StatusBadRequest,
		ErrNotSupported:   http.StatusConflict,
		badRequest("x"):   http.StatusBadRequest,
		fmt.Errorf("backend 127.0.0.1:1: %w", ErrUnknownBackend): http.StatusNotFound,
		errors.New("netlink: operation not permitted"):           http.StatusInternalServerError,
	} {
		if got := httpStatus(err); got != want {
			t.Errorf("httpStatus(%v) = %d, want %d", err, got, want)
		}
	}
}

package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/l7"
	"gopkg.in/yaml.v3"
)

// minimal is a valid configuration with one service and every default.
const minimal = `version: 1
services:
  - name: a
    kind: respond
    listen: ["127.0.0.1:8001"]
`

func TestParseDefaultsThreadsToNumCPU(t *testing.T) {
	cfg, err := Parse("weir.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Threads != runtime.NumCPU() {
		t.Errorf("Threads = %d, want runtime.NumCPU() = %d", cfg.Threads, runtime.NumCPU())
	}
}

func TestParseResolvesPathsAgainstTheFilesDirectory(t *testing.T) {
	cfg, err := Parse("conf/weir.yaml", []byte("version: 1\npid_file: run/weir.pid\nerror_log: /var/log/weir.log\n"+minimal[len("version: 1\n"):]))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("conf", "run", "weir.pid"); cfg.PIDFile != want {
		t.Errorf("PIDFile = %q, want %q", cfg.PIDFile, want)
	}
	if cfg.ErrorLog != "/var/log/weir.log" {
		t.Errorf("ErrorLog = %q, want the absolute path unchanged", cfg.ErrorLog)
	}
}

// TestLoadMakesPathsAbsolute loads a file by a relative path and checks
// that the certificate paths in the result no longer depend on the
// working directory, which a daemon changes.
func TestLoadMakesPathsAbsolute(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "conf")
	if err := os.MkdirAll(filepath.Join(conf, "tls"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"server.crt", "server.key"} {
		data, err := os.ReadFile(filepath.Join("testdata", "tls", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(conf, "tls", name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	yml := `version: 1
services:
  - name: a
    kind: respond
    listen:
      - addr: "127.0.0.1:8443"
        tls: {certs: [{cert: tls/server.crt, key: tls/server.key}]}
`
	if err := os.WriteFile(filepath.Join(conf, "weir.yaml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	cfg, err := Load(filepath.Join("conf", "weir.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cert := cfg.Services[0].Listeners[0].TLS.Certs[0]
	if want := filepath.Join(conf, "tls", "server.crt"); cert.CertFile != want {
		t.Errorf("CertFile = %q, want %q", cert.CertFile, want)
	}
	if want := filepath.Join(conf, "tls", "server.key"); cert.KeyFile != want {
		t.Errorf("KeyFile = %q, want %q", cert.KeyFile, want)
	}
	if want := "conf/weir.yaml:7:24"; cert.Pos.String() != want {
		t.Errorf("cert position = %s, want %s (the path as given)", cert.Pos, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file: got %v, want an error wrapping fs.ErrNotExist", err)
	}
	var errs *Errors
	if errors.As(err, &errs) {
		t.Errorf("a missing file is not a configuration problem, got *Errors %v", errs)
	}
}

func TestErrorFormats(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "w.yaml", Line: 3, Col: 5, Msg: "bad"}, "w.yaml:3:5: bad"},
		{Error{File: "w.yaml", Line: 3, Msg: "syntax"}, "w.yaml:3: syntax"},
		{Error{File: "w.yaml", Msg: "no position"}, "w.yaml: no position"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	errs := &Errors{tests[0].err, tests[1].err}
	if got, want := errs.Error(), "w.yaml:3:5: bad\nw.yaml:3: syntax"; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
	var one Error
	if !errors.As(error(errs), &one) || one != tests[0].err {
		t.Errorf("errors.As(*Errors, *Error) = %v, want the first Error", one)
	}
}

// TestParseCollectsEveryError checks that problems in different parts of
// a file are all reported, in file order.
func TestParseCollectsEveryError(t *testing.T) {
	yml := `version: 1
threads: 0
services:
  - name: a
    kind: respond
    listen: ["127.0.0.1:8001"]
    status: 999
  - name: a
    kind: respond
    listen: ["127.0.0.1:8001"]
`
	_, err := Parse("w.yaml", []byte(yml))
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want *Errors, got %v", err)
	}
	var lines []int
	for _, e := range *errs {
		lines = append(lines, e.Line)
	}
	if want := []int{2, 7, 8, 10}; fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Errorf("errors on lines %v, want %v:\n%v", lines, want, err)
	}
}

// TestMergeExpansionIsBounded feeds a "billion laughs" of merge keys:
// ten levels each merging the previous one ten times. Unbounded, the walk
// would visit 10^10 mappings.
func TestMergeExpansionIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nx-l0: &l0 {connect: 1s}\n")
	for i := 1; i <= 10; i++ {
		prev := strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10)
		fmt.Fprintf(&b, "x-l%d: &l%d {<<: [%s]}\n", i, i, strings.TrimSuffix(prev, ", "))
	}
	b.WriteString(`services:
  - name: a
    kind: http_proxy
    listen: ["127.0.0.1:8001"]
    upstream:
      backends: ["127.0.0.1:9001"]
      timeouts: {<<: *l10}
`)
	_, err := Parse("w.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "merges") {
		t.Fatalf("want the merge limit error, got %v", err)
	}
}

// TestExpect checks that expect is parsed once, into the lb.StatusSet
// the health check uses, with lb.ParseStatusSet's grammar: the one that
// accepts classes such as "2xx".
func TestExpect(t *testing.T) {
	tests := []struct {
		expect  string
		ok      bool
		in, out int
	}{
		{`"200"`, true, 200, 201},
		{`200`, true, 200, 201},
		{`"200-299"`, true, 250, 300},
		{`"200-299,304"`, true, 304, 305},
		{`"200-299, 304 ,404-404"`, true, 404, 403},
		{`"2xx"`, true, 299, 300},
		{`"2xx,3xx"`, true, 399, 400},
		{`"100-599"`, true, 599, 600},
		{`""`, false, 0, 0},
		{`"200,"`, false, 0, 0},
		{`"99"`, false, 0, 0},
		{`"600"`, false, 0, 0},
		{`"6xx"`, false, 0, 0},
		{`"299-200"`, false, 0, 0},
		{`"200-"`, false, 0, 0},
		{`"-200"`, false, 0, 0},
		{`"200-300-400"`, false, 0, 0},
		{`"+200"`, false, 0, 0},
	}
	for _, tt := range tests {
		conf := `version: 1
services:
  - name: a
    kind: http_proxy
    listen: ["127.0.0.1:8001"]
    upstream:
      backends: ["127.0.0.1:9001"]
      health_check: {type: http, expect: ` + tt.expect + `}
`
		cfg, err := Parse("w.yaml", []byte(conf))
		if (err == nil) != tt.ok {
			t.Errorf("expect %s: err = %v, want ok=%v", tt.expect, err, tt.ok)
			continue
		}
		if err != nil {
			continue
		}
		set := cfg.Services[0].Upstream.HealthCheck.HTTP.Expect
		if !set.Contains(tt.in) || set.Contains(tt.out) {
			t.Errorf("expect %s: set %s, want it to hold %d and not %d", tt.expect, set, tt.in, tt.out)
		}
	}
}

func TestParseHashKey(t *testing.T) {
	tests := []struct {
		in   string
		want l7.HashKey
		ok   bool
	}{
		{"client_ip", l7.HashKey{Kind: l7.KeyClientIP}, true},
		{"uri", l7.HashKey{Kind: l7.KeyURI}, true},
		{"header:x-user-id", l7.HashKey{Kind: l7.KeyHeader, Name: "X-User-Id"}, true},
		{"cookie:session_id", l7.HashKey{Kind: l7.KeyCookie, Name: "session_id"}, true},
		{"query:user", l7.HashKey{Kind: l7.KeyQuery, Name: "user"}, true},
		{"header:", l7.HashKey{}, false},
		{"header:a b", l7.HashKey{}, false},
		{"cookie:a;b", l7.HashKey{}, false},
		{"query:a=b", l7.HashKey{}, false},
		{"client_ip:x", l7.HashKey{}, false},
		{"ip", l7.HashKey{}, false},
		{"", l7.HashKey{}, false},
	}
	for _, tt := range tests {
		got, err := parseHashKey(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseHashKey(%q) = %+v, %v; want %+v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err == nil && formatHashKey(got) != strings.Replace(tt.in, "x-user-id", "X-User-Id", 1) {
			t.Errorf("formatHashKey = %q, want it to round-trip %q", formatHashKey(got), tt.in)
		}
	}
}

func TestListenAddr(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"127.0.0.1:80", "127.0.0.1:80"},
		{"0.0.0.0:443", "0.0.0.0:443"},
		{"[::]:443", "[::]:443"},
		{"[0:0::1]:80", "[::1]:80"},
		{"[fe80::1%eth0]:80", "[fe80::1%eth0]:80"},
		{"localhost:80", ""},
		{":80", ""},
		{"127.0.0.1", ""},
		{"127.0.0.1:0", ""},
		{"127.0.0.1:65536", ""},
		{"127.0.0.1:http", ""},
	}
	for _, tt := range tests {
		got, err := listenAddr(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("listenAddr(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestVIPAddr(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"192.0.2.10:80", "192.0.2.10:80"},
		{"[2001:DB8::10]:53", "[2001:db8::10]:53"},
		{"0.0.0.0:80", ""},
		{"[::]:80", ""},
		{"[fe80::1%eth0]:80", ""},
		{"192.0.2.10:0", ""},
		{"vip.example.com:80", ""},
		{"192.0.2.10", ""},
	}
	for _, tt := range tests {
		got, err := vipAddr(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("vipAddr(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestDNSName(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"app.example.com:80", "app.example.com:80"},
		{"App.Example.com:80", "app.example.com:80"},
		{"_http._tcp.Example.com", "_http._tcp.example.com"},
		{"_http._tcp.example.com.", "_http._tcp.example.com."},
		{"app.example.com", ""},
		{"_http.example.com", ""},
		{"_http._tcp.bad host", ""},
		{"192.0.2.1:80", ""},
		{"[::1]:80", ""},
		{"/run/app.sock", ""},
	}
	for _, tt := range tests {
		got, err := dnsName(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("dnsName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		yml  string
		want time.Duration
		ok   bool
	}{
		{`"1s"`, time.Second, true},
		{`250ms`, 250 * time.Millisecond, true},
		{`1m30s`, 90 * time.Second, true},
		{`5`, 5 * time.Second, true},
		{`0`, 0, true},
		{`"0"`, 0, true},
		{`1_000`, 1000 * time.Second, true},
		{`-1s`, 0, false},
		{`-3`, 0, false},
		{`1.5`, 0, false},
		{`"10"`, 0, false},
		{`10 s`, 0, false},
		{`true`, 0, false},
		{`[1s]`, 0, false},
		{`99999999999999`, 0, false},
	}
	for _, tt := range tests {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tt.yml), &doc); err != nil {
			t.Fatal(err)
		}
		p := &parser{file: "w.yaml"}
		got, ok := p.duration(doc.Content[0], "d")
		if got != tt.want || ok != tt.ok || ok != (len(p.errs) == 0) {
			t.Errorf("duration(%s) = %v, %v (errors %v); want %v, %v", tt.yml, got, ok, p.errs, tt.want, tt.ok)
		}
	}
}

func TestBPFFlowTimeouts(t *testing.T) {
	const service = "services:\n  - {name: r, kind: respond, listen: [\"127.0.0.1:1\"]}\n"
	tests := []struct {
		bpf     string
		want    BPF
		problem string // empty: valid
	}{
		{"{}", BPF{PinPath: DefaultBPFPinPath, Attach: AttachTC}, ""},
		{"{tcp_idle_timeout: 1h, udp_idle_timeout: 30s, tcp_closed_timeout: 5s}",
			BPF{PinPath: DefaultBPFPinPath, Attach: AttachTC, TCPIdleTimeout: time.Hour, UDPIdleTimeout: 30 * time.Second, TCPClosedTimeout: 5 * time.Second}, ""},
		{"{tcp_closed_timeout: 1s}", BPF{}, "bpf.tcp_closed_timeout: 1s is outside 2s to 24h0m0s"},
		{"{udp_idle_timeout: 25h}", BPF{}, "bpf.udp_idle_timeout: 25h0m0s is outside 2s to 24h0m0s"},
		{"{tcp_idle_timeout: 0}", BPF{}, "bpf.tcp_idle_timeout: must be greater than 0"},
		{"{tcp_idle_timeout: 10s, tcp_closed_timeout: 20s}", BPF{}, "exceeds tcp_idle_timeout 10s"},
	}
	for _, tc := range tests {
		cfg, err := Parse("w.yaml", []byte("version: 1\nbpf: "+tc.bpf+"\n"+service))
		if tc.problem == "" {
			if err != nil {
				t.Errorf("bpf %s: %v", tc.bpf, err)
			} else if !reflect.DeepEqual(cfg.BPF, tc.want) {
				t.Errorf("bpf %s = %+v, want %+v", tc.bpf, cfg.BPF, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.problem) || !strings.Contains(err.Error(), "w.yaml:2:") {
			t.Errorf("bpf %s: error %v, want one at w.yaml:2 saying %q", tc.bpf, err, tc.problem)
		}
	}
}

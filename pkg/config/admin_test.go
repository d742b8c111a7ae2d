package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestAdminAddr(t *testing.T) {
	tests := []struct {
		in            string
		network, addr string // empty: refused
		says          string // a substring of the error
	}{
		{"127.0.0.1:9090", "tcp", "127.0.0.1:9090", ""},
		{"[0:0::1]:9090", "tcp", "[::1]:9090", ""},
		{"0.0.0.0:9090", "tcp", "0.0.0.0:9090", ""},
		{"unix:/run/weir/admin.sock", "unix", "/run/weir/admin.sock", ""},
		{"unix:/run//weir/./x/../admin.sock", "unix", "/run/weir/admin.sock", ""},
		{"unix:/" + strings.Repeat("a", maxUnixSocketPath-1), "unix", "/" + strings.Repeat("a", maxUnixSocketPath-1), ""},
		{"unix:/" + strings.Repeat("a", maxUnixSocketPath), "", "", "a Unix socket path is at most 107"},
		{"unix:", "", "", "names no socket"},
		{"unix:admin.sock", "", "", "the socket path is relative"},
		{"/run/weir/admin.sock", "", "", "write unix:/run/weir/admin.sock"},
		{"localhost:9090", "", "", "give an IP address, not a host name: 127.0.0.1:9090 or [::1]:9090"},
		{"admin.example.com:9090", "", "", `"admin.example.com" is not an IP address; give an IP address`},
		{":9090", "", "", "write 127.0.0.1:9090"},
		{"127.0.0.1", "", "", "is not an address"},
		{"127.0.0.1:0", "", "", "port must be 1 to 65535"},
		{"127.0.0.1:65536", "", "", "port must be 1 to 65535"},
	}
	for _, tt := range tests {
		got, err := adminAddr(tt.in)
		if tt.addr == "" {
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("adminAddr(%q) = %+v, %v; want an error saying %q", tt.in, got, err, tt.says)
			}
			continue
		}
		if err != nil || got.Network != tt.network || got.Addr != tt.addr {
			t.Errorf("adminAddr(%q) = %+v, %v; want %s %s", tt.in, got, err, tt.network, tt.addr)
		}
	}
}

func TestAdminListenLoopback(t *testing.T) {
	tests := []struct {
		l    AdminListen
		want bool
	}{
		{AdminListen{Network: "tcp", Addr: "127.0.0.1:9090"}, true},
		{AdminListen{Network: "tcp", Addr: "127.0.0.2:9090"}, true},
		{AdminListen{Network: "tcp", Addr: "[::1]:9090"}, true},
		{AdminListen{Network: "tcp", Addr: "[::ffff:127.0.0.1]:9090"}, true},
		{AdminListen{Network: "unix", Addr: "/run/weir/admin.sock"}, true},
		{AdminListen{Network: "tcp", Addr: "0.0.0.0:9090"}, false},
		{AdminListen{Network: "tcp", Addr: "[::]:9090"}, false},
		{AdminListen{Network: "tcp", Addr: "192.0.2.1:9090"}, false},
	}
	for _, tt := range tests {
		if got := tt.l.Loopback(); got != tt.want {
			t.Errorf("%+v.Loopback() = %v, want %v", tt.l, got, tt.want)
		}
	}
}

func TestOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1:80", "127.0.0.1:80", true},
		{"127.0.0.1:80", "127.0.0.1:81", false},
		{"127.0.0.1:80", "127.0.0.2:80", false},
		{"0.0.0.0:80", "127.0.0.1:80", true},
		{"0.0.0.0:80", "0.0.0.0:81", false},
		{"0.0.0.0:80", "[::1]:80", false},
		{"[::]:80", "127.0.0.1:80", true},
		{"[::]:80", "[::1]:80", true},
		{"[::]:80", "0.0.0.0:80", true},
		{"[::ffff:127.0.0.1]:80", "127.0.0.1:80", true},
		{"[::ffff:127.0.0.1]:80", "0.0.0.0:80", true},
		{"[::1]:80", "127.0.0.1:80", false},
	}
	for _, tt := range tests {
		a, b := netip.MustParseAddrPort(tt.a), netip.MustParseAddrPort(tt.b)
		if got := overlap(a, b); got != tt.want {
			t.Errorf("overlap(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := overlap(b, a); got != tt.want {
			t.Errorf("overlap(%s, %s) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

// parseOne parses yml as the file weir.yaml in dir and returns its only
// error; it fails the test unless there is exactly one.
func parseOne(t *testing.T, dir, yml string) Error {
	t.Helper()
	_, err := parse(filepath.Join(dir, "weir.yaml"), dir, 1, []byte(yml))
	var errs *Errors
	if !errors.As(err, &errs) || len(*errs) != 1 {
		t.Fatalf("want one error, got %v", err)
	}
	return (*errs)[0]
}

// respondService is a service to complete a file with.
const respondService = "services:\n  - {name: r, kind: respond, listen: [\"127.0.0.1:8001\"]}\n"

func TestAdminListenShapes(t *testing.T) {
	tests := []struct {
		name, admin string
		line, col   int
		want        string
	}{
		{"empty token_file", "admin: {listen: \"127.0.0.1:9090\", token_file: \"\"}", 2, 47, "admin.token_file: must not be empty"},
		{"listen missing", "admin: {}", 2, 8, `admin.listen: missing; give the address to serve the admin endpoint on, as in listen: "127.0.0.1:9090"`},
		{"empty list", "admin: {listen: []}", 2, 17, "admin.listen: the list is empty"},
		{"mapping", "admin: {listen: {addr: \"127.0.0.1:1\"}}", 2, 17, "admin.listen: want an address or a list of addresses, got a mapping"},
		{"not a mapping", "admin: \"127.0.0.1:9090\"", 2, 8, `admin: want a mapping, got string "127.0.0.1:9090"`},
		{"the upgrade socket", "upgrade_sock: /run/w/u.sock\nadmin: {listen: \"unix:/run/w/u.sock\"}", 3, 17, "is the upgrade_sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := parseOne(t, t.TempDir(), "version: 1\n"+tt.admin+"\n"+respondService)
			if e.Line != tt.line || e.Col != tt.col || !strings.Contains(e.Msg, tt.want) {
				t.Errorf("got %v\nwant an error at %d:%d saying %q", e, tt.line, tt.col, tt.want)
			}
		})
	}
}

// TestAdminTokenFile writes token files of every kind and checks what
// the configuration check says of each, never quoting the token.
func TestAdminTokenFile(t *testing.T) {
	const secret = "s3cret-s3cret-s3cret"
	tests := []struct {
		name, data string
		mode       os.FileMode
		want       string // "": accepted
	}{
		{"good", secret + "\n", 0o600, ""},
		{"owner read only", "\t " + secret + "\r\n\n", 0o400, ""},
		{"exactly 16 bytes", strings.Repeat("x", minTokenLen), 0o600, ""},
		{"15 bytes", strings.Repeat("x", minTokenLen-1) + "\n", 0o600, "is 15 bytes, shorter than the 16"},
		{"empty", "", 0o600, "holds no token; write one of at least 16 bytes"},
		{"whitespace", " \n\n", 0o600, "holds no token"},
		{"inner space", "s3cret s3cret s3cret", 0o600, "has byte 0x20 at offset 6; an HTTP header carries printable ASCII only"},
		{"non-ASCII", secret + "é", 0o600, "has byte 0xc3 at offset 20"},
		{"group readable", secret, 0o640, "has mode 0640: users other than its owner may read or change the token; run chmod 600"},
		{"world writable", secret, 0o602, "has mode 0602"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "admin.token")
			if err := os.WriteFile(file, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(file, tt.mode); err != nil {
				t.Fatal(err)
			}
			yml := "version: 1\nadmin:\n  listen: \"0.0.0.0:9090\"\n  token_file: admin.token\n" + respondService
			if tt.want == "" {
				cfg, err := parse(filepath.Join(dir, "weir.yaml"), dir, 1, []byte(yml))
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Admin == nil || cfg.Admin.TokenFile != file {
					t.Fatalf("Admin = %+v, want TokenFile %s", cfg.Admin, file)
				}
				return
			}
			e := parseOne(t, dir, yml)
			if e.Line != 4 || e.Col != 15 || !strings.HasPrefix(e.Msg, "admin.token_file: ") || !strings.Contains(e.Msg, tt.want) {
				t.Errorf("got %v\nwant an error at 4:15 saying %q", e, tt.want)
			}
			if strings.Contains(e.Msg, "s3cret") {
				t.Errorf("the message quotes the token: %s", e.Msg)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		e := parseOne(t, t.TempDir(), "version: 1\nadmin: {listen: \"127.0.0.1:9090\", token_file: nope}\n"+respondService)
		if !strings.Contains(e.Msg, "admin token file") || !strings.Contains(e.Msg, "does not exist") {
			t.Errorf("got %v, want the file reported missing", e)
		}
	})
	t.Run("directory", func(t *testing.T) {
		e := parseOne(t, t.TempDir(), "version: 1\nadmin: {listen: \"127.0.0.1:9090\", token_file: .}\n"+respondService)
		if !strings.Contains(e.Msg, "is a directory, not a regular file") {
			t.Errorf("got %v, want a directory refused", e)
		}
	})
}

// TestAdminNeedsATokenOffLoopback checks which addresses need a token.
func TestAdminNeedsATokenOffLoopback(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"127.0.0.1:9090", "[::1]:9090", "127.9.9.9:9090", "[::ffff:127.0.0.1]:9090", "unix:/run/weir/admin.sock"} {
		if _, err := parse(filepath.Join(dir, "weir.yaml"), dir, 1, []byte("version: 1\nadmin: {listen: "+strconv.Quote(addr)+"}\n"+respondService)); err != nil {
			t.Errorf("%s without a token: %v", addr, err)
		}
	}
	for _, addr := range []string{"0.0.0.0:9090", "[::]:9090", "192.0.2.1:9090", "[2001:db8::1]:9090"} {
		e := parseOne(t, dir, "version: 1\nadmin: {listen: "+strconv.Quote(addr)+"}\n"+respondService)
		if !strings.Contains(e.Msg, "is reachable from other hosts and no token_file is set") {
			t.Errorf("%s without a token: got %v", addr, e)
		}
		if _, err := parse(filepath.Join(dir, "weir.yaml"), dir, 1, []byte("version: 1\nadmin: {listen: "+strconv.Quote(addr)+", token_file: token}\n"+respondService)); err != nil {
			t.Errorf("%s with a token: %v", addr, err)
		}
	}
}

// TestHTTPLoggingDefaults checks request_id's default, per kind, and
// that an access log without a format gets the combined one, parsed.
func TestHTTPLoggingDefaults(t *testing.T) {
	yml := `version: 1
services:
  - {name: r, kind: respond, listen: ["127.0.0.1:8001"], access_log: /var/log/r.log}
  - {name: p, kind: http_proxy, listen: ["127.0.0.1:8002"], upstream: {backends: ["127.0.0.1:9001"]}}
  - {name: l, kind: l4, protocol: tcp, vip: "192.0.2.1:80", upstream: {backends: ["192.0.2.2:80"]}}
`
	cfg, err := Parse("weir.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	r, p, l := cfg.Services[0], cfg.Services[1], cfg.Services[2]
	if !r.RequestID || !p.RequestID || l.RequestID {
		t.Errorf("RequestID = %v, %v, %v; want true for respond and http_proxy, false for l4", r.RequestID, p.RequestID, l.RequestID)
	}
	if r.AccessLog == nil || r.AccessLog.Path != "/var/log/r.log" || r.AccessLog.Format == nil || r.AccessLog.Format.String() != "combined" {
		t.Errorf("respond AccessLog = %+v, want /var/log/r.log in the combined format", r.AccessLog)
	}
	if r.AccessLog != nil && r.AccessLog.Pos.String() != "weir.yaml:3:58" {
		t.Errorf("AccessLog.Pos = %s, want weir.yaml:3:58 (the key)", r.AccessLog.Pos)
	}
	if p.AccessLog != nil || l.AccessLog != nil || cfg.Admin != nil {
		t.Errorf("AccessLog %+v, %+v and Admin %+v; want nil when not configured", p.AccessLog, l.AccessLog, cfg.Admin)
	}
}

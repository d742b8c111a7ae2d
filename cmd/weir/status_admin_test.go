package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/admin"
)

// fakeAdmin serves st as GET /status on ln until the test ends, and
// records the Authorization header of the last request.
func fakeAdmin(t *testing.T, ln net.Listener, st admin.Status) *string {
	t.Helper()
	var auth string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		auth = r.Header.Get("Authorization")
		json.NewEncoder(w).Encode(st)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &auth
}

func sampleStatus() admin.Status {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return admin.Status{Version: "v9", PID: 4242, Started: now, Now: now, Services: []admin.ServiceStatus{
		{Name: "web", Kind: "http_proxy", Listeners: []string{"127.0.0.1:8080"}, Selection: "round_robin", RequestRate: 12.5,
			Retry: &admin.RetryStatus{Retries: map[string]uint64{"503": 5}, Total: 5, BudgetExhausted: 2},
			Backends: []admin.BackendStatus{
				{Addr: "10.0.0.1:80", Weight: 3, Healthy: true, Enabled: true, LastCheck: now, LastCheckLatency: time.Millisecond},
				{Addr: "10.0.0.2:80", Weight: 1, Healthy: true, Drained: true},
				{Addr: "10.0.0.3:80", Weight: 1, Enabled: true, LastCheck: now, LastError: "connection refused"},
				{Addr: "10.0.0.4:80", Weight: 1, Healthy: true, Enabled: true, Ejected: true, EjectedUntil: now.Add(30 * time.Second), Ejections: 2},
				{Addr: "10.0.0.5:80", Weight: 1, Healthy: true, Enabled: true, Backup: true},
			}},
		{Name: "vip", Kind: "l4", Listeners: []string{"tcp 192.0.2.1:443"}, DataPlane: "bpf", Generation: 7,
			L4: &admin.L4Counters{Packets: 100, Bytes: 6400, NewFlows: 10},
			Backends: []admin.BackendStatus{{Addr: "10.0.1.1:443", Weight: 1, Healthy: true, Enabled: true,
				L4: &admin.L4Counters{Packets: 60, Bytes: 4000, NewFlows: 6}}}},
	}}
}

// TestStatusReadsTheAdminEndpoint: weir status prints the running weir's
// L7 and L4 services in one table, from an admin endpoint on TCP or a
// Unix socket, named by -admin or by the configuration.
func TestStatusReadsTheAdminEndpoint(t *testing.T) {
	dir := t.TempDir()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "admin.sock")
	unixLn, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	tcpAuth := fakeAdmin(t, tcp, sampleStatus())
	fakeAdmin(t, unixLn, sampleStatus())
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "weir.yaml")
	noPin := filepath.Join(dir, "no-bpffs")
	// A pin path that does not exist: weir status must not open, let
	// alone create, the host's.
	yaml := fmt.Sprintf(`version: 1
bpf: {pin_path: %q}
admin: {listen: "unix:%s"}
services:
  - {name: a, kind: respond, body: "a", listen: ["127.0.0.1:1"]}
`, noPin, sock)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
	}{
		{"tcp", []string{"-admin", tcp.Addr().String(), "-token-file", token, "-pin", noPin}},
		{"unix", []string{"-admin", "unix:" + sock, "-pin", noPin}},
		{"from the configuration", []string{"-c", conf}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runStatus(tc.args, &stdout, &stderr); code != 0 {
				t.Fatalf("weir status %v = %d\n%s%s", tc.args, code, &stdout, &stderr)
			}
			out := stdout.String()
			t.Logf("weir status %v:\n%s", tc.args, out)
			for _, want := range []string{
				"weir v9 pid 4242",
				"web ", "http_proxy", "127.0.0.1:8080", "12.5",
				"10.0.0.1:80", "up ", "10.0.0.2:80", "up,drained", "10.0.0.3:80", "down", "connection refused",
				"10.0.0.4:80", "up,ejected until 03:04:35", "10.0.0.5:80 (backup)", "retries 5,refused 2",
				"vip ", "l4/bpf gen 7", "tcp 192.0.2.1:443", "6400", "10.0.1.1:443", "4000",
				"no BPF data plane pinned at " + noPin,
			} {
				if !strings.Contains(out, want) {
					t.Errorf("the output lacks %q", want)
				}
			}
			if n := strings.Count(out, "retries "); n != 1 {
				t.Errorf("%d targets show retries, want 1 (the one with a policy)", n)
			}
			if n := strings.Count(out, "(backup)"); n != 1 {
				t.Errorf("%d backends marked backup, want 1", n)
			}
			if n := strings.Count(out, "ejected"); n != 1 {
				t.Errorf("%d backends shown ejected, want 1", n)
			}
		})
	}
	if *tcpAuth != "Bearer 0123456789abcdef0123" {
		t.Errorf("the token was sent as %q", *tcpAuth)
	}
}

// TestStatusAdminUnreachable says what it tried and what to check.
func TestStatusAdminUnreachable(t *testing.T) {
	var stdout, stderr bytes.Buffer
	sock := filepath.Join(t.TempDir(), "none.sock")
	if code := runStatus([]string{"-admin", "unix:" + sock}, &stdout, &stderr); code != 1 {
		t.Fatalf("weir status = %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "admin endpoint unix:"+sock) || !strings.Contains(stderr.String(), "admin.listen") {
		t.Fatalf("stderr: %s", &stderr)
	}
}

package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/accesslog"
	"github.com/weir-lb/weir/pkg/admin"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/metrics"
)

// observedServer serves yaml with metrics and access logs, as cmd/weir
// runs it, until the test ends.
func observedServer(t *testing.T, yaml string) (*Server, *metrics.Metrics) {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "test.yaml"), []byte(yaml))
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	m := metrics.New(metrics.Build{Version: "test"})
	logs := accesslog.NewWriters(accesslog.Options{})
	t.Cleanup(func() { logs.CloseAll() })
	srv, err := NewWith(cfg, Options{Metrics: m, AccessLogs: logs, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	serveUntilReady(t, srv)
	return srv, m
}

// unixClient is an HTTP client that dials the Unix socket path.
func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// TestAdminEndpoint runs the whole admin endpoint of a configuration: the
// status over a 0600 Unix socket, a drain over TCP seen in the traffic,
// the metrics counting what was sent, and the access log a line per
// request, with the id the backend saw.
func TestAdminEndpoint(t *testing.T) {
	a, b := testenv.StartNamedBackend(t, "a"), testenv.StartNamedBackend(t, "b")
	ports := freePorts(t, 2)
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	accessLog := filepath.Join(dir, "access.log")
	yaml := fmt.Sprintf(`version: 1
admin:
  listen: ["127.0.0.1:%d", "unix:%s"]
services:
  - name: web
    kind: http_proxy
    listen: ["127.0.0.1:%d"]
    access_log: {path: %q, format: "$request_id $status $upstream $method $path"}
    upstream:
      backends: [%q, %q]
`, ports[0], sock, ports[1], accessLog, a.Addr, b.Addr)
	srv, _ := observedServer(t, yaml)
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin socket mode %v, want 0600", fi.Mode().Perm())
	}
	var st admin.Status
	getJSON(t, unixClient(sock), "http://localhost/status", &st)
	if len(st.Services) != 1 || len(st.Services[0].Backends) != 2 {
		t.Fatalf("status over the Unix socket: %+v", st)
	}

	web := newClient(t, fmt.Sprintf("127.0.0.1:%d", ports[1]))
	before := web.split(10)
	if before["a"] != 5 || before["b"] != 5 {
		t.Fatalf("split before the drain %v, want 5 and 5", before)
	}
	resp, err := http.Post(adminURL+"/api/v1/services/web/backends/"+a.Addr+"/drain", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("drain answered %d", resp.StatusCode)
	}
	if after := web.split(10); after["b"] != 10 {
		t.Errorf("split after draining a: %v, want all 10 on b", after)
	}

	metricsText := get(t, http.DefaultClient, adminURL+"/metrics")
	for _, want := range []string{
		fmt.Sprintf(`weir_http_requests_total{backend=%q,code="2xx",service="web"} 5`, a.Addr),
		fmt.Sprintf(`weir_http_requests_total{backend=%q,code="2xx",service="web"} 15`, b.Addr),
		fmt.Sprintf(`weir_backend_enabled{backend=%q,service="web"} 0`, a.Addr),
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	lines := waitLines(t, accessLog, 20)
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) != 5 || len(f[0]) != 32 || f[1] != "200" || f[3] != "GET" || f[4] != "/" {
			t.Errorf("access log line %q, want: id status upstream GET /", line)
		}
	}
	if got := countSockets(srv, adminService); got != 1 {
		t.Errorf("%d admin sockets to hand over, want 1 (the TCP one)", got)
	}
}

func countSockets(srv *Server, service string) int {
	n := 0
	for _, s := range srv.Sockets() {
		if s.Service == service {
			n++
		}
	}
	return n
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}

func getJSON(t *testing.T, c *http.Client, url string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(get(t, c, url)), v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// waitLines waits until path holds n lines, and returns them.
func waitLines(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(data) > 0 && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d lines, want %d:\n%s", path, len(lines), n, data)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAdminUnixSocketRefusesAnOpenDirectory: a socket in a directory
// other users may write could be replaced by theirs.
func TestAdminUnixSocketRefusesAnOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_, _, err := listenUnixPrivate(filepath.Join(dir, "admin.sock"))
	if err == nil || !strings.Contains(err.Error(), "writable by other users") {
		t.Fatalf("listen in a 0777 directory: %v, want a refusal", err)
	}
}

// TestL4MetricsInUserspace: an l4 service's counters reach /metrics under
// the same names as on the BPF data plane.
func TestL4MetricsInUserspace(t *testing.T) {
	a := testenv.StartNamedBackend(t, "a")
	ports := freePorts(t, 2)
	yaml := fmt.Sprintf(`version: 1
admin:
  listen: "127.0.0.1:%d"
services:
  - name: tcp-vip
    kind: l4
    protocol: tcp
    vip: "127.0.0.1:%d"
    dataplane: userspace
    upstream:
      backends: [%q]
`, ports[0], ports[1], a.Addr)
	observedServer(t, yaml)
	web := newClient(t, fmt.Sprintf("127.0.0.1:%d", ports[1]))
	web.c.Transport.(*http.Transport).DisableKeepAlives = true
	for range 3 {
		if got := web.get(); got != "a" {
			t.Fatalf("through the VIP: %q", got)
		}
	}
	metricsText := get(t, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0]))
	for _, want := range []string{
		fmt.Sprintf(`weir_l4_new_flows_total{backend=%q,service="tcp-vip"} 3`, a.Addr),
		`weir_l4_data_plane{data_plane="userspace",service="tcp-vip"} 1`,
		fmt.Sprintf(`weir_backend_up{backend=%q,service="tcp-vip"} 1`, a.Addr),
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("metrics lack %s; have:\n%s", want, grepLines(metricsText, "weir_l4_"))
		}
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

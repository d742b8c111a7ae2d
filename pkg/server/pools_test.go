package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/metrics"
)

// TestStickySecretKeysTheCookie: weir nodes given the same secret_file
// name a backend alike in the sticky cookie, so a client keeps its
// backend from one to the other; a node with another secret, or none,
// names it differently, so nobody without the secret can tell which
// address a cookie stands for.
func TestStickySecretKeysTheCookie(t *testing.T) {
	dir := t.TempDir()
	secret := func(name, s string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	one := secret("one", "0123456789abcdef0123456789abcdef\n")
	oneAgain := secret("one-again", "0123456789abcdef0123456789abcdef") // the same without the newline
	two := secret("two", "fedcba9876543210fedcba9876543210\n")

	p := freePorts(t, 5)
	backend := fmt.Sprintf("127.0.0.1:%d", p[0])
	node := func(port int, secretFile string) string {
		sf := ""
		if secretFile != "" {
			sf = ", secret_file: " + secretFile
		}
		return fmt.Sprintf(`
  - name: lb%d
    kind: http_proxy
    listen: ["127.0.0.1:%d"]
    upstream:
      backends: [%q]
      sticky: {cookie: weir_backend%s}`, port, port, backend, sf)
	}
	startServer(t, fmt.Sprintf(`version: 1
services:
  - name: backend
    kind: respond
    listen: [%q]
    body: "ok"`, backend)+node(p[1], one)+node(p[2], oneAgain)+node(p[3], two)+node(p[4], "")+"\n")

	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	cookie := func(port int) string {
		t.Helper()
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, ck := range resp.Cookies() {
			if ck.Name == "weir_backend" {
				return ck.Value
			}
		}
		t.Fatalf("port %d: no sticky cookie in %q", port, resp.Header.Values("Set-Cookie"))
		return ""
	}
	a, b, other, none := cookie(p[1]), cookie(p[2]), cookie(p[3]), cookie(p[4])
	if a != b {
		t.Errorf("two nodes with the same secret name the backend %q and %q", a, b)
	}
	if a == other || a == none || other == none {
		t.Errorf("different secrets name the backend alike: %q (one), %q (two), %q (none)", a, other, none)
	}
	for _, v := range []string{a, other, none} {
		if strings.Contains(v, "127.0.0.1") {
			t.Errorf("the cookie %q shows the backend's address", v)
		}
	}
}

// TestStickySecretNotExposed: a pool's sticky secret keys its cookies
// and goes nowhere else: not in the admin API's status (JSON or page),
// not in the metrics, not in the server's logs, at debug level.
func TestStickySecretNotExposed(t *testing.T) {
	const secret = "weir-never-shows-this-secret-0123"
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "sticky.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	backend := testenv.StartNamedBackend(t, "a")
	ports := freePorts(t, 2)
	yaml := fmt.Sprintf(`version: 1
admin: {listen: ["127.0.0.1:%d"]}
upstreams:
  web:
    backends: [%q]
    sticky: {cookie: weir_web, secret_file: %s}
services:
  - name: front
    kind: http_proxy
    listen: ["127.0.0.1:%d"]
    routes: [{upstream: web}]
`, ports[0], backend.Addr, secretFile, ports[1])
	cfg, err := config.Parse(filepath.Join(dir, "weir.yaml"), []byte(yaml))
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := NewWith(cfg, Options{Logger: log, Metrics: metrics.New(metrics.Build{Version: "test"}), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	serveUntilReady(t, srv)

	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	if got := get(t, c, fmt.Sprintf("http://127.0.0.1:%d/", ports[1])); got == "" {
		t.Fatal("no answer through the pool")
	}
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	for _, path := range []string{"/status", "/api/v1/status", "/", "/metrics"} {
		body := get(t, c, adminURL+path)
		if strings.Contains(body, secret) || strings.Contains(body, secretFile) {
			t.Errorf("GET %s shows the sticky secret or its file:\n%s", path, body)
		}
	}
	if !strings.Contains(get(t, c, adminURL+"/status"), `"web"`) {
		t.Error("the status does not list the pool web; the check above saw nothing of it")
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the logs show the sticky secret:\n%s", logs.String())
	}
}

package server

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

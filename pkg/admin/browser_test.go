package admin

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
)

// TestPageInBrowser loads the status page in headless Chromium while a
// backend goes down, comes back and is ejected by passive health, next to
// a backup backend, and reads their state from the DOM the browser built.
// The page's own script must run too, which shows that its
// Content-Security-Policy allows it.
func TestPageInBrowser(t *testing.T) {
	testenv.Chromium(t)
	var log testenv.Buffer
	e := serve(t, options(&log), &log, true)
	url := "http://" + e.addr + "/"
	const svc, addr, backup = "web", "127.0.0.1:8081", "127.0.0.1:8083"
	e.state.addBackup(svc, backup)
	for _, step := range []struct {
		name    string
		change  func()
		health  string
		state   string // the state cell
		ejected string // data-ejected
		lastErr string
	}{
		{"down", func() { e.state.SetHealth(svc, addr, false, "connect: connection refused") },
			"down", "enabled", "false", "connect: connection refused"},
		{"up", func() { e.state.SetHealth(svc, addr, true, "") }, "up", "enabled", "false", ""},
		{"ejected", func() { e.state.SetEjected(svc, addr, testNow.Add(30*time.Second)) },
			"up", "ejected until 12:00:30", "true", ""},
		{"back", func() { e.state.SetEjected(svc, addr, time.Time{}) }, "up", "enabled", "false", ""},
	} {
		step.change()
		dom := testenv.DumpDOM(t, url)
		rows := pageRows(t, dom)
		r, ok := rows[svc+" "+addr]
		if !ok {
			t.Fatalf("%s: no row for %s %s in the DOM:\n%s", step.name, svc, addr, dom)
		}
		if got := r.attrs["data-health"]; got != step.health {
			t.Errorf("%s: data-health=%q, want %q", step.name, got, step.health)
		}
		if got := r.attrs["data-ejected"]; got != step.ejected {
			t.Errorf("%s: data-ejected=%q, want %q", step.name, got, step.ejected)
		}
		if got := r.cells[1]; got != step.health {
			t.Errorf("%s: health cell %q, want %q", step.name, got, step.health)
		}
		if got := r.cells[2]; got != step.state {
			t.Errorf("%s: state cell %q, want %q", step.name, got, step.state)
		}
		if got := r.cells[len(r.cells)-1]; got != step.lastErr {
			t.Errorf("%s: last error cell %q, want %q", step.name, got, step.lastErr)
		}
		b, ok := rows[svc+" "+backup]
		if !ok {
			t.Fatalf("%s: no row for the backup %s in the DOM:\n%s", step.name, backup, dom)
		}
		if b.attrs["data-backup"] != "true" || b.cells[0] != backup+" backup" {
			t.Errorf("%s: the backup is not marked: data-backup=%q, first cell %q", step.name, b.attrs["data-backup"], b.cells[0])
		}
		if r.attrs["data-backup"] != "false" || r.cells[0] != addr {
			t.Errorf("%s: the primary is marked a backup: data-backup=%q, first cell %q", step.name, r.attrs["data-backup"], r.cells[0])
		}
		if !strings.Contains(dom, `data-refresh="script"`) {
			t.Errorf("the page's script did not run (blocked by its CSP?)")
		}
	}

	png := filepath.Join(t.TempDir(), "status.png")
	testenv.Screenshot(t, url, png)
	data, err := os.ReadFile(png)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("the screenshot is not a PNG")
	}
}

// TestPageRefreshesInBrowser lets the page's timers run in headless
// Chromium, in virtual time, while a backend goes down between the first
// load and the first refresh: the page must show it down without a
// reload, which takes its script fetching the page and swapping the
// tables in.
func TestPageRefreshesInBrowser(t *testing.T) {
	testenv.Chromium(t)
	state := newFake()
	h, err := New(Options{State: state, Logger: options(io.Discard).Logger})
	if err != nil {
		t.Fatal(err)
	}
	var pages atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && pages.Add(1) == 2 {
			state.SetHealth("web", "127.0.0.1:8081", false, "went down after the first load")
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	// Refreshes are 2 s apart: 5 s of virtual time hold two.
	dom := testenv.DumpDOM(t, srv.URL+"/", "--virtual-time-budget=5000")
	if n := pages.Load(); n < 2 {
		t.Fatalf("the page was loaded %d times; it did not refresh itself", n)
	}
	r, ok := pageRows(t, dom)["web 127.0.0.1:8081"]
	if !ok {
		t.Fatalf("no row for web 127.0.0.1:8081 in the DOM:\n%s", dom)
	}
	if got := r.attrs["data-health"]; got != "down" {
		t.Errorf("after a refresh data-health=%q, want down", got)
	}
	if !strings.Contains(dom, `id="stale" class="stale" hidden`) {
		t.Errorf("the page says it is stale:\n%s", between(t, dom, `<p id="stale"`, "</p>"))
	}
}

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

	"github.com/weir-lb/weir/internal/testenv"
)

// TestPageInBrowser loads the status page in headless Chromium while a
// backend goes down and comes back, and reads its health from the DOM
// the browser built. The page's own script must run too, which shows
// that its Content-Security-Policy allows it.
func TestPageInBrowser(t *testing.T) {
	testenv.Chromium(t)
	var log testenv.Buffer
	e := serve(t, options(&log), &log, true)
	url := "http://" + e.addr + "/"
	const svc, addr = "web", "127.0.0.1:8081"
	for _, step := range []struct {
		healthy bool
		lastErr string
		want    string
	}{
		{false, "connect: connection refused", "down"},
		{true, "", "up"},
	} {
		e.state.SetHealth(svc, addr, step.healthy, step.lastErr)
		dom := testenv.DumpDOM(t, url)
		r, ok := pageRows(t, dom)[svc+" "+addr]
		if !ok {
			t.Fatalf("no row for %s %s in the DOM:\n%s", svc, addr, dom)
		}
		if got := r.attrs["data-health"]; got != step.want {
			t.Errorf("data-health=%q, want %q", got, step.want)
		}
		if got := r.cells[1]; got != step.want {
			t.Errorf("health cell %q, want %q", got, step.want)
		}
		if got := r.cells[len(r.cells)-1]; got != step.lastErr {
			t.Errorf("last error cell %q, want %q", got, step.lastErr)
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

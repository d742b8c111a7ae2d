package testenv

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// chromiumTimeout bounds one headless Chromium run, start-up included.
const chromiumTimeout = 60 * time.Second

// Chromium returns the path of a Chromium browser (chromium or
// chromium-browser), skipping t when there is none, or failing it when
// privileged tests are required.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	SkipOrFail(t, "test needs a Chromium browser (apt-get install chromium)")
	return ""
}

// DumpDOM loads url in headless Chromium and returns the DOM once the
// page has loaded and its scripts have run, serialised as HTML. flags
// go to Chromium; --virtual-time-budget=MS, for one, lets the page's
// timers run for MS of virtual time first.
func DumpDOM(t testing.TB, url string, flags ...string) string {
	t.Helper()
	return string(runChromium(t, append(flags, "--dump-dom", url)...))
}

// Screenshot loads url in headless Chromium in a 1280x800 window and
// saves a PNG of it to path.
func Screenshot(t testing.TB, url, path string) {
	t.Helper()
	runChromium(t, "--screenshot="+path, "--window-size=1280,800", "--hide-scrollbars", url)
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("chromium wrote no screenshot to %s (%v)", path, err)
	}
}

// runChromium runs headless Chromium with args, a throwaway profile and
// nothing that reaches out to the network on its own, and returns its
// standard output; it fails t if Chromium fails or outlives
// chromiumTimeout. --no-sandbox lets it run as root, as tests in CI do.
func runChromium(t testing.TB, args ...string) []byte {
	t.Helper()
	bin := Chromium(t)
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), chromiumTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--user-data-dir=" + filepath.Join(home, "profile"),
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--mute-audio",
	}, args...)...)
	// Chromium keeps caches and crash reports under XDG directories too.
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A helper process that inherited the pipes must not hold Wait.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("chromium %v: still running after %v; its stderr:\n%s", args, chromiumTimeout, stderr.String())
	}
	if err != nil {
		t.Fatalf("chromium %v: %v; its stderr:\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

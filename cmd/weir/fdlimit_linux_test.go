package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
)

// startLimited runs weir (this test binary standing in for it) under
// prlimit with RLIMIT_NOFILE soft:hard, in front of backend, and returns
// its listen address, its process and its standard error.
func startLimited(t *testing.T, soft, hard int, backend string) (string, *exec.Cmd, *testenv.Buffer) {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		testenv.SkipOrFail(t, "prlimit (util-linux) is not installed: run scripts/provision")
	}
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`version: 1
threads: 1
pid_file: %s
upgrade_sock: %s
services:
  - name: lb
    kind: http_proxy
    listen: ["%s"]
    upstream:
      backends: ["%s"]
`, filepath.Join(dir, "weir.pid"), filepath.Join(dir, "upgrade.sock"), addr, backend)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prlimit, fmt.Sprintf("--nofile=%d:%d", soft, hard), "--", os.Args[0], "-c", conf)
	cmd.Env = append(os.Environ(), "WEIR_TEST_RUN_MAIN=1")
	var stderr testenv.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr, cmd, &stderr
		}
		if time.Now().After(deadline) {
			t.Fatalf("weir did not listen on %s within 10s:\n%s", addr, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openFilesLimit reads a process's RLIMIT_NOFILE from /proc.
func openFilesLimit(t *testing.T, pid int) (soft, hard int) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "Max open files") {
			fields := strings.Fields(strings.TrimPrefix(line, "Max open files"))
			soft, _ = strconv.Atoi(fields[0])
			hard, _ = strconv.Atoi(fields[1])
			return soft, hard
		}
	}
	t.Fatalf("no open files limit in /proc/%d/limits", pid)
	return 0, 0
}

func okBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestSoftFDLimitIsRaisedToTheHardLimit: weir starts with its soft
// RLIMIT_NOFILE at the hard limit, as HAProxy does, whatever soft limit
// it was started with (a shell's 1024, say).
func TestSoftFDLimitIsRaisedToTheHardLimit(t *testing.T) {
	_, cmd, _ := startLimited(t, 64, 4096, okBackend(t))
	if soft, hard := openFilesLimit(t, cmd.Process.Pid); soft != 4096 || hard != 4096 {
		t.Errorf("weir runs with RLIMIT_NOFILE %d:%d, want 4096:4096", soft, hard)
	}
}

// TestAtTheFDLimitWeirBacksOffAndRecovers: clients holding every
// descriptor weir may open make its accepts fail with EMFILE; weir logs
// it (with a growing backoff, not a line per attempt), keeps the rest
// queued in the kernel, and serves again once the clients let go.
func TestAtTheFDLimitWeirBacksOffAndRecovers(t *testing.T) {
	const limit = 48
	addr, cmd, stderr := startLimited(t, limit, limit, okBackend(t))
	var held []net.Conn
	var mu sync.Mutex
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	// More connections than weir has descriptors: the kernel completes
	// every handshake, and weir accepts until it runs out.
	for range 2 * limit {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("dial while weir is at its limit: %v", err)
		}
		mu.Lock()
		held = append(held, c)
		mu.Unlock()
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "too many open files") {
		if time.Now().After(deadline) {
			t.Fatalf("weir logged no accept failure within 10s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Let go, and weir serves again: a new client gets its answer.
	mu.Lock()
	for _, c := range held {
		c.Close()
	}
	held = nil
	mu.Unlock()
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 5 * time.Second}
	deadline = time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(body) == "ok" {
				break
			}
			err = fmt.Errorf("status %d, body %q", resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("weir did not serve again within 15s of the clients leaving: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if cmd.ProcessState != nil {
		t.Fatal("weir exited")
	}
	// The backoff grows to a second: a burst of failures is a few lines,
	// not one per attempt.
	if n := strings.Count(stderr.String(), "accept failed; retrying"); n > 40 {
		t.Errorf("%d accept-failure lines in a few seconds; the backoff should keep it to a few", n)
	}
}

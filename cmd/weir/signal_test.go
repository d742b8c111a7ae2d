package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the weir command: with
// WEIR_TEST_RUN_MAIN=1 it runs main, so the signal test drives a real
// weir process without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("WEIR_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestSIGTERMFinishesRequestsInFlight starts weir in front of a slow
// backend, sends SIGTERM while a request waits on it, and checks the
// request completes, new connections are refused, and weir exits 0.
func TestSIGTERMFinishesRequestsInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	})}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go backend.Serve(bl)
	defer backend.Close()

	probe, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := probe.Addr().String()
	probe.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "weir.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`version: 1
graceful_shutdown_timeout_seconds: 10
pid_file: %s
services:
  - name: lb
    kind: http_proxy
    listen: ["%s"]
    upstream:
      backends: ["%s"]
`, filepath.Join(dir, "weir.pid"), addr, bl.Addr())), 0o644)

	cmd := exec.Command(os.Args[0], "-c", conf)
	cmd.Env = append(os.Environ(), "WEIR_TEST_RUN_MAIN=1")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("weir did not listen on %s within 10s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	result := make(chan string, 1)
	go func() {
		c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 15 * time.Second}
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			result <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- fmt.Sprint(resp.StatusCode, " ", string(body))
	}()
	<-entered
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break // no longer accepting
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("weir still accepted connections 5s after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-exited:
		t.Fatalf("weir exited (%v) with a request in flight", err)
	default:
	}
	close(release)
	if got := <-result; got != "200 finished" {
		t.Fatalf("in-flight request got %q, want 200 finished", got)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("weir exited with %v, want 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("weir did not exit within 10s of its last request")
	}
}

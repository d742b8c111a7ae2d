package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FreePort returns a loopback address with a port free at the time of
// the call, for a server run as a child process that cannot report the
// port it chose.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// HAProxy runs a real HAProxy (Debian's haproxy package) in the
// foreground with config, a complete haproxy.cfg, until t ends, and
// returns once addr, one of its frontends, accepts connections. It skips
// t when haproxy is not installed, or fails it when privileged tests are
// required. Its output is shown if t failed.
func HAProxy(t testing.TB, config, addr string) {
	t.Helper()
	bin := lookPeer(t, "haproxy", "haproxy")
	if bin == "" {
		return
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-q", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c rejects the test's configuration: %v\n%s\n%s", err, out, config)
	}
	// -db: stay in the foreground, no master-worker.
	runPeer(t, "haproxy", dir, addr, bin, "-db", "-f", cfg)
}

// NGINXProxyProtocol runs NGINX (see NGINX) on a free loopback
// port, listening with proxy_protocol, and returns its address. It
// answers every request with what the PROXY protocol header of its
// connection said: "client-addr:port server-addr:port".
func NGINXProxyProtocol(t testing.TB) string {
	t.Helper()
	addr := FreePort(t)
	NGINX(t, fmt.Sprintf(`  server {
    listen %s proxy_protocol;
    location / { return 200 "$proxy_protocol_addr:$proxy_protocol_port $proxy_protocol_server_addr:$proxy_protocol_server_port"; }
  }`, addr), addr)
	return addr
}

// NGINX runs a real NGINX (Debian's nginx package) in the foreground,
// one process, with http, the body of the configuration's http block
// (server blocks), until t ends, and returns once addr, one of its
// listening addresses, accepts connections. Its pid file, logs and
// temporary files live in a directory of the test's. It skips t when
// nginx is not installed, or fails it when privileged tests are
// required. Its error log is shown if t failed.
func NGINX(t testing.TB, http, addr string) {
	t.Helper()
	bin := lookPeer(t, "nginx", "nginx")
	if bin == "" {
		return
	}
	dir := t.TempDir()
	var b strings.Builder
	// Without a master process nginx never changes user, so it runs as
	// whoever runs the test, root included.
	fmt.Fprintf(&b, "daemon off;\nmaster_process off;\npid %s/nginx.pid;\nerror_log %s/error.log info;\n", dir, dir)
	b.WriteString("events { worker_connections 256; }\n")
	fmt.Fprintf(&b, "http {\n  access_log off;\n")
	for _, temp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "  %s_temp_path %s/%s;\n", temp, dir, temp)
	}
	fmt.Fprintf(&b, "%s\n}\n", http)
	cfg := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", cfg}
	if out, err := exec.Command(bin, append(args, "-t", "-q")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t rejects the test's configuration: %v\n%s\n%s", err, out, b.String())
	}
	runPeer(t, "nginx", dir, addr, bin, args...)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error log:\n%s", log)
		}
	})
}

// lookPeer finds a peer's binary, or skips (or fails) t: "" then.
func lookPeer(t testing.TB, name, pkg string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		for _, d := range []string{"/usr/sbin", "/sbin"} { // not on every user's PATH
			if _, serr := os.Stat(filepath.Join(d, name)); serr == nil {
				return filepath.Join(d, name)
			}
		}
		SkipOrFail(t, fmt.Sprintf("test needs %s (Debian package %s)", name, pkg))
		return ""
	}
	return bin
}

// runPeer starts bin with args, stops it when t ends (a minute at most in
// all), and waits until addr accepts connections, failing t if the
// process exits or 20 s pass first.
func runPeer(t testing.TB, name, dir, addr, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := os.Create(filepath.Join(dir, name+".out"))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		out.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel() // kills it
		<-exited
		out.Close()
		if t.Failed() {
			log, _ := os.ReadFile(out.Name())
			t.Logf("%s output:\n%s", name, log)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case werr := <-exited:
			exited <- werr // for the cleanup
			log, _ := os.ReadFile(out.Name())
			t.Fatalf("%s exited before listening on %s: %v\n%s", name, addr, werr, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s after 20 s: %v", name, addr, err)
		}
	}
}

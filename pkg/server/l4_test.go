package server

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/config"
)

// udpEcho serves a UDP echo on loopback that prefixes each reply with
// name, until the test ends.
func udpEcho(t *testing.T, name string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(name+" "), buf[:n]...), from)
		}
	}()
	return pc.LocalAddr().String()
}

// unusablePinPath is a pin path whose parent is a regular file, so the
// BPF data plane cannot open there, as on a host without bpffs.
func unusablePinPath(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(file, "weir")
}

// l4Config has an HTTP respond backend pair behind a TCP VIP and two UDP
// echoes behind a UDP VIP, on loopback.
func l4Config(t *testing.T, dataplane, pinPath string) (yaml, tcpVIP, udpVIP string) {
	t.Helper()
	p := freePorts(t, 4)
	tcpVIP = fmt.Sprintf("127.0.0.1:%d", p[0])
	udpVIP = fmt.Sprintf("127.0.0.1:%d", p[1])
	yaml = fmt.Sprintf(`
version: 1
bpf:
  pin_path: %q
services:
  - name: a
    kind: respond
    listen: ["127.0.0.1:%d"]
    status: 200
    body: "a"
  - name: b
    kind: respond
    listen: ["127.0.0.1:%d"]
    status: 200
    body: "b"
  - name: tcp-vip
    kind: l4
    protocol: tcp
    vip: %q
    dataplane: %s
    upstream:
      backends: ["127.0.0.1:%d", "127.0.0.1:%d"]
  - name: udp-vip
    kind: l4
    protocol: udp
    vip: %q
    dataplane: %s
    upstream:
      backends: [%q, %q]
`, pinPath, p[2], p[3], tcpVIP, dataplane, p[2], p[3], udpVIP, dataplane, udpEcho(t, "x"), udpEcho(t, "y"))
	return yaml, tcpVIP, udpVIP
}

// httpGetOnce sends one request on a new connection and returns the body.
func httpGetOnce(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
	resp, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read from %s: %v", addr, err)
	}
	_, body, ok := bytes.Cut(resp, []byte("\r\n\r\n"))
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 200 ")) || !ok {
		t.Fatalf("response through %s: %q", addr, resp)
	}
	return string(body)
}

// udpExchange sends msg from a new socket (a new flow) and returns the reply.
func udpExchange(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	// UDP may lose the first datagram while the flow is set up; a bounded
	// number of resends keeps the test about forwarding, not about loss.
	for range 10 {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n])
		}
	}
	t.Fatalf("no UDP reply through %s", addr)
	return ""
}

// checkL4Serves asserts that both VIPs reach both of their backends.
func checkL4Serves(t *testing.T, tcpVIP, udpVIP string) {
	t.Helper()
	seen := map[string]int{}
	for range 40 {
		seen[httpGetOnce(t, tcpVIP)]++
	}
	if len(seen) != 2 || seen["a"] == 0 || seen["b"] == 0 {
		t.Fatalf("TCP VIP: new connections reached %v, want both a and b", seen)
	}
	replies := map[string]int{}
	for i := range 40 {
		msg := fmt.Sprint("ping ", i)
		reply := udpExchange(t, udpVIP, msg)
		name, rest, _ := strings.Cut(reply, " ")
		if rest != msg {
			t.Fatalf("UDP reply %q to %q", reply, msg)
		}
		replies[name]++
	}
	if len(replies) != 2 {
		t.Fatalf("UDP VIP: new flows reached %v, want both x and y", replies)
	}
}

func TestL4UserspaceServesTCPAndUDP(t *testing.T) {
	yaml, tcpVIP, udpVIP := l4Config(t, "userspace", unusablePinPath(t))
	startServer(t, yaml)
	checkL4Serves(t, tcpVIP, udpVIP)
}

// Without a usable BPF data plane, auto services are proxied in userspace
// and the operator reads why exactly once.
func TestL4AutoFallsBackToUserspaceWithOneWarning(t *testing.T) {
	yaml, tcpVIP, udpVIP := l4Config(t, "auto", unusablePinPath(t))
	var logs testenv.Buffer
	startServerLogging(t, yaml, slog.New(slog.NewTextHandler(&logs, nil)))
	checkL4Serves(t, tcpVIP, udpVIP)
	warnings := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") {
			warnings++
			if !strings.Contains(line, "BPF data plane is unavailable") || !strings.Contains(line, "not a directory") {
				t.Errorf("warning does not say what is unavailable and why: %s", line)
			}
		}
	}
	if warnings != 1 {
		t.Fatalf("%d warnings for two auto services, want exactly 1:\n%s", warnings, logs.String())
	}
}

func TestL4BPFRefusesToStartWithoutTheDataPlane(t *testing.T) {
	yaml, tcpVIP, _ := l4Config(t, "bpf", unusablePinPath(t))
	yaml = strings.Replace(yaml, "    dataplane: bpf\n", "    dataplane: bpf\n    interface: lo\n", -1)
	cfg, err := config.Parse("bpf.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Listen()
	if err == nil {
		srv.Close()
		t.Fatal("Listen succeeded for dataplane: bpf without a BPF data plane")
	}
	for _, want := range []string{`service "tcp-vip" (bpf.yaml:`, "dataplane: bpf", "not a directory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	// Nothing stays bound: the HTTP listeners opened before are closed.
	if c, err := net.Dial("tcp", tcpVIP); err == nil {
		c.Close()
		t.Fatalf("the VIP %s accepts connections after a failed start", tcpVIP)
	}
}

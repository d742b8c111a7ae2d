package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
)

// scriptRun is `scripts/lab run` running in its own process group.
type scriptRun struct {
	cmd *exec.Cmd
	out *testenv.Buffer
	// done is closed once the script has exited, with err its result.
	done chan struct{}
	err  error
}

func startScriptRun(t *testing.T, name, attach string) *scriptRun {
	t.Helper()
	r := &scriptRun{out: &testenv.Buffer{}, done: make(chan struct{})}
	r.cmd = exec.Command("bash", Script(), "run", "--name", name, "--attach", attach)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start scripts/lab run: %v", err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		// A test that failed midway still leaves nothing behind.
		r.stop(30 * time.Second)
		exec.Command("bash", Script(), "down", "--name", name).Run()
	})
	return r
}

// stop sends the script SIGTERM and reports whether it exited within
// patience; past that it kills the script's process group.
func (r *scriptRun) stop(patience time.Duration) bool {
	select {
	case <-r.done:
		return true
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
		return true
	case <-time.After(patience):
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
		return false
	}
}

// httpGet sends one HTTP/1.0 request from the client and returns the body.
func httpGet(ctx context.Context, l *Lab, addr string) (string, error) {
	c, err := l.Dial(ctx, Client, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: lab\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	_, body, ok := strings.Cut(string(resp), "\r\n\r\n")
	if !ok || !strings.HasPrefix(string(resp), "HTTP/1.1 200 ") {
		return "", fmt.Errorf("GET http://%s/: unexpected response %q", addr, resp)
	}
	return body, nil
}

// waitServing waits until weir says it serves (every service has its
// first table: the IPv4 VIP may answer before the IPv6 one has) and
// answers through the IPv4 VIP, the script exits, or two minutes pass (run
// builds weir first).
func (r *scriptRun) waitServing(t *testing.T, l *Lab) {
	t.Helper()
	vip := netip.AddrPortFrom(VIP4, 80).String()
	deadline := time.Now().Add(2 * time.Minute)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			t.Fatalf("scripts/lab run exited (%v) before serving:\n%s", r.err, r.out)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, lastErr = httpGet(ctx, l, vip)
		cancel()
		if lastErr == nil && strings.Contains(r.out.String(), "weir is serving") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing answered on %s within 2 minutes (last: %v):\n%s", vip, lastErr, r.out)
}

// udpEcho sends msg to addr from the client and returns the replies that
// arrive within a second, concatenated.
func udpEcho(l *Lab, addr, msg string) (string, error) {
	pc, err := l.ListenPacket(Client, "udp", "0.0.0.0:0")
	if err != nil {
		return "", err
	}
	defer pc.Close()
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return "", err
	}
	if _, err := pc.WriteTo([]byte(msg), to); err != nil {
		return "", err
	}
	pc.SetReadDeadline(time.Now().Add(time.Second))
	var got strings.Builder
	buf := make([]byte, 1500)
	for range 4 { // the echo answers with its name, then msg
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			break
		}
		got.Write(buf[:n])
		if strings.Contains(got.String(), msg) {
			break
		}
	}
	if got.Len() == 0 {
		return "", errors.New("no reply from " + addr)
	}
	return got.String(), nil
}

// TestScriptRun runs `scripts/lab run` as a user would: weir in the
// balancer with examples/lab.yaml answers HTTP on both VIPs and echoes UDP
// from the backends, and SIGTERM to the script removes the whole lab; with
// --attach tc and xdp, weir's BPF data plane attached there.
func TestScriptRun(t *testing.T) {
	testenv.NeedRoot(t)
	if _, err := exec.LookPath("socat"); err != nil {
		testenv.SkipOrFail(t, "socat is not installed (scripts/provision installs it)")
	}
	for _, attach := range attaches {
		t.Run(attach, func(t *testing.T) { testScriptRun(t, attach) })
	}
}

func testScriptRun(t *testing.T, attach string) {
	if _, err := exec.LookPath("ethtool"); err != nil && attach != "tc" {
		testenv.SkipOrFail(t, "ethtool is not installed (scripts/provision installs it)")
	}
	l := &Lab{name: Name(t.Name()), attach: attach}
	run := startScriptRun(t, l.name, attach)
	run.waitServing(t, l)
	link, err := l.Exec(Balancer, "ip", "link", "show", ClientInterface)
	if err != nil {
		t.Fatal(err)
	}
	if hasXDP := strings.Contains(link, "prog/xdp"); hasXDP != (attach == "xdp") {
		t.Errorf("--attach %s: the balancer's %s has an XDP program: %t\n%s", attach, ClientInterface, hasXDP, link)
	}

	backends := map[string]bool{"b1\n": true, "b2\n": true, "b3\n": true}
	for _, vip := range []netip.Addr{VIP4, VIP6} {
		addr := netip.AddrPortFrom(vip, 80).String()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		body, err := httpGet(ctx, l, addr)
		cancel()
		if err != nil || !backends[body] {
			t.Errorf("GET http://%s/ = %q, %v; want a backend's name\n%s", addr, body, err, run.out)
		}
	}
	echo := netip.AddrPortFrom(VIP4, 5353).String()
	if got, err := udpEcho(l, echo, "hello lab\n"); err != nil || !strings.HasPrefix(got, "b") || !strings.Contains(got, "hello lab") {
		t.Errorf("UDP echo through %s = %q, %v; want a backend's name and the message", echo, got, err)
	}

	if !run.stop(30 * time.Second) {
		t.Fatalf("scripts/lab run did not stop within 30 s of SIGTERM:\n%s", run.out)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), l.name+"-") {
		t.Errorf("SIGTERM left namespaces of lab %s:\n%s\nscript output:\n%s", l.name, out, run.out)
	}
}

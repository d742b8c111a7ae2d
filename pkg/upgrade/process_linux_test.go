package upgrade

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
)

// The test binary re-executes itself as a new weir process: these
// variables name its role and upgrade socket.
const (
	roleEnv = "WEIR_UPGRADE_TEST_ROLE"
	pathEnv = "WEIR_UPGRADE_TEST_PATH"
)

// Roles of the re-executed test binary.
const (
	// roleServe receives the sockets, serves the connection and the
	// datagram queued before the handoff, reports ready, then serves
	// one more connection, made after the old process stopped.
	roleServe = "serve"
	// roleCrash receives the sockets and exits at once, without a word.
	roleCrash = "crash"
	// roleRefused expects Receive to fail, as the old process refuses it.
	roleRefused = "refused"
)

// Exit codes of the roles; anything else is a failure they print.
const (
	exitServed  = 0
	exitCrashed = 7
	exitFailed  = 3
)

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Getenv(pathEnv)))
	}
	os.Exit(m.Run())
}

// runRole is the new process.
func runRole(role, path string) int {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	in, err := Receive(ctx, path)
	switch {
	case role == roleRefused && err != nil:
		fmt.Println("refused:", err)
		return exitServed
	case err != nil:
		fmt.Fprintln(os.Stderr, "Receive:", err)
		return exitFailed
	case role == roleCrash:
		return exitCrashed
	case role != roleServe:
		fmt.Fprintln(os.Stderr, "unexpected role", role, "with", len(in.Sockets()), "sockets")
		return exitFailed
	}
	defer in.Close()
	if err := serve(ctx, in); err != nil {
		fmt.Fprintln(os.Stderr, err)
		in.Abort(err)
		return exitFailed
	}
	return exitServed
}

// serve adopts "web" and "dns", answers what was queued, reports ready,
// and answers one connection made after that.
func serve(ctx context.Context, in *Inheritance) error {
	var web net.Listener
	var dns net.PacketConn
	for _, s := range in.Sockets() {
		var err error
		switch s.Network {
		case NetworkTCP:
			web, err = in.Listener(s.Service, s.Addr, s.Index, 0)
		case NetworkUDP:
			dns, err = in.PacketConn(s.Service, s.Addr, s.Index)
		}
		if err != nil {
			return err
		}
	}
	if web == nil || dns == nil {
		return errors.New("web or dns was not inherited")
	}
	defer web.Close()
	defer dns.Close()
	deadline, _ := ctx.Deadline()
	web.(*net.TCPListener).SetDeadline(deadline)
	dns.SetDeadline(deadline)
	if err := answerOne(web, "served by"); err != nil {
		return err
	}
	buf := make([]byte, 64)
	_, from, err := dns.ReadFrom(buf)
	if err != nil {
		return err
	}
	if _, err := dns.WriteTo(fmt.Appendf(nil, "answered by %d", os.Getpid()), from); err != nil {
		return err
	}
	if err := in.Ready(ctx); err != nil {
		return err
	}
	return answerOne(web, "still served by")
}

func answerOne(ln net.Listener, what string) error {
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = fmt.Fprintf(c, "%s %d", what, os.Getpid())
	return err
}

// startRole starts the test binary (or bin) in role on path.
func startRole(t *testing.T, bin, role, path string, attr *syscall.SysProcAttr) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^$")
	// Under -race, a process sleeps a second before exiting unless told.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), roleEnv+"="+role, pathEnv+"="+path, "GORACE="+gorace)
	cmd.Dir = filepath.Dir(bin)
	cmd.SysProcAttr = attr
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil { // waitExit was not reached
			cmd.Process.Kill() // only the process this test started
			cmd.Wait()
		}
	})
	return cmd, &out
}

// waitExit waits for cmd within testTimeout and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd, out *bytes.Buffer) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("wait: %v", err)
		}
		return cmd.ProcessState.ExitCode()
	case <-time.After(testTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the new process did not exit; it said:\n%s", out)
		return -1
	}
}

func testBinary(t *testing.T) string {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestHandoffAcrossProcesses hands a TCP listener and a UDP socket to
// another process, which serves what was queued before the handoff and
// goes on serving after this one stopped listening.
func TestHandoffAcrossProcesses(t *testing.T) {
	web := listenTCP(t, "127.0.0.1:0", false)
	dns := listenUDP(t, "127.0.0.1:0")
	sent := []Socket{socketOf(t, "web", 0, web), socketOf(t, "dns", 0, dns)}
	queued, err := net.Dial("tcp", web.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer queued.Close()
	client, err := net.Dial("udp", dns.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	fmt.Fprint(client, "question")

	path := socketPath(t)
	cmd, out := startRole(t, testBinary(t), roleServe, path, nil)
	ctx := testContext(t)
	h, err := Offer(ctx, path, sent) // retries until the new process listens
	if err != nil {
		t.Fatalf("Offer: %v\nthe new process said:\n%s", err, out)
	}
	defer h.Close()
	pid := strconv.Itoa(cmd.Process.Pid)
	if got := readAll(t, queued); got != "served by "+pid {
		t.Errorf("the queued connection got %q, want it served by pid %s", got, pid)
	}
	client.SetReadDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, 64)
	if n, err := client.Read(buf); err != nil || string(buf[:n]) != "answered by "+pid {
		t.Errorf("the queued datagram got %q, %v", buf[:n], err)
	}
	if err := h.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v\nthe new process said:\n%s", err, out)
	}
	if h.PeerPID() != cmd.Process.Pid {
		t.Errorf("peer pid %d, want %d", h.PeerPID(), cmd.Process.Pid)
	}

	// The old process stops accepting and lets go of its descriptors.
	web.Close()
	dns.Close()
	closeSockets(sent)
	after, err := net.Dial("tcp", web.Addr().String())
	if err != nil {
		t.Fatalf("the port closed with the old process: %v", err)
	}
	defer after.Close()
	if got := readAll(t, after); got != "still served by "+pid {
		t.Errorf("a connection after the handoff got %q", got)
	}
	if code := waitExit(t, cmd, out); code != exitServed {
		t.Fatalf("the new process exited with %d:\n%s", code, out)
	}
}

// TestNewProcessCrashes checks that the old process learns of a new
// process that dies after receiving the sockets, and keeps serving.
func TestNewProcessCrashes(t *testing.T) {
	web := listenTCP(t, "127.0.0.1:0", false)
	path := socketPath(t)
	cmd, out := startRole(t, testBinary(t), roleCrash, path, nil)
	ctx := testContext(t)
	h, err := Offer(ctx, path, []Socket{socketOf(t, "web", 0, web)})
	if err == nil {
		err = h.Wait(ctx)
	}
	if !errors.Is(err, ErrPeerGone) {
		t.Fatalf("the old process got %v, want ErrPeerGone\nthe new process said:\n%s", err, out)
	}
	if code := waitExit(t, cmd, out); code != exitCrashed {
		t.Fatalf("the new process exited with %d, want %d:\n%s", code, exitCrashed, out)
	}
	checkServes(t, web)
}

// TestAnotherUserIsRefused runs the new process as nobody: the old
// process (root) must refuse to hand it anything.
func TestAnotherUserIsRefused(t *testing.T) {
	testenv.NeedRoot(t)
	base, err := os.MkdirTemp("", "wx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	// nobody must reach the binary and own the socket's directory.
	bin := filepath.Join(base, "upgrade.test")
	copyFile(t, testBinary(t), bin)
	dir := filepath.Join(base, "n")
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "u.sock")
	cmd, out := startRole(t, bin, roleRefused, path, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}})

	web := listenTCP(t, "127.0.0.1:0", false)
	_, err = Offer(testContext(t), path, []Socket{socketOf(t, "web", 0, web)})
	if !errors.Is(err, ErrPeerCredentials) || !strings.Contains(err.Error(), "runs as uid 65534") {
		t.Fatalf("Offer = %v, want ErrPeerCredentials\nthe new process said:\n%s", err, out)
	}
	if code := waitExit(t, cmd, out); code != exitServed {
		t.Fatalf("the new process (nobody) exited with %d:\n%s", code, out)
	}
	checkServes(t, web)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

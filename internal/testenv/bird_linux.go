package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// BIRD is a BIRD 2 daemon (Debian bird2) a test started, with a control
// socket and log of its own.
type BIRD struct {
	t    testing.TB
	sock string
	// Log is BIRD's log file.
	Log string
}

// StartBIRD runs bird with config (the body of bird.conf, to which the
// log file's "log" line and a log time format with milliseconds are
// prepended) in the network namespace ns, until the test ends. It skips
// or fails t without bird and birdc.
func StartBIRD(t testing.TB, ns netns.NsHandle, config string) *BIRD {
	t.Helper()
	for _, tool := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(tool); err != nil {
			SkipOrFail(t, fmt.Sprintf("test needs %s (Debian package bird2; scripts/provision installs it): %v", tool, err))
		}
	}
	dir := t.TempDir()
	b := &BIRD{t: t, sock: filepath.Join(dir, "bird.ctl"), Log: filepath.Join(dir, "bird.log")}
	conf := filepath.Join(dir, "bird.conf")
	full := fmt.Sprintf("log %q all;\ntimeformat log \"%%F %%T.%%3f\";\n%s", b.Log, config) // BIRDLogTime reads that format
	if err := os.WriteFile(conf, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "bird.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("bird", "-f", "-c", conf, "-s", b.sock, "-P", filepath.Join(dir, "bird.pid"))
	cmd.Stdout, cmd.Stderr = out, out
	// The child inherits the namespace of the thread that forks it.
	if err := InNetns(ns, cmd.Start); err != nil {
		t.Fatalf("start bird: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			logs, _ := os.ReadFile(b.Log)
			t.Logf("BIRD's log:\n%s", logs)
		}
	})
	b.Eventually(5*time.Second, "BIRD answers on its control socket", func() (bool, string) {
		s, err := b.Birdc("show status")
		return err == nil && strings.Contains(s, "Daemon is up and running"), s
	})
	return b
}

// Birdc runs one BIRD command and returns its output.
func (b *BIRD) Birdc(command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "birdc", append([]string{"-s", b.sock}, strings.Fields(command)...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc %s: %w: %s", command, err, out)
	}
	return string(out), nil
}

// Eventually polls cond every 20 ms until it holds, failing the test
// with what and cond's last description after timeout.
func (b *BIRD) Eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("not within %v: %s; last seen:\n%s", timeout, what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Established reports whether BIRD's protocol name is Established, with
// what birdc said.
func (b *BIRD) Established(name string) (bool, string) {
	s, err := b.Birdc("show protocols " + name)
	return err == nil && strings.Contains(s, "Established"), s
}

// Route returns BIRD's entry for prefix (show route PREFIX all), "" when
// it has none.
func (b *BIRD) Route(prefix netip.Prefix) string {
	b.t.Helper()
	s, err := b.Birdc("show route " + prefix.String() + " all")
	if strings.Contains(s, "Network not found") {
		return ""
	}
	if err != nil {
		b.t.Fatal(err)
	}
	if !strings.Contains(s, prefix.String()) {
		return ""
	}
	return s
}

// BIRDLogTime reads the time of a line of a BIRD log in the format
// StartBIRD and scripts/lab configure (timeformat log "%F %T.%3f"), which
// BIRD writes in local time, failing t if the line has none.
func BIRDLogTime(t testing.TB, line string) time.Time {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 2 {
		t.Fatalf("BIRD log line without a time: %q", line)
	}
	ts, err := time.ParseInLocation("2006-01-02 15:04:05.000", f[0]+" "+f[1], time.Local)
	if err != nil {
		t.Fatalf("BIRD log line %q: %v", line, err)
	}
	return ts
}

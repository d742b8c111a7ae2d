package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/admin"
)

// adminPoller reads /status from every admin address until stopped,
// counting the reads that failed and remembering the last pid each saw.
type adminPoller struct {
	clients map[string]*http.Client
	failed  atomic.Int64
	reads   atomic.Int64
	mu      sync.Mutex
	errs    []string
	pids    map[string]int
}

func newAdminPoller(tcpAddr, sock string) *adminPoller {
	// A connection per read: each read finds the socket by its path,
	// as a new client does, not over a connection kept alive to the
	// old process.
	unix := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &adminPoller{
		clients: map[string]*http.Client{
			"http://" + tcpAddr + "/status": {Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
			"http://localhost/status":       {Timeout: 5 * time.Second, Transport: unix},
		},
		pids: map[string]int{},
	}
}

// read reads every address once.
func (p *adminPoller) read() {
	for url, c := range p.clients {
		p.reads.Add(1)
		var st admin.Status
		resp, err := c.Get(url)
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		p.mu.Lock()
		if err != nil {
			p.failed.Add(1)
			if len(p.errs) < 10 {
				p.errs = append(p.errs, fmt.Sprintf("%s: %v", url, err))
			}
		} else {
			p.pids[url] = st.PID
		}
		p.mu.Unlock()
	}
}

// run reads until stop closes, at most for a minute.
func (p *adminPoller) run(stop <-chan struct{}) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			return
		default:
		}
		p.read()
		time.Sleep(2 * time.Millisecond)
	}
}

// waitPID polls until every address reports pid.
func (p *adminPoller) waitPID(t *testing.T, pid int, logs weirLog) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		p.read()
		p.mu.Lock()
		all := len(p.pids) == len(p.clients)
		for _, got := range p.pids {
			all = all && got == pid
		}
		seen := fmt.Sprint(p.pids)
		p.mu.Unlock()
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin endpoints report pids %s, want %d\n%s", seen, pid, logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAdminEndpointSurvivesUpgrades: the admin endpoint, on TCP (its
// socket handed over) and on a Unix socket (bound anew beside its path
// and renamed into place once serving), answers throughout a failed
// upgrade, an upgrade and a reload, and afterwards it is the successor
// that answers. (Bound at its path directly, the Unix socket of the
// successor that failed was left dead there: 17 of 122 reads failed.)
func TestAdminEndpointSurvivesUpgrades(t *testing.T) {
	lab := newUpgradeLab(t)
	tcpAddr, sock := freeAddr(t), filepath.Join(lab.dir, "admin.sock")
	adminYAML := fmt.Sprintf("admin:\n  listen: [%q, \"unix:%s\"]\n", tcpAddr, sock)
	lab.write(t, 2, adminYAML)
	logs := logFile(t)
	cur := lab.start(t, logs, "-c", lab.conf)
	lab.waitPIDFile(t, cur.cmd.Process.Pid)
	poll := newAdminPoller(tcpAddr, sock)
	poll.waitPID(t, cur.cmd.Process.Pid, logs)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { poll.run(stop); close(done) }()

	// A successor that fails after binding its admin sockets (an l4
	// VIP someone else holds) must leave the Unix socket's path to the
	// weir that serves on.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	lab.write(t, 2, fmt.Sprintf("  - {name: vip, kind: l4, protocol: tcp, vip: %q, dataplane: userspace, upstream: {backends: [%q]}}\n%s",
		held.Addr().String(), lab.backends[0], adminYAML))
	t.Logf("the successor started next must fail: its VIP %s is held by this test (bind: address already in use)", held.Addr())
	failing := lab.start(t, logs, "-u", "-c", lab.conf)
	cur.signal(t, syscall.SIGQUIT)
	if err := failing.waitExit(t, 20*time.Second); err == nil {
		t.Fatalf("the successor with a taken VIP exited cleanly\n%s", logs)
	}
	poll.waitPID(t, cur.cmd.Process.Pid, logs)
	lab.write(t, 2, adminYAML)

	// An upgrade: the successor first, then SIGQUIT.
	next := lab.start(t, logs, "-u", "-c", lab.conf)
	cur.signal(t, syscall.SIGQUIT)
	if err := cur.waitExit(t, 20*time.Second); err != nil {
		t.Fatalf("the old weir exited with %v\n%s", err, logs)
	}
	cur = next
	poll.waitPID(t, cur.cmd.Process.Pid, logs)

	// A reload: weir starts its successor itself.
	cur.signal(t, syscall.SIGHUP)
	adopted := lab.followReload(t, cur, logs)
	poll.waitPID(t, adopted.cmd.Process.Pid, logs)

	close(stop)
	<-done
	if n := poll.failed.Load(); n > 0 {
		t.Errorf("%d of %d admin reads failed during the upgrades: %v\n%s", n, poll.reads.Load(), poll.errs, logs)
	} else {
		t.Logf("%d admin reads across a failed upgrade, an upgrade and a reload, none failed", poll.reads.Load())
	}
	adopted.signal(t, syscall.SIGTERM)
}

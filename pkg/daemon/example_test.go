package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/weir-lb/weir/pkg/daemon"
)

// The start-up of a server that may run as a daemon: the same program is
// the command the operator runs and, re-executed by Start, the daemon.
// (Not run: it would start a daemon.)
func ExampleStart() {
	runAsDaemon, errorLog, pidFile := true, "/var/log/weir.log", "/run/weir.pid"

	n, err := daemon.FromEnv() // first, before anything can fail
	if err != nil {
		fmt.Fprintln(os.Stderr, "weir:", err)
	}
	if runAsDaemon && !n.Detached() {
		// The command: start the daemon, and exit 0 only once it serves.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		if _, err := daemon.Start(ctx, daemon.DetachOptions{Args: os.Args[1:], ErrorLog: errorLog}); err != nil {
			fmt.Fprintln(os.Stderr, "weir:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	defer n.Close()

	// The daemon (or a foreground run): every failure goes to the parent.
	fail := func(err error) {
		n.Fail(err)
		fmt.Fprintln(os.Stderr, "weir:", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:6188")
	if err != nil {
		fail(err)
	}
	if err := daemon.WritePIDFile(pidFile, os.Getpid()); err != nil {
		fail(err)
	}
	defer daemon.RemovePIDFile(pidFile, os.Getpid())
	if err := daemon.DropPrivileges("weir", ""); err != nil {
		fail(err)
	}
	n.Ready()
	serve(ln)
	n.Stopping()
}

func serve(net.Listener) {}

// A pid file outlives an upgrade: the old process removes it at exit only
// while it still names the old process.
func ExampleRemovePIDFile() {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("weir-example-%d.pid", os.Getpid()))
	const old, successor = 1000, 2000

	daemon.WritePIDFile(path, old)
	daemon.WritePIDFile(path, successor) // the upgraded process takes over
	daemon.RemovePIDFile(path, old)      // the old one exits: the file stays
	pid, err := daemon.ReadPIDFile(path)
	fmt.Println(pid, err)

	daemon.RemovePIDFile(path, successor) // the successor exits cleanly
	_, err = daemon.ReadPIDFile(path)
	fmt.Println(errors.Is(err, os.ErrNotExist))
	// Output:
	// 2000 <nil>
	// true
}

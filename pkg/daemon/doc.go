// Package daemon manages weir's process lifecycle: detaching from the
// terminal, telling whoever started weir that it is serving (the parent
// of a detached daemon, or systemd), the pid file, and dropping root once
// the sockets are bound and the BPF objects loaded.
//
// Go cannot fork a running runtime, so Start detaches by re-executing the
// program (/proc/self/exe) in a new session with standard input from
// /dev/null and standard output and error appended to error_log. The
// parent then waits on a pipe the child inherits: it returns nil only
// once the child has reported Ready, and otherwise an error carrying the
// child's own message, or its exit status and the last lines it logged.
// So `weir -d` exits 0 only when the daemon serves, and a daemon that
// cannot bind its port fails the command that started it.
//
// In the child, FromEnv returns a Notifier that reports to that pipe and,
// under systemd, over NOTIFY_SOCKET; a nil Notifier does nothing, so the
// same code runs in the foreground.
//
// The order weir follows at start-up is:
//
//	n, _ := daemon.FromEnv()          // first: takes the report pipe
//	cfg := load()                     // n.Fail(err) on any error below
//	bind listeners, load BPF objects
//	daemon.WritePIDFile(cfg.PIDFile, os.Getpid())
//	daemon.DropPrivileges(cfg.User, cfg.Group)
//	n.Ready()                         // the parent exits 0 here
//	serve; n.Stopping(); daemon.RemovePIDFile(cfg.PIDFile, os.Getpid())
package daemon

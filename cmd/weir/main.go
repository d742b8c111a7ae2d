// Command weir is an eBPF-assisted L4/L7 load balancer.
//
// Usage:
//
//	weir -c FILE     serve the configuration in FILE
//	weir -d -c FILE  the same as a daemon (or daemon: true)
//	weir -u -c FILE  take the sockets over from the running weir
//	weir -t -c FILE  check FILE and exit: 0 when valid (printing any
//	                 warnings), 1 with every error
//	weir status      print the services: the admin endpoint's view (-admin
//	                 ADDR, or -c FILE) and the L4 ones in the BPF data plane
//	weir -h          list the flags
//
// SIGTERM stops gracefully (requests in flight finish, within
// graceful_shutdown_timeout_seconds); SIGINT stops at once; SIGQUIT hands
// the listening sockets to a new weir started with -u, then drains and
// exits; SIGHUP starts that new weir itself, with the same configuration
// file, and upgrades into it; SIGUSR1 reopens the error log and the
// access logs (after logrotate renamed them).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/weir-lb/weir/pkg/accesslog"
	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/daemon"
	"github.com/weir-lb/weir/pkg/metrics"
	"github.com/weir-lb/weir/pkg/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with its inputs and outputs passed in, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "status" {
		return runStatus(args[1:], stdout, stderr)
	}
	// First of all: a daemon child takes its readiness pipe out of the
	// environment, so that no process it starts inherits it.
	notifier, err := daemon.FromEnv()
	if err != nil {
		fmt.Fprintf(stderr, "weir: %v\n", err)
		return 1
	}
	defer notifier.Close()
	fs := flag.NewFlagSet("weir", flag.ContinueOnError)
	fs.SetOutput(stderr)
	confPath := fs.String("c", "", "path of the YAML configuration `file` (required)")
	testOnly := fs.Bool("t", false, "check the configuration, print whether it is valid, and exit")
	detach := fs.Bool("d", false, "run as a daemon: return once it serves (or with its error), as daemon: true does")
	takeOver := fs.Bool("u", false, "upgrade: take the listening sockets over from the running weir (which gets SIGQUIT), through upgrade_sock")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: weir -c FILE [-t] [-d] [-u]\n       weir status [-pin DIR] [-c FILE]\n\nweir is an eBPF-assisted L4/L7 load balancer.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *confPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}

	if abs, err := filepath.Abs(*confPath); err == nil {
		*confPath = abs // a daemon and a reloaded weir run from elsewhere
	}
	loadStart := time.Now()
	cfg, err := config.Load(*confPath)
	loaded := time.Now()
	if err != nil {
		notifier.Fail(err)
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *testOnly {
		// Warnings do not fail the check: the file is valid, if
		// doubtful. They go where errors go, in the same form.
		for _, w := range cfg.Warnings {
			fmt.Fprintln(stderr, w)
		}
	}
	// threads is the worker parallelism: the Go scheduler runs the
	// services' goroutines on that many OS threads.
	runtime.GOMAXPROCS(cfg.Threads)
	if (*detach || cfg.Daemon) && !*testOnly && !notifier.Detached() {
		return startDaemon(args, cfg, stdout, stderr)
	}
	log, errorLog, err := openLog(cfg, stderr)
	if err != nil {
		notifier.Fail(err)
		fmt.Fprintf(stderr, "weir: %v\n", err)
		return 1
	}
	defer errorLog.Close()
	if !*testOnly {
		for _, w := range cfg.Warnings {
			log.Warn("configuration: "+w.Message, "at", w.Pos.String())
		}
		if _, err := raiseFDLimit(); err != nil {
			log.Warn("serving with the open files limit as it is", "err", err)
		}
	}
	build := buildInfo()
	opts := server.Options{Logger: log, Version: build.Version}
	if cfg.Admin != nil && !*testOnly {
		// Counting costs a little on every request: only when someone
		// can read the counts.
		opts.Metrics = metrics.New(build)
		opts.Metrics.ConfigLoaded(loaded, loaded.Sub(loadStart))
	}
	if !*testOnly {
		opts.AccessLogs = accesslog.NewWriters(accesslog.Options{})
		defer opts.AccessLogs.CloseAll()
	}
	srv, err := server.NewWith(cfg, opts)
	if err != nil {
		notifier.Fail(err)
		fmt.Fprintf(stderr, "%s: %v\n", *confPath, err)
		return 1
	}
	if *testOnly {
		fmt.Fprintf(stdout, "weir: configuration %s is valid\n", *confPath)
		return 0
	}
	p := &process{cfg: cfg, confPath: *confPath, srv: srv, log: log, notifier: notifier, upgrade: *takeOver,
		metrics: opts.Metrics, accessLogs: opts.AccessLogs, errorLog: errorLog}
	return p.run()
}

// buildInfo names this binary: its module version and the commit it was
// built from, as the go command stamped them.
func buildInfo() metrics.Build {
	b := metrics.Build{Version: "(devel)"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if info.Main.Version != "" {
		b.Version = info.Main.Version
	}
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value[:min(12, len(s.Value))]
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && b.Commit != "" {
		b.Commit += "-dirty"
	}
	return b
}

// startDaemon runs this weir again as a daemon and returns once it
// serves (0) or failed to start (1, with its error).
func startDaemon(args []string, cfg *config.Config, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pid, err := daemon.Start(ctx, daemon.DetachOptions{Args: absConfigArgs(args), ErrorLog: cfg.ErrorLog, Dir: "/"})
	if err != nil {
		fmt.Fprintf(stderr, "weir: the daemon did not start: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "weir: daemon serving, pid %d\n", pid)
	return 0
}

// absConfigArgs returns args with the -c path made absolute: the daemon
// runs in /.
func absConfigArgs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		switch {
		case (a == "-c" || a == "--c") && i+1 < len(out):
			if abs, err := filepath.Abs(out[i+1]); err == nil {
				out[i+1] = abs
			}
		case strings.HasPrefix(a, "-c=") || strings.HasPrefix(a, "--c="):
			name, value, _ := strings.Cut(a, "=")
			if abs, err := filepath.Abs(value); err == nil {
				out[i] = name + "=" + abs
			}
		}
	}
	return out
}

// openLog opens error_log (standard error when it has no path) for the
// server's structured log, at its level and in its format.
func openLog(cfg *config.Config, stderr io.Writer) (*slog.Logger, *errorLogFile, error) {
	out := &errorLogFile{w: stderr}
	if cfg.ErrorLog != "" {
		out.path = cfg.ErrorLog
		if err := out.Reopen(); err != nil {
			return nil, nil, fmt.Errorf("open error_log: %w", err)
		}
	}
	return slog.New(logHandler(cfg, out)), out, nil
}

// errorLogFile is the error log's destination: standard error, or a file that
// Reopen opens again at its path (SIGUSR1, after logrotate renamed it).
type errorLogFile struct {
	path string // empty: w is standard error, never reopened
	mu   sync.Mutex
	w    io.Writer
	f    *os.File
}

// Write writes one log record.
func (l *errorLogFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Reopen opens the path again and closes the file it replaces.
func (l *errorLogFile) Reopen() error {
	if l.path == "" {
		return nil
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f, l.w = f, f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Close closes the file, if any.
func (l *errorLogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

// logHandler writes to out at error_log's level, in its format.
func logHandler(cfg *config.Config, out io.Writer) slog.Handler {
	opts := &slog.HandlerOptions{Level: slogLevel(cfg.ErrorLogLevel)}
	if cfg.ErrorLogFormat == config.LogJSON {
		return slog.NewJSONHandler(out, opts)
	}
	return slog.NewTextHandler(out, opts)
}

// slogLevel is the slog level of error_log.level.
func slogLevel(l config.LogLevel) slog.Level {
	switch l {
	case config.LogDebug:
		return slog.LevelDebug
	case config.LogWarn:
		return slog.LevelWarn
	case config.LogError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

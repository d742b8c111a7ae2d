// Command weir is an eBPF-assisted L4/L7 load balancer.
//
// Usage:
//
//	weir -c FILE     serve the configuration in FILE
//	weir -t -c FILE  check FILE and exit: 0 when valid, 1 with every error
//	weir status      print the L4 services in the BPF data plane
//	weir -h          list the flags
//
// SIGTERM stops gracefully (requests in flight finish, within
// graceful_shutdown_timeout_seconds); SIGINT stops at once.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"

	"github.com/weir-lb/weir/pkg/config"
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
	fs := flag.NewFlagSet("weir", flag.ContinueOnError)
	fs.SetOutput(stderr)
	confPath := fs.String("c", "", "path of the YAML configuration `file` (required)")
	testOnly := fs.Bool("t", false, "check the configuration, print whether it is valid, and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: weir -c FILE [-t]\n       weir status [-pin DIR] [-c FILE]\n\nweir is an eBPF-assisted L4/L7 load balancer.\n\nFlags:\n")
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

	cfg, err := config.Load(*confPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// threads is the worker parallelism: the Go scheduler runs the
	// services' goroutines on that many OS threads.
	runtime.GOMAXPROCS(cfg.Threads)
	log, closeLog, err := openLog(cfg.ErrorLog, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "weir: %v\n", err)
		return 1
	}
	defer closeLog()
	srv, err := server.New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *confPath, err)
		return 1
	}
	if *testOnly {
		fmt.Fprintf(stdout, "weir: configuration %s is valid\n", *confPath)
		return 0
	}
	if err := srv.RunUntilSignal(); err != nil {
		log.Error("weir stopped", "err", err)
		fmt.Fprintf(stderr, "weir: %v\n", err)
		return 1
	}
	return 0
}

// openLog opens error_log (standard error when empty) for the server's
// structured log.
func openLog(path string, stderr io.Writer) (*slog.Logger, func(), error) {
	if path == "" {
		return slog.New(slog.NewTextHandler(stderr, nil)), func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("open error_log: %w", err)
	}
	return slog.New(slog.NewTextHandler(f, nil)), func() { f.Close() }, nil
}

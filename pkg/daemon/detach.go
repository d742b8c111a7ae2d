package daemon

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// ReadyFDEnv names the environment variable through which Start tells the
// daemon which inherited file descriptor carries its report. FromEnv
// reads it and removes it from the environment, so that processes the
// daemon starts later (a graceful upgrade) do not mistake themselves for
// a freshly detached daemon.
const ReadyFDEnv = "WEIR_DAEMON_READY_FD"

// DefaultReadyTimeout is how long Start waits for the daemon to report
// when DetachOptions.ReadyTimeout is zero: long enough to load BPF
// objects and bind many listeners on a busy host, short enough that a
// wedged start-up does not hang a deployment script.
const DefaultReadyTimeout = 30 * time.Second

// DetachOptions describes the daemon Start launches.
type DetachOptions struct {
	// Args are the daemon's arguments without the program name, usually
	// os.Args[1:], so that the daemon reads the same configuration. The
	// daemon's argv[0] is this process's, so ps shows the same name.
	Args []string
	// Env is the daemon's environment; nil means this process's. Start
	// adds ReadyFDEnv to it.
	Env []string
	// ErrorLog is the file the daemon's standard output and standard
	// error are appended to, created with mode 0640 if missing. Empty
	// means /dev/null: the daemon's output, panics included, is lost, and
	// Start's errors say so.
	ErrorLog string
	// Dir is the daemon's working directory; empty keeps this process's.
	// "/" keeps the daemon from holding a mount busy, but then relative
	// paths in Args no longer resolve: make them absolute first.
	Dir string
	// ReadyTimeout bounds the wait for the daemon's report; zero means
	// DefaultReadyTimeout. On expiry Start kills the daemon.
	ReadyTimeout time.Duration
}

// readyTimeout returns the effective timeout.
func (o *DetachOptions) readyTimeout() time.Duration {
	if o.ReadyTimeout > 0 {
		return o.ReadyTimeout
	}
	return DefaultReadyTimeout
}

// childEnv returns the daemon's environment: base (this process's when
// nil) without any stale ReadyFDEnv, plus ReadyFDEnv naming fd.
func childEnv(base []string, fd int) []string {
	if base == nil {
		base = os.Environ()
	}
	env := make([]string, 0, len(base)+1)
	for _, kv := range base {
		if !strings.HasPrefix(kv, ReadyFDEnv+"=") {
			env = append(env, kv)
		}
	}
	return append(env, fmt.Sprintf("%s=%d", ReadyFDEnv, fd))
}

// The report protocol: the daemon writes one message on the pipe and
// closes it. A message is readyMessage, or failPrefix followed by the
// error text; anything else, including nothing, means the daemon did not
// report.
const (
	readyMessage = "READY\n"
	failPrefix   = "FAIL\n"
	// maxReport bounds what the parent reads, so that a runaway writer
	// cannot make it buffer without limit.
	maxReport = 64 << 10
)

// reportKind is what a daemon's report says.
type reportKind int

const (
	reportNone reportKind = iota
	reportReady
	reportFailed
)

// parseReport decodes what the daemon wrote before closing the pipe.
func parseReport(data []byte) (reportKind, string) {
	switch {
	case string(data) == readyMessage:
		return reportReady, ""
	case bytes.HasPrefix(data, []byte(failPrefix)):
		msg := strings.TrimSpace(string(data[len(failPrefix):]))
		if msg == "" {
			msg = "no reason given"
		}
		return reportFailed, msg
	}
	return reportNone, ""
}

// failMessage encodes a failure report.
func failMessage(err error) []byte {
	msg := "no reason given"
	if err != nil {
		msg = err.Error()
	}
	if len(msg) > maxReport-len(failPrefix) {
		msg = msg[:maxReport-len(failPrefix)]
	}
	return []byte(failPrefix + msg)
}

// Log tails: how much of error_log Start quotes when the daemon died
// without a word.
const (
	tailLines = 10
	tailBytes = 4 << 10
)

// daemonLog is the file the daemon's output goes to, and where it stood
// when the daemon started, so that Start quotes this daemon's lines only.
type daemonLog struct {
	path  string // empty: /dev/null
	start int64
}

// describe returns the last lines the daemon wrote, as text to append to
// an error, or why there are none.
func (l daemonLog) describe() string {
	if l.path == "" {
		return "; its output was discarded because error_log is not set"
	}
	lines, err := tail(l.path, l.start)
	switch {
	case err != nil:
		return fmt.Sprintf("; cannot read %s: %v", l.path, err)
	case len(lines) == 0:
		return fmt.Sprintf("; it wrote nothing to %s", l.path)
	}
	return fmt.Sprintf("; last lines of %s:\n\t%s", l.path, strings.Join(lines, "\n\t"))
}

// tail returns up to tailLines non-empty lines from the end of the file
// at path, reading at most tailBytes and nothing before offset start.
func tail(path string, start int64) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	from := max(start, info.Size()-tailBytes)
	if from >= info.Size() {
		return nil, nil
	}
	buf := make([]byte, info.Size()-from)
	if _, err := f.ReadAt(buf, from); err != nil && err != io.EOF {
		return nil, err
	}
	if from > start {
		// The read began inside a line; drop its cut-off head.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	var lines []string
	for line := range strings.SplitSeq(string(buf), "\n") {
		if line = strings.TrimRight(line, "\r"); strings.TrimSpace(line) != "" {
			lines = append(lines, line)
		}
	}
	return lines[max(0, len(lines)-tailLines):], nil
}

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-lb/weir/pkg/config"
)

// TestErrorLogLevelAndFormat: error_log's level drops the lines below it,
// and its format makes text (key=value) or JSON lines, to the file at its
// path.
func TestErrorLogLevelAndFormat(t *testing.T) {
	tests := []struct {
		level    config.LogLevel
		format   config.LogFormat
		wantMsgs []string // of debug, info, warn and error lines logged
	}{
		{config.LogDebug, config.LogText, []string{"d", "i", "w", "e"}},
		{config.LogInfo, config.LogText, []string{"i", "w", "e"}},
		{config.LogWarn, config.LogJSON, []string{"w", "e"}},
		{config.LogError, config.LogJSON, []string{"e"}},
	}
	for _, tc := range tests {
		t.Run(string(tc.level)+"/"+string(tc.format), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "error.log")
			cfg := &config.Config{ErrorLog: path, ErrorLogLevel: tc.level, ErrorLogFormat: tc.format}
			log, closeLog, err := openLog(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("d", "k", "v")
			log.Info("i", "k", "v")
			log.Warn("w", "k", "v")
			log.Error("e", "k", "v")
			closeLog.Close()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				got = append(got, message(t, tc.format, line))
			}
			if strings.Join(got, ",") != strings.Join(tc.wantMsgs, ",") {
				t.Errorf("logged %q, want %q:\n%s", got, tc.wantMsgs, data)
			}
		})
	}
}

// message returns the msg of one log line in format, failing t if the
// line is not in that format.
func message(t *testing.T, format config.LogFormat, line string) string {
	t.Helper()
	if format == config.LogJSON {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["k"] != "v" {
			t.Fatalf("not a JSON line with k=v: %q (%v)", line, err)
		}
		msg, _ := rec["msg"].(string)
		return msg
	}
	if !strings.HasPrefix(line, "time=") || !strings.HasSuffix(line, " k=v") {
		t.Fatalf("not a text line with k=v: %q", line)
	}
	_, rest, _ := strings.Cut(line, " msg=")
	msg, _, _ := strings.Cut(rest, " ")
	return msg
}

// TestErrorLogToStandardError: without a path the log goes to standard
// error, in the configured format.
func TestErrorLogToStandardError(t *testing.T) {
	var stderr bytes.Buffer
	log, closeLog, err := openLog(&config.Config{ErrorLogLevel: config.LogInfo, ErrorLogFormat: config.LogJSON}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello", "k", "v")
	closeLog.Close()
	if message(t, config.LogJSON, strings.TrimSpace(stderr.String())) != "hello" {
		t.Fatalf("standard error got %q", stderr.String())
	}
}

// TestErrorLogReopens: after logrotate renames error_log, Reopen (what
// SIGUSR1 does) sends the next lines to a new file at the path.
func TestErrorLogReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "error.log")
	log, out, err := openLog(&config.Config{ErrorLog: path, ErrorLogFormat: config.LogText}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	log.Info("before")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	log.Info("between") // still to the renamed file, as for any daemon
	if err := out.Reopen(); err != nil {
		t.Fatal(err)
	}
	log.Info("after")
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), "msg=before") || !strings.Contains(string(old), "msg=between") || strings.Contains(string(old), "msg=after") {
		t.Errorf("rotated file:\n%s", old)
	}
	if !strings.Contains(string(cur), "msg=after") || strings.Contains(string(cur), "msg=before") {
		t.Errorf("new file:\n%s", cur)
	}
}

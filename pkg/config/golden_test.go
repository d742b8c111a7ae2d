package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// goldenCPUs stands in for runtime.NumCPU so that the default thread
// count in golden files does not depend on the machine.
const goldenCPUs = 4

// TestGolden parses every testdata/*.yaml and compares the outcome with
// the .golden file beside it: the exact error output for an invalid file,
// a dump of the Config with every default for a valid one. Files named
// ok_* must be valid and err_* invalid, so that a regression cannot turn
// a golden dump into a golden error unnoticed.
func TestGolden(t *testing.T) {
	setTokenModes(t)
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs found: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := parse(file, filepath.Dir(file), goldenCPUs, data)
			got := render(t, cfg, err)
			switch {
			case strings.HasPrefix(name, "ok_") && err != nil:
				t.Errorf("want a valid configuration, got errors:\n%s", got)
			case strings.HasPrefix(name, "err_") && err == nil:
				t.Errorf("want errors, got a configuration")
			case !strings.HasPrefix(name, "ok_") && !strings.HasPrefix(name, "err_"):
				t.Fatalf("name %s.yaml must start with ok_ or err_", name)
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (run go test -update after checking it)\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// tokenModes are the modes the admin token and sticky secret fixtures
// need: git records none but the executable bit, so a checkout has them
// 0644 or 0664.
var tokenModes = map[string]os.FileMode{
	"testdata/admin/token":         0o600,
	"testdata/admin/short.token":   0o600,
	"testdata/admin/open.token":    0o644,
	"testdata/sticky/secret":       0o600,
	"testdata/sticky/crlf.secret":  0o600,
	"testdata/sticky/open.secret":  0o644,
	"testdata/sticky/short.secret": 0o600,
	"testdata/sticky/empty.secret": 0o600,
}

// setTokenModes gives the admin token and sticky secret fixtures their
// modes.
func setTokenModes(t *testing.T) {
	t.Helper()
	for file, mode := range tokenModes {
		if err := os.Chmod(file, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// render turns a parse result into golden text, checking the result's
// shape: an *Errors and no Config, or a Config and no error.
func render(t *testing.T, cfg *Config, err error) string {
	t.Helper()
	if err == nil {
		if cfg == nil {
			t.Fatal("parse returned neither a Config nor an error")
		}
		return dump(cfg)
	}
	if cfg != nil {
		t.Error("parse returned a Config together with an error")
	}
	var errs *Errors
	if !errors.As(err, &errs) || len(*errs) == 0 {
		t.Fatalf("error %v (%T) is not a non-empty *Errors", err, err)
	}
	return err.Error() + "\n"
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestHelpListsEveryFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-h"}, &out, &errOut); code != 0 {
		t.Fatalf("weir -h exited %d", code)
	}
	for _, flag := range []string{"-c file", "-t"} {
		if !strings.Contains(errOut.String(), flag) {
			t.Errorf("weir -h does not list %q:\n%s", flag, errOut.String())
		}
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	quick, err := filepath.Abs(filepath.Join("..", "..", "examples", "quickstart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := write("bad.yaml", "version: 1\nthreads: two\nservices:\n  - name: lb\n    kind: http_proxy\n    listen: [\"127.0.0.1:1\"]\n    upstream:\n      backends: [\"127.0.0.1:2\"]\n      selection: round_robbin\n      hash_key: uri\n")
	shadowed := write("shadowed.yaml", "version: 1\nupstreams:\n  web: {backends: [\"127.0.0.1:2\"]}\nservices:\n  - name: lb\n    kind: http_proxy\n    listen: [\"127.0.0.1:1\"]\n    routes:\n      - {name: all, upstream: web}\n      - {name: api, match: {path: {prefix: /api}}, upstream: web}\n")
	doubtful := write("doubtful.yaml", "version: 1\nupstreams:\n  web: {backends: [\"127.0.0.1:2\"]}\n  spare: {backends: [\"127.0.0.1:3\"]}\nservices:\n  - name: lb\n    kind: http_proxy\n    listen: [\"127.0.0.1:1\"]\n    upstream: web\n")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  *regexp.Regexp
		wantErr  []*regexp.Regexp
	}{
		{"valid", []string{"-t", "-c", quick}, 0, regexp.MustCompile(`configuration .*quickstart.yaml is valid`), nil},
		{"every error with its position", []string{"-t", "-c", bad}, 1, nil, []*regexp.Regexp{
			regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(bad) + `:2:10: .*threads`),
			regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(bad) + `:9:18: .*round_robbin`),
		}},
		{"valid with warnings", []string{"-t", "-c", doubtful}, 0, regexp.MustCompile(`configuration .*doubtful.yaml is valid`), []*regexp.Regexp{
			regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(doubtful) + `:4:3: warning: upstreams.spare: no service or route uses this pool`),
		}},
		{"valid with a shadowed route", []string{"-t", "-c", shadowed}, 0, regexp.MustCompile(`configuration .*shadowed.yaml is valid`), []*regexp.Regexp{
			regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(shadowed) + `:10:9: warning: route "api" can never match: route "all" at ` + regexp.QuoteMeta(shadowed) + `:9:9 takes every request it would`),
		}},
		{"missing file", []string{"-t", "-c", filepath.Join(dir, "nope.yaml")}, 1, nil, []*regexp.Regexp{regexp.MustCompile(`nope.yaml`)}},
		{"no -c", []string{"-t"}, 2, nil, []*regexp.Regexp{regexp.MustCompile(`usage: weir -c FILE`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, &out, &errOut)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out.String(), errOut.String())
			}
			if tc.wantOut != nil && !tc.wantOut.MatchString(out.String()) {
				t.Errorf("stdout %q does not match %s", out.String(), tc.wantOut)
			}
			for _, re := range tc.wantErr {
				if !re.MatchString(errOut.String()) {
					t.Errorf("stderr does not match %s:\n%s", re, errOut.String())
				}
			}
		})
	}
}

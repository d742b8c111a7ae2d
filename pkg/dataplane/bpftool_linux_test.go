//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package dataplane

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
)

const bpftoolPath = "/usr/sbin/bpftool"

// TestBpftoolShowsFieldNames dumps every pinned map with bpftool and checks
// that BTF gave it named fields, as operators will read them.
func TestBpftoolShowsFieldNames(t *testing.T) {
	if _, err := os.Stat(bpftoolPath); err != nil {
		testenv.SkipOrFail(t, fmt.Sprintf("bpftool unavailable: %v", err))
	}
	f := newFixture(t, tcHook)
	svc := Service{ID: 1, VIP: vip4TCP, Proto: ProtoTCP, SNAT: snat4}
	table := sequentialTable(f.d.opts.TableSize, len(backends4))
	f.setService(svc, backends4, table)
	f.translate(testPacket{src: client4, dst: vip4TCP, proto: ProtoTCP, tcpFlags: tcpSYN}, backends4, table, snat4)

	entries, err := os.ReadDir(f.d.opts.PinPath)
	if err != nil {
		t.Fatal(err)
	}
	var pinned []string
	for _, e := range entries {
		pinned = append(pinned, e.Name())
	}
	var want []string
	for name := range pinnedMaps {
		want = append(want, name)
	}
	slices.Sort(want)
	if !slices.Equal(pinned, want) {
		t.Errorf("pinned %v, want %v", pinned, want)
	}

	for _, name := range want {
		t.Run(name, func(t *testing.T) {
			fields := dumpFieldNames(t, filepath.Join(f.d.opts.PinPath, name))
			for _, field := range pinnedMaps[name] {
				if !fields[field] {
					t.Errorf("bpftool dump of %s lacks field %q; has %v", name, field, fields)
				}
			}
		})
	}
}

// dumpFieldNames runs `bpftool -j map dump pinned path` and collects every
// object key in the formatted (BTF) output.
func dumpFieldNames(t *testing.T, path string) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bpftoolPath, "-j", "map", "dump", "pinned", path).Output()
	if err != nil {
		t.Fatalf("bpftool map dump pinned %s: %v", path, err)
	}
	var dump []struct {
		Formatted json.RawMessage `json:"formatted"`
	}
	if err := json.Unmarshal(out, &dump); err != nil {
		t.Fatalf("decode bpftool output %.200q: %v", out, err)
	}
	if len(dump) == 0 || len(dump[0].Formatted) == 0 {
		t.Fatalf("bpftool printed no BTF-formatted entries: %.300s", out)
	}
	var formatted any
	if err := json.Unmarshal(dump[0].Formatted, &formatted); err != nil {
		t.Fatal(err)
	}
	fields := map[string]bool{}
	collectKeys(formatted, fields)
	return fields
}

func collectKeys(v any, into map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, sub := range v {
			if !strings.HasPrefix(k, "__") {
				into[k] = true
			}
			collectKeys(sub, into)
		}
	case []any:
		for _, sub := range v {
			collectKeys(sub, into)
		}
	}
}

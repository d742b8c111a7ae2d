package lb

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// ketamaGoldenPath holds the backends a real nginx picked with
// `hash $arg_k consistent;`; scripts/ketama-golden regenerates it.
const ketamaGoldenPath = "testdata/ketama_nginx.golden"

// ketamaGoldenUpstream is one upstream block of the golden file.
type ketamaGoldenUpstream struct {
	name     string
	backends []Backend
	keys     []string
	want     []string // the address nginx chose for keys[i]
}

// readKetamaGolden parses the golden file: "upstream NAME", then its
// "server ADDR WEIGHT" lines in config order, then "map KEY ADDR" lines.
// Lines starting with # are comments.
func readKetamaGolden(t *testing.T) []*ketamaGoldenUpstream {
	t.Helper()
	f, err := os.Open(ketamaGoldenPath)
	if err != nil {
		t.Fatalf("open golden file (regenerate with scripts/ketama-golden): %v", err)
	}
	defer f.Close()
	var ups []*ketamaGoldenUpstream
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if err := parseKetamaGoldenLine(&ups, fields); err != nil {
			t.Fatalf("%s:%d: %v", ketamaGoldenPath, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", ketamaGoldenPath, err)
	}
	return ups
}

func parseKetamaGoldenLine(ups *[]*ketamaGoldenUpstream, fields []string) error {
	switch {
	case len(fields) == 2 && fields[0] == "upstream":
		*ups = append(*ups, &ketamaGoldenUpstream{name: fields[1]})
		return nil
	case len(*ups) == 0:
		return fmt.Errorf("%q before the first upstream line", strings.Join(fields, " "))
	case len(fields) == 3 && fields[0] == "server":
		u := (*ups)[len(*ups)-1]
		w, err := strconv.Atoi(fields[2])
		if err != nil {
			return fmt.Errorf("weight %q: %v", fields[2], err)
		}
		b, err := NewBackend(fields[1], w)
		if err != nil {
			return err
		}
		if b.Addr != fields[1] {
			// nginx hashes the name as written: the golden file is only
			// meaningful for names already in weir's normal form.
			return fmt.Errorf("server %q normalises to %q", fields[1], b.Addr)
		}
		u.backends = append(u.backends, b)
		return nil
	case len(fields) == 3 && fields[0] == "map":
		u := (*ups)[len(*ups)-1]
		u.keys = append(u.keys, fields[1])
		u.want = append(u.want, fields[2])
		return nil
	}
	return fmt.Errorf("unrecognised line %q", strings.Join(fields, " "))
}

func TestKetamaMatchesNginx(t *testing.T) {
	ups := readKetamaGolden(t)
	// The file must exercise what weir's compatibility rests on.
	var weighted, large bool
	for _, u := range ups {
		large = large || len(u.backends) >= 5
		for _, b := range u.backends {
			weighted = weighted || b.Weight > 1
		}
	}
	if len(ups) == 0 || !weighted || !large {
		t.Fatalf("golden file has %d upstreams, weighted=%v, 5+ backends=%v: regenerate it", len(ups), weighted, large)
	}
	for _, u := range ups {
		t.Run(u.name, func(t *testing.T) {
			if len(u.keys) < 100 {
				t.Fatalf("only %d keys", len(u.keys))
			}
			s := hashTestBuild(t, Ketama{}, u.backends)
			for i, key := range u.keys {
				got := u.backends[hashTestFirst(t, s, []byte(key))].Addr
				if got != u.want[i] {
					t.Errorf("key %q: weir picks %s, nginx picked %s", key, got, u.want[i])
				}
			}
		})
	}
}

func TestNginxHostPort(t *testing.T) {
	cases := []struct{ server, host, port string }{
		{"127.0.0.1:8080", "127.0.0.1", "8080"},
		{"[::1]:80", "[::1]", "80"},
		{"[2001:db8::1]:443", "[2001:db8::1]", "443"},
		{"backend.example.com:8080", "backend.example.com", "8080"},
		{"unix:/run/app.sock", "/run/app.sock", ""},
		{"UNIX:/run/app.sock", "/run/app.sock", ""},
		{"unix:/run/app:8080", "/run/app:8080", ""},
		{"backend.example.com", "backend.example.com", ""},
		{"host:http", "host:http", ""},
		{"127.0.0.1:", "127.0.0.1", ""},
		{"", "", ""},
	}
	for _, tc := range cases {
		host, port := nginxHostPort(tc.server)
		if host != tc.host || port != tc.port {
			t.Errorf("nginxHostPort(%q) = %q, %q; want %q, %q", tc.server, host, port, tc.host, tc.port)
		}
	}
}

// ketamaShareTolerance is the documented spread bound for Ketama: a
// backend's share of keys is within 30% of its weight share, plus one
// percentage point for the sampling noise of the test's keys. A backend's
// points cover a sum of 160·weight random arcs, whose relative spread is
// 1/sqrt(160·weight), 8% for weight 1; 30% is nearly four of those.
func ketamaShareTolerance(want float64) float64 { return 0.3*want + 0.01 }

func TestKetamaShares(t *testing.T) {
	keys := hashTestKeys(100000, 6)
	for _, tc := range hashTestShareCases {
		t.Run(tc.name, func(t *testing.T) {
			backends := hashTestBackends(t, tc.weights...)
			shares := hashTestShares(t, hashTestBuild(t, Ketama{}, backends), keys, len(backends))
			for i, got := range shares {
				want := hashTestWeightShare(backends, i)
				if d := got - want; d > ketamaShareTolerance(want) || -d > ketamaShareTolerance(want) {
					t.Errorf("backend %d (weight %d): share %.4f, want %.4f ± %.4f", i, backends[i].Weight, got, want, ketamaShareTolerance(want))
				}
			}
		})
	}
}

// hashTestAddrs maps each key to the address of its first candidate.
func hashTestAddrs(t *testing.T, algo Algorithm, backends []Backend, keys [][]byte) []string {
	t.Helper()
	s := hashTestBuild(t, algo, backends)
	addrs := make([]string, len(keys))
	for i, k := range keys {
		addrs[i] = backends[hashTestFirst(t, s, k)].Addr
	}
	return addrs
}

func TestKetamaRemovalMovesOnlyTheRemovedBackendsKeys(t *testing.T) {
	keys := hashTestKeys(20000, 7)
	for _, n := range []int{3, 10, 100} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			all := hashTestUniform(t, n, 1)
			gone := all[n/2]
			rest := append(append([]Backend(nil), all[:n/2]...), all[n/2+1:]...)
			before := hashTestAddrs(t, Ketama{}, all, keys)
			after := hashTestAddrs(t, Ketama{}, rest, keys)
			moved := 0
			for i := range keys {
				if before[i] == after[i] {
					continue
				}
				moved++
				if before[i] != gone.Addr {
					t.Fatalf("key %x moved from %s to %s, though only %s left", keys[i], before[i], after[i], gone.Addr)
				}
			}
			share := 1 / float64(n)
			if got := float64(moved) / float64(len(keys)); got > share+ketamaShareTolerance(share) {
				t.Errorf("removing 1 of %d moved %.4f of keys, want at most %.4f", n, got, share+ketamaShareTolerance(share))
			}
		})
	}
}

func TestKetamaAdditionMovesKeysOnlyToTheNewBackend(t *testing.T) {
	keys := hashTestKeys(20000, 8)
	for _, n := range []int{3, 10, 100} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			grown := hashTestUniform(t, n+1, 1)
			added := grown[n]
			before := hashTestAddrs(t, Ketama{}, grown[:n], keys)
			after := hashTestAddrs(t, Ketama{}, grown, keys)
			moved := 0
			for i := range keys {
				if before[i] == after[i] {
					continue
				}
				moved++
				if after[i] != added.Addr {
					t.Fatalf("key %x moved from %s to %s, not to the new %s", keys[i], before[i], after[i], added.Addr)
				}
			}
			share := 1 / float64(n+1)
			if got := float64(moved) / float64(len(keys)); got > share+ketamaShareTolerance(share) {
				t.Errorf("adding 1 to %d moved %.4f of keys, want at most %.4f", n, got, share+ketamaShareTolerance(share))
			}
		})
	}
}

func TestKetamaRingTooLarge(t *testing.T) {
	// Ten backends at MaxWeight are 16,000,000 points; eleven exceed 16 Mi.
	_, err := Ketama{}.Build(hashTestUniform(t, 11, MaxWeight))
	if !errors.Is(err, ErrRingTooLarge) {
		t.Fatalf("Build: got %v, want ErrRingTooLarge", err)
	}
}

func TestKetamaDuplicatePointsKeepTheFirstBackend(t *testing.T) {
	// Two backends with the same address have identical points; each hash
	// must survive once, owned by the first in list order.
	b := hashTestBackends(t, 1)[0]
	s := hashTestBuild(t, Ketama{}, []Backend{b, b}).(*ketamaSelector)
	if len(s.hashes) != ketamaPointsPerWeight {
		t.Fatalf("%d points, want %d", len(s.hashes), ketamaPointsPerWeight)
	}
	for i, o := range s.owners {
		if o != 0 {
			t.Fatalf("point %d owned by backend %d, want 0", i, o)
		}
	}
}

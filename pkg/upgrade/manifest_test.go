package upgrade

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func validEntry(service string, index int) entry {
	return entry{Service: service, Addr: "127.0.0.1:80", Index: index, Network: NetworkTCP, Bound: netip.MustParseAddrPort("127.0.0.1:80")}
}

func TestDecode(t *testing.T) {
	good := validEntry("web", 0)
	goodJSON, _ := json.Marshal(good)
	tests := []struct {
		name   string
		record string
		want   error // nil: decodes
		text   string
	}{
		{"offer", `{"type":"offer","proto":"weir-upgrade","version":1,"count":3}`, nil, ""},
		{"offer of nothing", `{"type":"offer","proto":"weir-upgrade","version":1}`, nil, ""},
		{"sockets", `{"type":"sockets","sockets":[` + string(goodJSON) + `]}`, nil, ""},
		{"ready", `{"type":"ready"}`, nil, ""},
		{"abort", `{"type":"abort","reason":"bad config"}`, nil, ""},
		{"version 2", `{"type":"offer","proto":"weir-upgrade","version":2,"count":1}`, nil, ""},
		{"state", `{"type":"state","data":"e30=","last":true}`, nil, ""},
		{"state too large", fmt.Sprintf(`{"type":"state","data":%q}`, base64.StdEncoding.EncodeToString(make([]byte, stateChunkBytes+1))), ErrManifest, "at most 32768"},
		{"newer version", `{"type":"offer","proto":"weir-upgrade","version":3,"count":1}`, ErrVersion, "version 3"},
		{"older version", `{"type":"offer","proto":"weir-upgrade","version":0,"count":1}`, ErrVersion, "version 0"},
		{"stranger", `{"type":"offer","proto":"other","version":1}`, ErrProtocol, `"other"`},
		{"too many sockets", fmt.Sprintf(`{"type":"offer","proto":"weir-upgrade","version":1,"count":%d}`, maxSockets+1), ErrManifest, "at most"},
		{"negative count", `{"type":"offer","proto":"weir-upgrade","version":1,"count":-1}`, ErrManifest, "-1"},
		{"unknown field", `{"type":"ready","colour":"red"}`, ErrManifest, "colour"},
		{"unknown option", `{"type":"sockets","sockets":[{"service":"a","addr":"x","index":0,"network":"tcp","bound":"127.0.0.1:1","options":{"zerocopy":true}}]}`, ErrManifest, "zerocopy"},
		{"trailing data", `{"type":"ready"}{"type":"ready"}`, ErrManifest, "after its JSON"},
		{"not JSON", `ready`, ErrManifest, "undecodable"},
		{"empty", ``, ErrManifest, "undecodable"},
		{"unknown type", `{"type":"hello"}`, ErrProtocol, `"hello"`},
		{"no sockets", `{"type":"sockets"}`, ErrManifest, "0 entries"},
		{"bad bound", `{"type":"sockets","sockets":[{"service":"a","addr":"x","index":0,"network":"tcp","bound":"nonsense","options":{}}]}`, ErrManifest, "undecodable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode([]byte(tc.record))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("decode = %v, want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
}

func TestEntryValidate(t *testing.T) {
	long := strings.Repeat("x", maxNameBytes+1)
	tests := []struct {
		name   string
		change func(*entry)
		text   string // empty: valid
	}{
		{"valid", func(*entry) {}, ""},
		{"udp", func(e *entry) { e.Network = NetworkUDP }, ""},
		{"ipv6", func(e *entry) { e.Bound = netip.MustParseAddrPort("[2001:db8::1]:443") }, ""},
		{"no service", func(e *entry) { e.Service = "" }, "service name"},
		{"long service", func(e *entry) { e.Service = long }, "service name"},
		{"no address", func(e *entry) { e.Addr = "" }, "configured address"},
		{"negative index", func(e *entry) { e.Index = -1 }, "negative listener index"},
		{"reuseport member", func(e *entry) { e.Member = 3 }, ""},
		{"negative member", func(e *entry) { e.Member = -1 }, "socket -1 of a group"},
		{"member past the limit", func(e *entry) { e.Member = maxSockets }, "of a group"},
		{"unix network", func(e *entry) { e.Network = "unix" }, `network "unix"`},
		{"unbound", func(e *entry) { e.Bound = netip.AddrPort{} }, "bound address"},
		{"port zero", func(e *entry) { e.Bound = netip.MustParseAddrPort("127.0.0.1:0") }, "bound address"},
		{"negative fastopen", func(e *entry) { e.Options.FastOpen = -1 }, "TCP_FASTOPEN"},
		{"long device", func(e *entry) { e.Options.Device = long }, "device name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := validEntry("web", 0)
			tc.change(&e)
			err := e.validate()
			if tc.text == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("validate = %v, want ErrManifest mentioning %q", err, tc.text)
			}
		})
	}
}

// TestBatches checks that every record stays within both the descriptor
// and the byte limit, keeps the entries in order, and is full: it could
// not have taken the first entry of the next one.
func TestBatches(t *testing.T) {
	tests := []struct {
		name        string
		n           int
		serviceSize int
		wantRecords int // 0: decided by size
	}{
		{"none", 0, 8, 0},
		{"one", 1, 8, 1},
		{"exactly one record", maxFDsPerRecord, 8, 1},
		{"one more than a record", maxFDsPerRecord + 1, 8, 2},
		{"many", 1000, 8, 4},
		{"large entries split by size", 300, maxNameBytes, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			entries := make([]entry, tc.n)
			for i := range entries {
				entries[i] = validEntry(strings.Repeat("s", tc.serviceSize), i)
			}
			got, err := batches(entries)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantRecords != 0 && len(got) != tc.wantRecords {
				t.Errorf("%d records, want %d", len(got), tc.wantRecords)
			}
			next := 0
			for r, g := range got {
				b, err := encode(message{Type: msgSockets, Sockets: g})
				if err != nil || len(g) > maxFDsPerRecord {
					t.Fatalf("record of %d entries, %d bytes: %v", len(g), len(b), err)
				}
				for _, e := range g {
					if e.Index != next {
						t.Fatalf("entry %d out of order (want %d)", e.Index, next)
					}
					next++
				}
				if r < len(got)-1 && len(g) < maxFDsPerRecord {
					more, _ := json.Marshal(message{Type: msgSockets, Sockets: append(g[:len(g):len(g)], entries[next])})
					if len(more) <= maxRecordBytes {
						t.Errorf("record %d (%d entries, %d bytes) had room for the next entry", r, len(g), len(b))
					}
				}
			}
			if next != tc.n {
				t.Fatalf("%d entries in records, want %d", next, tc.n)
			}
		})
	}
}

func TestBatchesRefuseAHugeEntry(t *testing.T) {
	e := validEntry(strings.Repeat("s", maxRecordBytes), 0)
	if _, err := batches([]entry{e}); !errors.Is(err, ErrManifest) {
		t.Fatalf("batches = %v, want ErrManifest", err)
	}
}

func TestCheckUnique(t *testing.T) {
	if err := checkUnique([]entry{validEntry("a", 0), validEntry("a", 1), validEntry("b", 0)}); err != nil {
		t.Fatalf("distinct keys: %v", err)
	}
	err := checkUnique([]entry{validEntry("a", 0), validEntry("b", 0), validEntry("a", 0)})
	if !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), `service "a" listener 0`) {
		t.Fatalf("duplicate = %v, want ErrManifest naming the key", err)
	}
}

func TestReasonMessage(t *testing.T) {
	if m := reasonMessage(msgAbort, ""); m.Reason != "no reason given" {
		t.Errorf("empty reason became %q", m.Reason)
	}
	long := strings.Repeat("é", maxReasonBytes) // 2 bytes each
	m := reasonMessage(msgCancel, long)
	if len(m.Reason) > maxReasonBytes || !strings.HasPrefix(long, m.Reason) || len(m.Reason) < maxReasonBytes-1 {
		t.Errorf("long reason cut to %d bytes", len(m.Reason))
	}
	if _, err := decode(mustEncode(t, m)); err != nil {
		t.Errorf("cut reason does not decode: %v", err)
	}
}

func mustEncode(t testing.TB, m message) []byte {
	t.Helper()
	b, err := encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

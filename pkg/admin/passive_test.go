package admin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
)

// TestPassiveHealthAndBackupShown checks the status JSON and the page of
// an ejected backend, a backend both drained and ejected (the drain, which
// outlasts the ejection, is what the page says) and a backup.
func TestPassiveHealthAndBackupShown(t *testing.T) {
	var log testenv.Buffer
	e := serve(t, options(&log), &log, true)
	until := testNow.Add(90 * time.Second)
	e.state.SetEjected("web", "127.0.0.1:8081", until)
	e.state.SetEjected("web", "unix:/run/app.sock", until)
	e.state.SetEjected("web", "unix:/run/app.sock", until)
	e.state.addBackup("web", "127.0.0.1:8083")

	_, body := e.do(t, "GET", "/api/v1/status", "")
	var st struct {
		Services []struct {
			Name     string
			Backends []map[string]any
		}
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, body)
	}
	byAddr := map[string]map[string]any{}
	for _, s := range st.Services {
		if s.Name == "web" {
			for _, b := range s.Backends {
				byAddr[b["addr"].(string)] = b
			}
		}
	}
	jsonTests := []struct {
		addr      string
		ejected   bool
		until     any // the JSON value, nil when absent
		ejections float64
		backup    bool
	}{
		{"127.0.0.1:8081", true, until.Format(time.RFC3339), 1, false},
		{"unix:/run/app.sock", true, until.Format(time.RFC3339), 2, false},
		{"[::1]:8082", false, nil, 0, false},
		{"127.0.0.1:8083", false, nil, 0, true},
	}
	for _, tt := range jsonTests {
		b := byAddr[tt.addr]
		if b == nil {
			t.Fatalf("no backend %s in %s", tt.addr, body)
		}
		if b["ejected"] != tt.ejected || b["ejected_until"] != tt.until || b["ejections"] != tt.ejections || b["backup"] != tt.backup {
			t.Errorf("%s: ejected %v, ejected_until %v, ejections %v, backup %v; want %v, %v, %v, %v", tt.addr,
				b["ejected"], b["ejected_until"], b["ejections"], b["backup"], tt.ejected, tt.until, tt.ejections, tt.backup)
		}
	}

	_, page := e.do(t, "GET", "/", "")
	rows := pageRows(t, page)
	pageTests := []struct {
		key, state, ejected, backup, first string
	}{
		{"web 127.0.0.1:8081", "ejected until 12:01:30", "true", "false", "127.0.0.1:8081"},
		{"web unix:/run/app.sock", "drained", "true", "false", "unix:/run/app.sock"},
		{"web [::1]:8082", "enabled", "false", "false", "[::1]:8082"},
		{"web 127.0.0.1:8083", "enabled", "false", "true", "127.0.0.1:8083 backup"},
	}
	for _, tt := range pageTests {
		r, ok := rows[tt.key]
		if !ok {
			t.Fatalf("no row for %s", tt.key)
		}
		if r.cells[2] != tt.state || r.attrs["data-ejected"] != tt.ejected || r.attrs["data-backup"] != tt.backup || r.cells[0] != tt.first {
			t.Errorf("%s: state %q, data-ejected %q, data-backup %q, first cell %q; want %q, %q, %q, %q", tt.key,
				r.cells[2], r.attrs["data-ejected"], r.attrs["data-backup"], r.cells[0], tt.state, tt.ejected, tt.backup, tt.first)
		}
	}
	if !strings.Contains(page, `title="2 ejections by passive health"`) {
		t.Errorf("the page does not count the drained backend's ejections")
	}
}

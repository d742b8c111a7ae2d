package admin

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestPageShowsLimitsAndQueue: a backend with max_connections shows its
// requests in flight over its limit, and its pool the requests queued of
// the queue's size, marked bad once the queue refused one; a pool
// without limits shows neither.
func TestPageShowsLimitsAndQueue(t *testing.T) {
	page, assets, err := loadPage()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	st := Status{Version: "test", Started: now, Now: now, Services: []ServiceStatus{
		{Name: "app", Kind: "pool", Listeners: []string{}, Selection: "round_robin",
			Queue: &QueueStatus{Length: 3, Size: 50, Timeout: 2 * time.Second, Timeouts: 1, Full: 0, Waited: 9},
			Backends: []BackendStatus{{Addr: "127.0.0.1:8001", Weight: 1, Healthy: true, Enabled: true,
				InFlight: 7, MaxConnections: 8, Connections: 8}}},
		{Name: "plain", Kind: "pool", Listeners: []string{}, Selection: "round_robin",
			Backends: []BackendStatus{{Addr: "127.0.0.1:8002", Weight: 1, Healthy: true, Enabled: true, InFlight: 2}}},
	}}
	var buf bytes.Buffer
	if err := page.Execute(&buf, pageData{Status: st, CSS: assets.css, JS: assets.js}); err != nil {
		t.Fatal(err)
	}
	body := buf.String()
	rows := pageRows(t, body)
	if got := rows["app 127.0.0.1:8001"].cells[4]; got != "7 / 8" {
		t.Errorf("limited backend's in-flight cell %q, want 7 / 8", got)
	}
	if got := rows["plain 127.0.0.1:8002"].cells[4]; got != "2" {
		t.Errorf("unlimited backend's in-flight cell %q, want 2", got)
	}
	if !strings.Contains(body, `<dt>queued</dt><dd class="num bad">3 / 50</dd>`) {
		t.Error("the page does not show app's queue, marked bad after a timeout")
	}
	if strings.Count(body, "<dt>queued</dt>") != 1 {
		t.Error("a pool without limits shows a queue")
	}
}

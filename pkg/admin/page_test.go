package admin

import (
	"crypto/sha256"
	"encoding/base64"
	"maps"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/weir-lb/weir/internal/testenv"
)

// row is one backend row of the status page: its data attributes and
// the text of its cells.
type row struct {
	attrs map[string]string
	cells []string
}

// pageRows parses a status page (as served, or as a browser's DOM) and
// returns its backend rows by "service backend".
func pageRows(t testing.TB, page string) map[string]row {
	t.Helper()
	return tableRows(t, page, "data-backend", func(attrs map[string]string) string {
		return attrs["data-service"] + " " + attrs["data-backend"]
	})
}

// text returns the text under n.
func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

// TestPage checks that the page shows every backend in a row with stable
// data attributes and the cells an operator reads.
func TestPage(t *testing.T) {
	var log testenv.Buffer
	e := serve(t, options(&log), &log, true)
	resp, body := e.do(t, "GET", "/", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rows := pageRows(t, body)
	tests := []struct {
		key                      string
		health, enabled, drained string
		cells                    []string // the leading cells
	}{
		{"web 127.0.0.1:8081", "up", "true", "false", []string{"127.0.0.1:8081", "up", "enabled", "1", "2", "10.0", "0", "1.5s ago", "1.23ms", ""}},
		{"web [::1]:8082", "down", "true", "false", []string{"[::1]:8082", "down", "enabled", "2", "0", "0", "0.25", "1.0s ago", "1s", "dial tcp [::1]:8082: connection refused"}},
		{"web unix:/run/app.sock", "up", "false", "true", []string{"unix:/run/app.sock", "up", "drained", "1", "0", "0", "0", "never", "–", ""}},
		{"dns 192.0.2.10:80", "up", "true", "false", nil},
		{"vip 10.0.0.1:53", "up", "true", "false", []string{"10.0.0.1:53", "up", "enabled", "1", "1000", "3.0 MiB", "40", "0", "never", "–", ""}},
		{"broken 127.0.0.1:9", "down", "true", "false", nil},
	}
	if len(rows) != len(tests) {
		t.Errorf("%d backend rows, want %d", len(rows), len(tests))
	}
	for _, tt := range tests {
		r, ok := rows[tt.key]
		if !ok {
			t.Errorf("no row for %s", tt.key)
			continue
		}
		if r.attrs["data-health"] != tt.health || r.attrs["data-enabled"] != tt.enabled || r.attrs["data-drained"] != tt.drained {
			t.Errorf("%s: attributes %v, want health %s, enabled %s, drained %s", tt.key, r.attrs, tt.health, tt.enabled, tt.drained)
		}
		if tt.cells != nil && strings.Join(r.cells, "|") != strings.Join(tt.cells, "|") {
			t.Errorf("%s: cells\n %q\nwant\n %q", tt.key, r.cells, tt.cells)
		}
	}
	for _, want := range []string{"weir <span class=\"muted\">v1.2.3</span>", "pid 4242", "up 1h0m0s", "bpf", "generation", "round_robin"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

// TestPageBPF checks the BPF data plane's table: each interface's row
// says the hook asked for and what runs, marks an interface no longer
// configured and one where nothing runs, and the table is absent without
// the BPF data plane.
func TestPageBPF(t *testing.T) {
	var log testenv.Buffer
	e := serve(t, options(&log), &log, true)
	_, body := e.do(t, "GET", "/", "")
	want := map[string][]string{
		"eth0": {"eth0", "xdp", "xdp native", "tcx"},
		"eth1": {"eth1", "auto", "tcx", "–"},
		"eth2": {"eth2", "not configured", "tc filter", "–"},
		"eth3": {"eth3", "xdp", "none", "–"},
		"eth4": {"eth4", "xdp", "xdp generic", "tcx"},
	}
	rows := interfaceRows(t, body)
	if len(rows) != len(want) {
		t.Errorf("%d interface rows, want %d", len(rows), len(want))
	}
	for name, cells := range want {
		r, ok := rows[name]
		if !ok {
			t.Errorf("no row for interface %s", name)
			continue
		}
		if strings.Join(r.cells, "|") != strings.Join(cells, "|") {
			t.Errorf("%s: cells %q, want %q", name, r.cells, cells)
		}
	}
	if a := rows["eth0"].attrs; a["data-attach"] != "xdp" || a["data-hook"] != "xdp native" || a["data-tc"] != "tcx" {
		t.Errorf("eth0: attributes %v", a)
	}
	if !strings.Contains(body, `data-pin-path="/sys/fs/bpf/weir"`) {
		t.Error("the page does not say where the data plane is pinned")
	}
	if n := strings.Count(body, `class="bad"`); n != 2 {
		t.Errorf("%d cells marked bad, want 2 (eth2 not configured, eth3 not hooked)", n)
	}

	e.state.mu.Lock()
	e.state.status.BPF = nil
	e.state.mu.Unlock()
	if _, body := e.do(t, "GET", "/", ""); strings.Contains(body, "BPF data plane") {
		t.Error("the page shows a BPF data plane the status lacks")
	}
}

// TestPageBGP checks the BGP tables: each session's row with its state
// (marked bad unless established) and each VIP's with its announcement
// (marked bad while withdrawn); no BGP section without a bgp block.
func TestPageBGP(t *testing.T) {
	var log testenv.Buffer
	e := serve(t, options(&log), &log, true)
	if _, body := e.do(t, "GET", "/", ""); strings.Contains(body, "<h2>BGP</h2>") {
		t.Fatal("the page shows BGP the status lacks")
	}
	e.state.mu.Lock()
	e.state.status.BGP = &BGPStatus{
		Peers: []BGPPeerStatus{
			{Address: "198.51.100.1", ASN: 64500, State: "established", Uptime: 134},
			{Address: "2001:db8::1", ASN: 64500, State: "active"},
		},
		VIPs: []BGPVIPStatus{
			{VIP: "192.0.2.10", Announced: true, Communities: []string{"64512:100", "no-export"}, Services: "web 2/1, web-tls 2/1", Announcements: 1},
			{VIP: "2001:db8::10", Services: "dns 0/1", Announcements: 2, Withdrawals: 2},
		},
	}
	e.state.mu.Unlock()
	_, body := e.do(t, "GET", "/", "")
	want := map[string][]string{
		"198.51.100.1": {"198.51.100.1", "64500", "established", "134 s"},
		"2001:db8::1":  {"2001:db8::1", "64500", "active", "0 s"},
		"192.0.2.10":   {"192.0.2.10", "announced", "web 2/1, web-tls 2/1", "64512:100 no-export", "1 / 0"},
		"2001:db8::10": {"2001:db8::10", "withdrawn", "dns 0/1", "–", "2 / 2"},
	}
	rows := rowsBy(t, body, "data-peer")
	maps.Copy(rows, rowsBy(t, body, "data-vip"))
	for key, cells := range want {
		r, ok := rows[key]
		if !ok {
			t.Errorf("no row for %s", key)
			continue
		}
		if strings.Join(r.cells, "|") != strings.Join(cells, "|") {
			t.Errorf("%s: cells %q, want %q", key, r.cells, cells)
		}
	}
	if a := rows["2001:db8::1"].attrs; a["data-state"] != "active" {
		t.Errorf("peer 2001:db8::1: attributes %v", a)
	}
	if a := rows["192.0.2.10"].attrs; a["data-announced"] != "true" {
		t.Errorf("vip 192.0.2.10: attributes %v", a)
	}
	_, section, _ := strings.Cut(body, `<section class="bgp">`)
	if n := strings.Count(section, `class="bad"`); n != 2 {
		t.Errorf("%d BGP cells marked bad, want 2 (the active session, the withdrawn vip)", n)
	}
}

// interfaceRows parses a status page's BPF interface rows by name.
func interfaceRows(t *testing.T, page string) map[string]row {
	t.Helper()
	return rowsBy(t, page, "data-interface")
}

// rowsBy parses a status page's table rows that have attribute key, by
// its value.
func rowsBy(t testing.TB, page, key string) map[string]row {
	t.Helper()
	return tableRows(t, page, key, func(attrs map[string]string) string { return attrs[key] })
}

// tableRows parses a status page's table rows that have attribute has,
// by the name key gives each.
func tableRows(t testing.TB, page, has string, key func(attrs map[string]string) string) map[string]row {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]row{}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode || n.Data != "tr" {
			continue
		}
		r := row{attrs: map[string]string{}}
		for _, a := range n.Attr {
			r.attrs[a.Key] = a.Val
		}
		if _, ok := r.attrs[has]; !ok {
			continue
		}
		for c := range n.ChildNodes() {
			if c.Type == html.ElementNode && c.Data == "td" {
				r.cells = append(r.cells, strings.TrimSpace(text(c)))
			}
		}
		rows[key(r.attrs)] = r
	}
	return rows
}

// TestPageEscapes feeds the page hostile names: a backend's last error
// (which a health check copies from whatever answered) and a service name
// are shown as text, and the page has no script but its own.
func TestPageEscapes(t *testing.T) {
	var log testenv.Buffer
	e := serve(t, options(&log), &log, true)
	const hostile = `<script>alert("owned")</script><img src=x onerror=alert(1)>`
	e.state.mu.Lock()
	e.state.status.Services[0].Name = `web"><b>`
	e.state.status.Services[0].Backends[1].LastError = hostile
	e.state.mu.Unlock()
	_, body := e.do(t, "GET", "/", "")
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img") || strings.Contains(body, `web"><b>`) {
		t.Fatalf("hostile text reached the page unescaped:\n%s", body)
	}
	if n := strings.Count(body, "<script"); n != 1 {
		t.Errorf("%d scripts, want only the page's own", n)
	}
	r, ok := pageRows(t, body)[`web"><b> [::1]:8082`]
	if !ok {
		t.Fatalf("no row for the hostile service")
	}
	if got := r.cells[len(r.cells)-1]; got != hostile {
		t.Errorf("last error shown as %q, want the text %q", got, hostile)
	}
}

// TestPageCSP checks that the page's Content-Security-Policy allows its
// own inline style and script, by hash, and nothing else.
func TestPageCSP(t *testing.T) {
	var log testenv.Buffer
	e := serve(t, options(&log), &log, true)
	resp, body := e.do(t, "GET", "/", "")
	csp := resp.Header.Get("Content-Security-Policy")
	for _, tag := range []string{"style", "script"} {
		inline := between(t, body, "<"+tag+">", "</"+tag+">")
		sum := sha256.Sum256([]byte(inline))
		want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	}
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	}
	if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options %q", got)
	}
}

// between returns the text of s between the first open and the next
// close.
func between(t testing.TB, s, open, close string) string {
	t.Helper()
	_, rest, ok := strings.Cut(s, open)
	inner, _, ok2 := strings.Cut(rest, close)
	if !ok || !ok2 {
		t.Fatalf("no %s...%s in the page", open, close)
	}
	return inner
}

// TestFormats checks the page's formatting of times, rates and sizes.
func TestFormats(t *testing.T) {
	now := testNow
	for _, tt := range []struct{ got, want string }{
		{age(now, time.Time{}), "never"},
		{age(now, now.Add(-250*time.Millisecond)), "0.2s ago"},
		{age(now, now.Add(time.Second)), "0.0s ago"},
		{age(now, now.Add(-95*time.Second)), "1m35s ago"},
		{latency(0), "–"},
		{latency(1234567 * time.Nanosecond), "1.23ms"},
		{latency(987654 * time.Nanosecond), "988µs"},
		{latency(2345 * time.Millisecond), "2.345s"},
		{uptime(time.Time{}, now), "–"},
		{uptime(now.Add(-90*time.Minute), now), "1h30m0s"},
		{rate(0), "0"},
		{rate(0.123), "0.12"},
		{rate(42.25), "42.2"},
		{rate(12345.6), "12346"},
		{iecBytes(512), "512 B"},
		{iecBytes(1536), "1.5 KiB"},
		{iecBytes(5 << 30), "5.0 GiB"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

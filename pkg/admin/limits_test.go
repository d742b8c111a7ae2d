package admin

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
)

// TestLimitsOnThePageAndInTheJSON: an HTTP service's limits show on the
// page (what is configured, what was refused) and in /status; a service
// without them shows neither.
func TestLimitsOnThePageAndInTheJSON(t *testing.T) {
	var log testenv.Buffer
	opts := options(&log)
	fake := opts.State.(*fakeState)
	fake.status.Services[0].Limits = &LimitsStatus{
		MaxRequestBody: 10 << 20, MaxHeaderBytes: 32 << 10, MaxHeaders: 100,
		Rate: "100/s burst 200", RateClients: 3, MaxClients: 100000, MaxClientConnections: 32,
		Limited:   map[string]uint64{"rate": 37, "body": 1, "header": 2, "client_connections": 0},
		Listeners: []ListenerLimitStatus{{Addr: "127.0.0.1:6188", MaxConnections: 10000, Connections: 41, Limited: 5}},
	}
	e := serve(t, opts, &log, true)

	_, page := e.do(t, "GET", "/", "")
	for _, want := range []string{
		"rate 100/s burst 200 · 32 connections a client · body 10.0 MiB · head 32.0 KiB, 100 fields · 127.0.0.1:6188 41/10000 connections",
		"rate 37 · body 1 · header 2 · client_connections 0 · listener full 5",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if n := strings.Count(page, `<div class="limits">`); n != 1 {
		t.Errorf("%d services show limits, want 1", n)
	}

	_, body := e.do(t, "GET", "/status", "")
	var st struct {
		Services []struct {
			Name   string          `json:"name"`
			Limits json.RawMessage `json:"limits"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Services {
		var compact bytes.Buffer
		if s.Limits != nil {
			json.Compact(&compact, s.Limits)
		}
		switch {
		case s.Name == "web" && !strings.Contains(compact.String(), `"limited":{"body":1,"client_connections":0,"header":2,"rate":37}`):
			t.Errorf("web's limits in /status: %s", s.Limits)
		case s.Name != "web" && s.Limits != nil:
			t.Errorf("%s has limits %s, want none", s.Name, s.Limits)
		}
	}
}

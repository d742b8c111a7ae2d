package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
)

// stateCheck is a health check that takes a backend down only after
// three failures and checks once: a backend's health after the first
// round is then what it started with, so a successor shows whether it
// seeded its predecessor's verdicts.
const stateCheck = "      health_check: {type: http, path: /healthz, interval: once, consecutive_failure: 3}"

// TestRuntimeStateRoundTrip: a successor built from the same
// configuration and restored from its predecessor's RuntimeState keeps
// every override, and starts a backend its predecessor found down as
// down; traffic shows it.
func TestRuntimeStateRoundTrip(t *testing.T) {
	a, b, c, d, e := testenv.StartNamedBackend(t, "a"), testenv.StartNamedBackend(t, "b"), testenv.StartNamedBackend(t, "c"),
		testenv.StartNamedBackend(t, "d"), testenv.StartNamedBackend(t, "e")
	yaml, _ := controlConfig(t, strings.Replace(stateCheck, "consecutive_failure: 3", "consecutive_failure: 1", 1), "", a.Addr, b.Addr, d.Addr, e.Addr)
	e.Down.Store(true) // the predecessor's one check finds it down
	old := serving(t, yaml, nil, nil)
	for _, err := range []error{
		old.SetEnabled("web", a.Addr, false),
		old.SetWeight("web", b.Addr, 3),
		old.AddBackend("web", c.Addr, 1),
		old.RemoveBackend("web", d.Addr),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	state, err := old.RuntimeState()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("runtime state: %s", state)
	var rs runtimeState
	if err := json.Unmarshal(state, &rs); err != nil || rs.Version != RuntimeStateVersion {
		t.Fatalf("state %s: %v", state, err)
	}

	// The successor's configuration takes e down only after three
	// failures: without the seed, e would serve after one.
	yaml2, addr2 := controlConfig(t, stateCheck, "", a.Addr, b.Addr, d.Addr, e.Addr)
	succ := serving(t, yaml2, nil, state)
	got := newClient(t, addr2).split(60)
	want := map[string]int{"b": 45, "c": 15}
	if got["b"] != want["b"] || got["c"] != want["c"] || len(got) != 2 {
		t.Fatalf("after restoring, 60 requests went %v, want %v (a drained, d removed, e down, b weighs 3)", got, want)
	}
	web := serviceNamed(t, succ.Status(), "web")
	byAddr := map[string]bool{}
	for _, be := range web.Backends {
		byAddr[be.Addr] = true
		switch be.Addr {
		case a.Addr:
			if !be.Drained {
				t.Errorf("a is not drained after the restore: %+v", be)
			}
		case b.Addr:
			if be.Weight != 3 {
				t.Errorf("b weighs %d after the restore, want 3", be.Weight)
			}
		case e.Addr:
			if be.Healthy {
				t.Errorf("e is healthy after the restore: %+v", be)
			}
		}
	}
	if !byAddr[c.Addr] || byAddr[d.Addr] {
		t.Errorf("backends after the restore: %v, want c added and d removed", web.Backends)
	}
	// The successor's own state carries the overrides on.
	again, err := succ.RuntimeState()
	if err != nil {
		t.Fatal(err)
	}
	var rs2 runtimeState
	if err := json.Unmarshal(again, &rs2); err != nil {
		t.Fatal(err)
	}
	if s := rs2.Services[0]; len(s.Drained) != 1 || s.Weights[b.Addr] != 3 || len(s.Added) != 1 || len(s.Removed) != 1 || s.Health[e.Addr] {
		t.Errorf("the successor hands on %s", again)
	}
}

// TestRestoreDropsWhatNoLongerApplies: a new configuration without the
// service, or whose static list no longer holds the backend, or that
// discovers the service through DNS now, drops those overrides, saying
// so at Info.
func TestRestoreDropsWhatNoLongerApplies(t *testing.T) {
	a, b := testenv.StartNamedBackend(t, "a"), testenv.StartNamedBackend(t, "b")
	state := []byte(`{"version":1,"services":[
		{"name":"gone","drained":["127.0.0.1:1"]},
		{"name":"hello","drained":["127.0.0.1:1"]},
		{"name":"web","drained":["127.0.0.1:9"],"weights":{"127.0.0.1:9":4},"added":[{"addr":"` + a.Addr + `","weight":2}]}
	]}`)
	yaml, addr := controlConfig(t, "", "", a.Addr, b.Addr)
	var logs testenv.Buffer
	srv := serving(t, yaml, slog.New(slog.NewTextHandler(&logs, nil)), state)
	if got := newClient(t, addr).split(4); got["a"] != 2 || got["b"] != 2 {
		t.Fatalf("requests went %v, want a and b alike", got)
	}
	for _, be := range serviceNamed(t, srv.Status(), "web").Backends {
		if be.Drained || be.Weight != 1 {
			t.Errorf("backend %+v carries an override that no longer applies", be)
		}
	}
	for _, want := range []string{
		`msg="runtime overrides dropped: the service is no longer configured with backends" service=gone`,
		`msg="runtime overrides dropped: the service is no longer configured with backends" service=hello`,
		`runtime drain dropped: the configuration no longer lists the backend" service=web backend=127.0.0.1:9`,
		`runtime weight dropped: the configuration no longer lists the backend" service=web backend=127.0.0.1:9`,
		`runtime addition dropped: the configuration lists the backend now`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
	}
}

// TestRestoreRefusesUnreadableState: a state of another version, not
// JSON, with unknown fields, or too large is refused, naming why.
func TestRestoreRefusesUnreadableState(t *testing.T) {
	a := testenv.StartNamedBackend(t, "a")
	yaml, _ := controlConfig(t, "", "", a.Addr)
	srv := listenFrom(t, yaml, nil)
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name, state, text string
	}{
		{"newer version", `{"version":2,"services":[]}`, "version 2, and this weir reads version 1"},
		{"not JSON", `garbage`, "invalid character"},
		{"unknown field", `{"version":1,"services":[{"name":"web","colour":"red"}]}`, "colour"},
		{"too large", `{"version":1,"services":[]}` + strings.Repeat(" ", maxRuntimeStateBytes), "more than the limit"},
	} {
		err := srv.Restore([]byte(tc.state))
		if !errors.Is(err, ErrRuntimeState) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: Restore = %v, want ErrRuntimeState mentioning %q", tc.name, err, tc.text)
		}
	}
}

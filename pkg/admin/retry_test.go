package admin

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestRetryStatus: a target's retry counts appear in the status JSON
// under retry, and on the page as the total (by reason on hover) and the
// budget's refusals; a target without a policy shows neither.
func TestRetryStatus(t *testing.T) {
	st := Status{Services: []ServiceStatus{
		{Name: "web", Kind: "pool", Listeners: []string{}, Backends: []BackendStatus{},
			Retry: &RetryStatus{Retries: map[string]uint64{"connect": 1, "reset": 0, "timeout": 0, "502": 0, "503": 6, "504": 0}, Total: 7, BudgetExhausted: 2}},
		{Name: "plain", Kind: "http_proxy", Listeners: []string{}, Backends: []BackendStatus{}},
	}}
	js, err := json.Marshal(st.Services)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"retry":{"retries":{"502":0,"503":6,"504":0,"connect":1,"reset":0,"timeout":0},"total":7,"budget_exhausted":2}`; !strings.Contains(string(js), want) {
		t.Errorf("JSON %s lacks %s", js, want)
	}
	if strings.Count(string(js), `"retry"`) != 1 {
		t.Errorf("JSON %s: a target without a policy has a retry entry", js)
	}

	page, assets, err := loadPage()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, pageData{Status: st, CSS: assets.css, JS: assets.js}); err != nil {
		t.Fatal(err)
	}
	body := buf.String()
	for _, want := range []string{`data-retries="7"`, `data-budget-exhausted="2"`, `connect 1, reset 0, timeout 0, 502 0, 503 6, 504 0`} {
		if strings.Count(body, want) != 1 {
			t.Errorf("the page has %q %d times, want once", want, strings.Count(body, want))
		}
	}
}

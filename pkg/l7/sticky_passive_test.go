package l7

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/lb"
)

// cookieOf is the cookie sticky sets for the backend at addr.
func cookieOf(st *Sticky, addr string) string {
	return st.Cookie + "=" + string(appendStickyID(nil, st.id(addr)))
}

// TestStickyBackupYieldsToPrimaries follows a client that failed over to
// a backup: its cookie names the backup, which it keeps only while the
// primary is down; once the primary is back, the cookie is not honoured
// and the client is given the primary's.
func TestStickyBackupYieldsToPrimaries(t *testing.T) {
	primary, backup := testenv.StartNamedBackend(t, "p"), testenv.StartNamedBackend(t, "k")
	bk := lb.MustBackend(backup.Addr, 1)
	bk.Backup = true
	d, err := lb.NewStatic(lb.MustBackend(primary.Addr, 1), bk)
	if err != nil {
		t.Fatal(err)
	}
	check := &lb.HTTPCheck{Path: "/healthz"}
	t.Cleanup(func() { check.Close() })
	pool, err := lb.New(&lb.RoundRobin{}, lb.Options{Discovery: d, HealthCheck: check, CheckTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	sticky := &Sticky{Cookie: "wsrv"}
	sc := stickyClient{c: newClient(), addr: startProxy(t, &Server{Proxy: &Balanced{LB: pool, Sticky: sticky}})}
	setHealth := func(down bool) {
		primary.Down.Store(down)
		pool.CheckHealth(context.Background())
	}
	pCookie, kCookie := cookieOf(sticky, primary.Addr), cookieOf(sticky, backup.Addr)

	steps := []struct {
		name        string
		primaryDown bool
		cookie      string
		served      string
		setCookie   string // "" when none is set
	}{
		{"primary up: a backup's cookie is not honoured", false, kCookie, "p", pCookie},
		{"primary down: the client fails over", true, pCookie, "k", kCookie},
		{"primary down: the backup's cookie holds", true, kCookie, "k", ""},
		{"primary back: the client returns", false, kCookie, "p", pCookie},
		{"primary up: its cookie holds", false, pCookie, "p", ""},
	}
	for _, st := range steps {
		setHealth(st.primaryDown)
		// Several requests: round robin alone would not explain the
		// result, and the outcome must not change between them.
		for i := range 4 {
			got, set := sc.get(t, st.cookie)
			if got != st.served {
				t.Fatalf("%s, request %d: served by %s, want %s", st.name, i, got, st.served)
			}
			switch {
			case st.setCookie == "" && len(set) != 0:
				t.Fatalf("%s, request %d: Set-Cookie %v, want none", st.name, i, set)
			case st.setCookie != "":
				if c := stickyCookie(t, set, "wsrv"); c.Name+"="+c.Value != st.setCookie {
					t.Fatalf("%s, request %d: cookie %s=%s, want %s", st.name, i, c.Name, c.Value, st.setCookie)
				}
			}
		}
	}
}

// TestStickyEjectedBackendNotHonoured ejects the backend a client's cookie
// names by passive health: Usable says no, and the client is moved to the
// other backend with a new cookie.
func TestStickyEjectedBackendNotHonoured(t *testing.T) {
	a, b := testenv.StartNamedBackend(t, "a"), testenv.StartNamedBackend(t, "b")
	// A clock never advanced: an ejection lasts until the test ends.
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{Clock: lb.NewManualClock(time.Unix(1_800_000_000, 0)),
		Outlier: &lb.OutlierDetection{ConsecutiveGatewayFailures: 1, BaseEjection: time.Hour}}, a.Addr, b.Addr)
	sticky := &Sticky{Cookie: "wsrv", SameSite: http.SameSiteLaxMode}
	sc := stickyClient{c: newClient(), addr: startProxy(t, &Server{Proxy: &Balanced{LB: pool, Sticky: sticky}})}
	aCookie := cookieOf(sticky, a.Addr)
	if got, set := sc.get(t, aCookie); got != "a" || len(set) != 0 {
		t.Fatalf("before the ejection: served by %s with %v, want a and no cookie", got, set)
	}

	var ejected *lb.Backend
	for i, be := range pool.Current() {
		if be.Addr == a.Addr {
			ejected = &pool.Current()[i]
		}
	}
	ejected.Report(lb.OutcomeGatewayFailure)
	if ejected.Usable() {
		t.Fatal("an ejected backend is Usable")
	}
	for i := range 4 {
		got, set := sc.get(t, aCookie)
		if got != "b" {
			t.Fatalf("request %d: served by %s, which is ejected", i, got)
		}
		if c := stickyCookie(t, set, "wsrv"); c.Name+"="+c.Value != cookieOf(sticky, b.Addr) {
			t.Fatalf("request %d: cookie %s=%s, want b's", i, c.Name, c.Value)
		}
	}
}

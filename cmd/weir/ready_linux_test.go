package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/dnstest"
	"github.com/weir-lb/weir/internal/testenv"
)

// The new weir of an upgrade reports ready once every service serves; a
// DNS-discovered service serves once its first discovery is done. While
// the new weir's resolver holds its answer, the old weir goes on serving
// that service with the backends it discovered, so its clients wait for
// nothing; once the answer comes, the hand-over completes. And a resolver
// that never answers holds the hand-over only until the discovery's
// timeout (5 s), not for good: the upgrade still completes, well within
// grace_period_seconds.
func TestUpgradeWaitsForEachServicesFirstDiscovery(t *testing.T) {
	backend := testenv.Backend(t, "discovered")
	_, port, _ := net.SplitHostPort(backend)
	for _, tc := range []struct {
		name     string
		mode     dnstest.Mode
		wantBody string // of the DNS service once the new weir serves it
	}{
		{"resolver holds its answer", dnstest.Hold, "discovered"},
		{"resolver never answers", dnstest.Silent, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resolver := dnstest.Start(t, dnstest.Answer, map[string]string{"app.weir.test.": "127.0.0.1"})
			lab := newUpgradeLab(t)
			discAddr := freeAddr(t)
			lab.write(t, 2, fmt.Sprintf(`  - name: disc
    kind: http_proxy
    listen: ["%s"]
    upstream:
      discovery: {type: dns, names: ["app.weir.test.:%s"], server: "%s", network: ip4, refresh: 1h}
`, discAddr, port, resolver.Addr))
			conf, err := os.ReadFile(lab.conf)
			if err != nil {
				t.Fatal(err)
			}
			// Room for the 5 s DNS timeout in the hand-over.
			conf = []byte(strings.Replace(string(conf), "grace_period_seconds: 5", "grace_period_seconds: 15", 1))
			if err := os.WriteFile(lab.conf, conf, 0o644); err != nil {
				t.Fatal(err)
			}
			logs := logFile(t)
			old := startWeir(t, logs, "-c", lab.conf)
			lab.waitPIDFile(t, old.cmd.Process.Pid)
			if code, body, err := testenv.Get(discAddr, 20*time.Second); err != nil || code != 200 || body != "discovered" {
				t.Fatalf("the DNS service before the upgrade: %d %q %v\n%s", code, body, err, logs)
			}

			resolver.SetMode(tc.mode)
			next := startWeir(t, logs, "-u", "-c", lab.conf)
			old.signal(t, syscall.SIGQUIT)
			resolver.WaitAsked(t) // the new weir waits for its discovery
			began := time.Now()

			// Meanwhile the old weir serves both services.
			waitServing(t, lab.addr)
			if code, body, err := testenv.Get(discAddr, 20*time.Second); err != nil || code != 200 || body != "discovered" {
				t.Fatalf("the DNS service while the new weir waits for its discovery: %d %q %v\n%s", code, body, err, logs)
			}
			select {
			case err := <-old.exited:
				t.Fatalf("the old weir exited (%v) before the new one discovered its backends\n%s", err, logs)
			default:
			}
			if tc.mode == dnstest.Hold {
				resolver.SetMode(dnstest.Answer)
			}
			if err := old.waitExit(t, 20*time.Second); err != nil {
				t.Fatalf("the old weir exited with %v\n%s", err, logs)
			}
			t.Logf("hand-over done %v after the new weir asked its resolver", time.Since(began).Round(time.Millisecond))
			if strings.Contains(logs.String(), "upgrade failed") {
				t.Fatalf("the upgrade failed:\n%s", logs)
			}
			lab.waitPIDFile(t, next.cmd.Process.Pid)
			waitServing(t, lab.addr)
			code, body, err := testenv.Get(discAddr, 20*time.Second)
			switch {
			case err != nil:
				t.Fatalf("the DNS service after the upgrade: %v", err)
			case tc.wantBody != "" && (code != 200 || body != tc.wantBody):
				t.Fatalf("the DNS service after the upgrade: %d %q, want 200 %q", code, body, tc.wantBody)
			case tc.wantBody == "" && code != http.StatusServiceUnavailable:
				// No backend discovered yet: documented, as after a
				// fresh start with a dead resolver.
				t.Fatalf("the DNS service with no backend discovered: %d %q, want 503", code, body)
			}
			next.signal(t, syscall.SIGTERM)
			if err := next.waitExit(t, 20*time.Second); err != nil {
				t.Fatalf("the new weir exited with %v", err)
			}
		})
	}
}

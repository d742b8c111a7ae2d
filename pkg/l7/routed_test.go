package l7_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/route"
)

// routedEnv set to 1 runs this package's tests with a routing table in
// front of every proxy they serve.
const routedEnv = "WEIR_L7_ROUTED"

func init() {
	if os.Getenv(routedEnv) == "1" {
		l7.RouteEveryProxy = catchAll
	}
}

// catchAll wraps p in a routing table of one route that takes every
// request to p, as a routed service with a single route runs.
func catchAll(t testing.TB, p l7.Proxy) l7.Proxy {
	table, err := route.New([]route.Route{{Name: "all", Upstream: "p", MaxRetries: -1}}, []l7.Proxy{p})
	if err != nil {
		t.Fatalf("route.New: %v", err)
	}
	return table
}

// hostileTests are the tests of hostile input and faults: malformed,
// smuggling and slow requests, broken and slow upstreams, resets and
// aborts, idle and half-closed connections, HTTP/2 protocol abuse, and
// the HTTP/2 fuzz target's seeds.
var hostileTests = []string{
	"TestBadRequests", "TestSlowlorisIsCutOff", "TestStatusOnUpstreamFailures", "TestNoHealthyBackendIs503",
	"TestConnectFailureRetriesAnotherBackend", "TestFailingPhasesAnswerAsDocumented",
	"TestMalformedResponseIsNeverResent", "TestRequestWithBodyIsNeverResent", "TestClientBodyFaultsAreTheClients",
	"TestResponseBytesFlowAsTheyArrive", "TestH2UpstreamRequestIsResentOnlyWhenUnprocessed",
	"TestH2ResetStreamAbortsTheUpstreamExchange", "TestAbort",
	"TestQuietConnectionServesTheNextRequests", "TestQuietConnectionClosesAtTheIdleTimeout",
	"TestQuietConnectionsEndWithTheServer", "TestQuietConnectionNoticesTheClientLeaving",
	"TestQuietConnectionAnswersARequestSentWithTheFIN",
	"TestH2MalformedRequestsAreReset", "TestH2ConnectionErrors", "TestH2PrefaceMustEndWithSettings",
	"TestH2ControlFrames", "TestH2StreamErrors", "TestH2ConcurrentStreamsBeyondTheLimitAreRefused",
	"TestH2RapidResetIsBounded", "TestH2FlowControlOfResponses", "TestH2IdleConnectionGoesAway",
	"FuzzH2Server",
}

// TestHostileInputWithRouting runs the hostile-input and fault tests of
// this package again, in a child process of this test binary, with a
// catch-all routing table in front of every proxy they serve: each must
// pass through the table as it passes without one.
func TestHostileInputWithRouting(t *testing.T) {
	if os.Getenv(routedEnv) == "1" {
		t.Skip("already routed")
	}
	if testing.Short() {
		t.Skip("runs a second copy of the hostile tests")
	}
	limit := time.Now().Add(5 * time.Minute)
	if d, ok := t.Deadline(); ok && d.Add(-10*time.Second).Before(limit) {
		limit = d.Add(-10 * time.Second) // leave time to report
	}
	ctx, cancel := context.WithDeadline(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^("+strings.Join(hostileTests, "|")+")$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), routedEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		t.Fatalf("the hostile tests failed behind a routing table: %v\n%s", err, failures(out.String()))
	}
	for _, name := range hostileTests {
		if !regexp.MustCompile(`(?m)^--- PASS: ` + name + ` `).MatchString(out.String()) {
			t.Errorf("%s did not pass behind a routing table (not run?)", name)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}

// failures keeps the lines of a verbose test run that tell what failed.
func failures(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "=== ") && !strings.Contains(l, "--- PASS") {
			keep = append(keep, l)
		}
	}
	if len(keep) > 400 {
		keep = append(keep[:400], fmt.Sprintf("… %d more lines", len(keep)-400))
	}
	return strings.Join(keep, "\n")
}

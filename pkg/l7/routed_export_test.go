package l7

import "testing"

// RouteEveryProxy, when set, wraps the Proxy of every Server the tests
// serve (serveOn) before it serves, so that the tests run with a routing
// table in front of the proxy they test. pkg/route imports this package,
// so the wrapper comes from the external test package (routed_test.go),
// which sets it once, before any test runs, when WEIR_L7_ROUTED=1.
var RouteEveryProxy func(testing.TB, Proxy) Proxy

// Package testenv decides whether a test that needs privileges can run.
//
// A privileged test skips with its reason on a developer's unprivileged
// machine, but fails when WEIR_REQUIRE_PRIVILEGED=1 is set, as CI sets it,
// so that no privileged test can skip silently there.
package testenv

import (
	"os"
	"testing"
)

// RequirePrivilegedEnv is the variable that turns skips into failures.
const RequirePrivilegedEnv = "WEIR_REQUIRE_PRIVILEGED"

// Required reports whether privileged tests must run rather than skip.
func Required() bool { return os.Getenv(RequirePrivilegedEnv) == "1" }

// SkipOrFail skips t with reason, or fails it when privileged tests are
// required.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s, and %s=1 forbids skipping", reason, RequirePrivilegedEnv)
	}
	t.Skip(reason)
}

// NeedRoot skips or fails t unless it runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "test needs root")
	}
}

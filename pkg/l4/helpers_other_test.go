//go:build !unix

package l4

import "testing"

func refusingAddr(t testing.TB, _ string) string {
	t.Skip("needs a bound, non-listening socket")
	return ""
}

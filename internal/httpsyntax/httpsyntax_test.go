package httpsyntax

import "testing"

func TestIsToken(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"GET", true}, {"X-Request-Id", true}, {"a!#$%&'*+-.^_`|~z09", true},
		{"", false}, {"two words", false}, {"colon:", false}, {"quote\"", false},
		{"slash/", false}, {"tab\t", false}, {"é", false}, {"(paren)", false},
	} {
		if got := IsToken(tc.s); got != tc.want {
			t.Errorf("IsToken(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

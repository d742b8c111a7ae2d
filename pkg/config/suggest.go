package config

import (
	"fmt"
	"strings"

	"github.com/weir-lb/weir/internal/suggest"
)

// didYouMean returns `did you mean "X"?` for the closest candidate, or
// lists the valid choices (of the given noun) when none is close.
func didYouMean(word string, candidates []string, noun string) string {
	if s, ok := suggest.Closest(word, candidates); ok {
		return fmt.Sprintf("did you mean %s?", quote(s))
	}
	return "valid " + noun + ": " + strings.Join(candidates, ", ")
}

package config

import (
	"fmt"
	"strings"
)

// maxSuggestDistance is the largest edit distance at which a misspelt key
// or value is still close enough to a known one to suggest it.
const maxSuggestDistance = 2

// suggest returns the candidate closest to word, if one is within
// maxSuggestDistance edits; ties go to the earlier candidate, so the order
// of the list (most common first) decides. A candidate whose length
// differs from word's by more than maxSuggestDistance is out of reach
// (each edit changes the length by one at most) and skipped, so that a
// megabyte-long word costs nothing rather than len(word)·len(candidate).
func suggest(word string, candidates []string) (string, bool) {
	best, bestDist := "", maxSuggestDistance+1
	for _, c := range candidates {
		if len(word) > len(c)+maxSuggestDistance || len(c) > len(word)+maxSuggestDistance {
			continue
		}
		if d := editDistance(strings.ToLower(word), c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best, bestDist <= maxSuggestDistance
}

// didYouMean returns `did you mean "X"?` for the closest candidate, or
// lists the valid choices (of the given noun) when none is close.
func didYouMean(word string, candidates []string, noun string) string {
	if s, ok := suggest(word, candidates); ok {
		return fmt.Sprintf("did you mean %s?", quote(s))
	}
	return "valid " + noun + ": " + strings.Join(candidates, ", ")
}

// editDistance is the Levenshtein distance between a and b, counted in
// bytes (configuration keys are ASCII). It keeps one row of the table.
func editDistance(a, b string) int {
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		diag := row[0]
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			next := min(row[j]+1, row[j-1]+1, diag+cost)
			diag, row[j] = row[j], next
		}
	}
	return row[len(b)]
}

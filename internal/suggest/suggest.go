// Package suggest finds the known word a misspelt one was meant to be, for
// "did you mean" hints in configuration and format errors.
package suggest

import "strings"

// MaxDistance is the largest edit distance at which a misspelt word is
// still close enough to a known one to suggest it.
const MaxDistance = 2

// Closest returns the candidate closest to word (compared in lower case),
// if one is within MaxDistance edits; ties go to the earlier candidate, so
// the order of the list (most common first) decides. A candidate whose
// length differs from word's by more than MaxDistance is out of reach
// (each edit changes the length by one at most) and skipped, so that a
// megabyte-long word costs nothing rather than len(word)·len(candidate).
func Closest(word string, candidates []string) (string, bool) {
	best, bestDist := "", MaxDistance+1
	lower := ""
	for _, c := range candidates {
		if len(word) > len(c)+MaxDistance || len(c) > len(word)+MaxDistance {
			continue
		}
		if lower == "" {
			lower = strings.ToLower(word)
		}
		if d := Distance(lower, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best, bestDist <= MaxDistance
}

// Distance is the Levenshtein distance between a and b, counted in bytes
// (keys and field names are ASCII). It keeps one row of the table.
func Distance(a, b string) int {
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
			diag, row[j] = row[j], min(row[j]+1, row[j-1]+1, diag+cost)
		}
	}
	return row[len(b)]
}

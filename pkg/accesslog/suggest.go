package accesslog

import "strings"

// maxSuggestDistance is the largest edit distance at which a misspelt
// name is still close enough to a known one to suggest it.
const maxSuggestDistance = 2

// suggest returns the candidate closest to word within maxSuggestDistance
// edits; ties go to the earlier candidate. Candidates whose length is out
// of reach are skipped, so a long word costs nothing.
func suggest(word string, candidates []string) (string, bool) {
	word = strings.ToLower(word)
	best, bestDist := "", maxSuggestDistance+1
	for _, c := range candidates {
		if len(word) > len(c)+maxSuggestDistance || len(c) > len(word)+maxSuggestDistance {
			continue
		}
		if d := editDistance(word, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best, bestDist <= maxSuggestDistance
}

// editDistance is the Levenshtein distance between a and b in bytes
// (field names are ASCII), keeping one row of the table.
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
			diag, row[j] = row[j], min(row[j]+1, row[j-1]+1, diag+cost)
		}
	}
	return row[len(b)]
}

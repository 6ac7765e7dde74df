// Package suggest finds, among the names a user could have meant, the one
// closest to a name that is not known, for "did you mean X?" hints.
package suggest

import (
	"strings"

	"github.com/agnivade/levenshtein"
)

// Closest returns the candidate nearest to word by edit distance, or ""
// when none is near enough to be a likely typo: the distance must be at
// most 2 and at most a third of the length of word (rounded up), so that
// short words do not match everything. Case is ignored when measuring; a
// candidate equal to word is never suggested. Ties go to the earliest
// candidate.
func Closest(word string, candidates ...string) string {
	w := strings.ToLower(word)
	best, bestD := "", -1
	limit := min(2, (len([]rune(w))+2)/3)
	for _, c := range candidates {
		if c == word || c == "" {
			continue
		}
		d := levenshtein.ComputeDistance(w, strings.ToLower(c))
		if d <= limit && (bestD < 0 || d < bestD) {
			best, bestD = c, d
		}
	}
	return best
}

// Hint returns " (did you mean X?)" for the candidate [Closest] picks, or
// "" when there is none: a suffix for an error message.
func Hint(word string, candidates ...string) string {
	if c := Closest(word, candidates...); c != "" {
		return " (did you mean " + c + "?)"
	}
	return ""
}

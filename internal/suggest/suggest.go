// Package suggest finds, among the names a user could have meant, the one
// closest to a name that is not known, for "did you mean X?" hints.
package suggest

import (
	"strings"
	"unicode/utf8"

	"github.com/agnivade/levenshtein"
)

// Closest returns the candidate nearest to word by edit distance, or ""
// when none is near enough to be a likely typo: the distance must be at
// most 2 and at most a third of the length of word (rounded up), so that
// short words do not match everything. Case is ignored when measuring; a
// candidate equal to word is never suggested. Of candidates at the same
// distance, the one nearest in length wins (two swapped letters cost 2,
// as do two dropped ones: "fitler" is "filter" rather than "file"), then
// the earliest.
func Closest(word string, candidates ...string) string {
	w := strings.ToLower(word)
	n := utf8.RuneCountInString(w)
	best, bestD, bestL := "", -1, 0
	limit := min(2, (n+2)/3)
	for _, c := range candidates {
		if c == word || c == "" {
			continue
		}
		d := levenshtein.ComputeDistance(w, strings.ToLower(c))
		l := abs(utf8.RuneCountInString(c) - n)
		if d <= limit && (bestD < 0 || d < bestD || (d == bestD && l < bestL)) {
			best, bestD, bestL = c, d, l
		}
	}
	return best
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// Hint returns " (did you mean X?)" for the candidate [Closest] picks, or
// "" when there is none: a suffix for an error message.
func Hint(word string, candidates ...string) string {
	if c := Closest(word, candidates...); c != "" {
		return " (did you mean " + c + "?)"
	}
	return ""
}

// Package suggest finds the name a person most likely meant when they
// wrote one that is not allowed: the "did you mean" of error messages for
// profiles, worker configs and task payloads.
package suggest

import (
	"strings"

	"github.com/agnivade/levenshtein"
)

// Closest returns the candidate nearest to s by case-insensitive edit
// distance (Levenshtein), if it is at most 3 edits away and at most half
// of s's length; otherwise "". Ties go to the earlier candidate.
func Closest(s string, candidates []string) string {
	best, bestD := "", 4
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if d := levenshtein.ComputeDistance(ls, strings.ToLower(c)); d < bestD && d <= len(s)/2 {
			best, bestD = c, d
		}
	}
	return best
}

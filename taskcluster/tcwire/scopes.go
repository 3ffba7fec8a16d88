package tcwire

import "strings"

// ScopeSatisfied reports whether the scope set have satisfies need under
// Taskcluster's rule: a scope in have equal to need, or one ending in "*"
// whose prefix (without the "*") starts need. "*" alone satisfies every
// scope. Roles ("assume:...") are not expanded here: callers that need
// them expand have first (task.Context.HasScopes through the Auth
// service's expandScopes; the embedded Queue with its roles).
func ScopeSatisfied(have []string, need string) bool {
	for _, h := range have {
		if h == need {
			return true
		}
		if p, ok := strings.CutSuffix(h, "*"); ok && strings.HasPrefix(need, p) {
			return true
		}
	}
	return false
}

// HasScopes reports whether have satisfies every scope of need
// (ScopeSatisfied); no scopes needed is always satisfied.
func HasScopes(have []string, need ...string) bool {
	for _, n := range need {
		if !ScopeSatisfied(have, n) {
			return false
		}
	}
	return true
}

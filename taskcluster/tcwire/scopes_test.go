package tcwire

import "testing"

func TestScopeSatisfied(t *testing.T) {
	have := []string{"queue:claim-work:proj/*", "exact", "assume:*"}
	for _, c := range []struct {
		have []string
		need string
		want bool
	}{
		// This package's own cases (formerly in taskcluster/hawk).
		{have, "queue:claim-work:proj/type", true},
		{have, "queue:claim-work:proj/", true},
		{have, "exact", true},
		{have, "exactly", false},
		{have, "queue:claim-work:other/type", false},
		{[]string{"*"}, "anything", true},
		// Upstream's rule (taskcluster-lib-scopes satisfaction): a trailing
		// "*" matches any suffix, including none and another "*"; a "*"
		// elsewhere is a literal character.
		{[]string{"*"}, "", true},
		{[]string{""}, "", true},
		{nil, "", false},
		{[]string{"foo:*"}, "foo:bar", true},
		{[]string{"foo:*"}, "foo:", true},
		{[]string{"foo:*"}, "foo:*", true},
		{[]string{"foo:*"}, "foo", false},
		{[]string{"abc*"}, "abc", true},
		{[]string{"abc*"}, "abcd", true},
		{[]string{"abc"}, "abc*", false},
		{[]string{"ab*c"}, "abc", false},
		{[]string{"ab*c"}, "ab*c", true},
		{[]string{"assume:repo:github.com/x/y:*"}, "assume:repo:github.com/x/y:branch:main", true},
		{[]string{"queue:route:index.project.*"}, "queue:route:index.other", false},
		{[]string{"docker-worker:cache:"}, "docker-worker:cache:x", false},
	} {
		if got := ScopeSatisfied(c.have, c.need); got != c.want {
			t.Errorf("ScopeSatisfied(%q, %q) = %v, want %v", c.have, c.need, got, c.want)
		}
	}
}

func TestHasScopes(t *testing.T) {
	have := []string{"queue:claim-work:proj/*", "exact", "assume:*"}
	for _, c := range []struct {
		need []string
		want bool
	}{
		{nil, true},
		{[]string{"exact"}, true},
		{[]string{"exact", "assume:role"}, true},
		{[]string{"exact", "nope"}, false},
	} {
		if got := HasScopes(have, c.need...); got != c.want {
			t.Errorf("HasScopes(%q, %q) = %v, want %v", have, c.need, got, c.want)
		}
	}
	if HasScopes(nil, "x") {
		t.Error("an empty scope set satisfied a scope")
	}
}

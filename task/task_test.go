package task

import "testing"

func TestContextHasScopes(t *testing.T) {
	tc := &Context{Definition: Definition{Scopes: []string{"docker-worker:cache:build-*", "generic-worker:cache:x"}}}
	for _, c := range []struct {
		need []string
		want bool
	}{
		{nil, true},
		{[]string{"docker-worker:cache:build-linux"}, true},
		{[]string{"generic-worker:cache:x"}, true},
		{[]string{"generic-worker:cache:xy"}, false},
		{[]string{"docker-worker:cache:build-linux", "docker-worker:capability:privileged"}, false},
	} {
		if got := tc.HasScopes(c.need...); got != c.want {
			t.Errorf("HasScopes(%q) = %v, want %v", c.need, got, c.want)
		}
	}
}

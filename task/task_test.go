package task

import (
	"context"
	"errors"
	"testing"
)

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
		if got, err := tc.HasScopes(context.Background(), c.need...); got != c.want || err != nil {
			t.Errorf("HasScopes(%q) = %v, %v; want %v", c.need, got, err, c.want)
		}
	}
}

type fakeExpander struct {
	calls int
	err   error
}

func (f *fakeExpander) ExpandScopes(_ context.Context, scopes []string) ([]string, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return append(scopes, "generic-worker:cache:repo-*"), nil
}

// generic-worker v106 (internal/scopes Given.Satisfies): assume: scopes are
// expanded through the Auth service only when the task's scopes as written
// fall short, and a failed expansion is resource-unavailable.
func TestContextHasScopesExpandsRoles(t *testing.T) {
	ctx := context.Background()
	exp := &fakeExpander{}
	tc := &Context{Definition: Definition{Scopes: []string{"assume:repo:example.com/x:branch:main", "a"}}, ScopeExpander: exp}
	if ok, err := tc.HasScopes(ctx, "a"); !ok || err != nil || exp.calls != 0 {
		t.Errorf("HasScopes(a) = %v, %v after %d expansions; want true without expanding", ok, err, exp.calls)
	}
	for range 2 {
		if ok, err := tc.HasScopes(ctx, "generic-worker:cache:repo-hg"); !ok || err != nil {
			t.Errorf("HasScopes through the role = %v, %v", ok, err)
		}
	}
	if ok, err := tc.HasScopes(ctx, "b"); ok || err != nil {
		t.Errorf("HasScopes(b) = %v, %v; want false", ok, err)
	}
	if exp.calls != 1 {
		t.Errorf("ExpandScopes called %d times, want once per run", exp.calls)
	}

	tc = &Context{Definition: Definition{Scopes: []string{"assume:x"}}, ScopeExpander: &fakeExpander{err: errors.New("auth down")}}
	_, err := tc.HasScopes(ctx, "b")
	var ee *ExceptionError
	if !errors.As(err, &ee) || ee.Reason != ReasonResourceUnavailable {
		t.Errorf("failed expansion: %v, want resource-unavailable", err)
	}
	tc = &Context{Definition: Definition{Scopes: []string{"assume:x"}}}
	if _, err := tc.HasScopes(ctx, "b"); !errors.As(err, &ee) || ee.Reason != ReasonResourceUnavailable {
		t.Errorf("no expander: %v, want resource-unavailable", err)
	}
}

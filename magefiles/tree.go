//go:build mage

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// treeState is what the checkout holds beside its commit: every path
// `git status` lists (modified and untracked files, and ignored ones such
// as dist/'s, one by one) with its status, size, mode and modification
// time. `test` compares it before and after the tests.
func treeState(ctx context.Context) (map[string]string, error) {
	out, err := gitOutput(ctx, "status", "--porcelain=v1", "-z", "--ignored=traditional", "--untracked-files=all")
	if err != nil {
		return nil, fmt.Errorf("git status (test checks that the tests leave the checkout as it was): %w", err)
	}
	state := map[string]string{}
	fields := strings.Split(out, "\x00")
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if len(f) < 4 {
			continue
		}
		xy, path := f[:2], f[3:]
		if xy[0] == 'R' || xy[0] == 'C' {
			i++ // the rename's or copy's source path follows
		}
		st, err := os.Lstat(path)
		if err != nil {
			state[path] = xy + " missing"
			continue
		}
		state[path] = fmt.Sprintf("%s %d %s %s", xy, st.Size(), st.Mode(), st.ModTime().UTC().Format("2006-01-02T15:04:05.000000000"))
	}
	return state, nil
}

// treeChanges returns an error naming every path whose state differs
// between before and after, or nil.
func treeChanges(before, after map[string]string) error {
	var changes []string
	for p, a := range after {
		b, ok := before[p]
		switch {
		case !ok:
			changes = append(changes, "new      "+p)
		case a != b:
			changes = append(changes, "changed  "+p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			changes = append(changes, "removed or restored "+p)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	slices.Sort(changes)
	return fmt.Errorf("the tests changed the checkout (tests must write into t.TempDir(), never into the repository or its dist/):\n  %s",
		strings.Join(changes, "\n  "))
}

func gitOutput(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	out, err := cmd.Output()
	return string(out), err
}

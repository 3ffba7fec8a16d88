package gen

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"cuelang.org/go/cue"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/task"
)

// loadSchemas loads the repository's schemas (no profile).
func loadSchemas(t *testing.T) cue.Value {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	v, errs := loadModuleCUE(root)
	require.NoError(t, errs)
	return v
}

// CUE's #Ability names exactly engines.Abilities.
func TestAbilityVocabulary(t *testing.T) {
	ability := loadSchemas(t).LookupPath(cue.MakePath(cue.Def("#Ability")))
	op, alts := ability.Expr()
	require.Equal(t, cue.OrOp, op)
	var names []engines.Ability
	for _, a := range alts {
		s, err := a.String()
		require.NoError(t, err)
		names = append(names, engines.Ability(s))
	}
	slices.Sort(names)
	require.Equal(t, engines.Abilities(), names)
	for _, a := range names {
		require.NotEmpty(t, a.Interface(), a)
	}
}

// Every dialect of the schemas has a task.Dialect constant, and the
// generated main can name every constant.
func TestDialectVocabulary(t *testing.T) {
	var dialects []task.Dialect
	for _, d := range keysOf(loadSchemas(t).LookupPath(cue.ParsePath("dialects"))) {
		dialects = append(dialects, task.Dialect(d))
	}
	require.Equal(t, task.Dialects(), dialects)
	for _, d := range task.Dialects() {
		require.True(t, d.Known())
		require.Contains(t, dialectConsts, d)
	}
	require.Len(t, dialectConsts, len(task.Dialects()))
}

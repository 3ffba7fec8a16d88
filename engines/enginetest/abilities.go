package enginetest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/gen"
)

// CheckAbilities compares the abilities an engine declares with those its
// values implement (engines.Implemented on e, a builder b and a started
// sandbox s of it). It returns nil when they are the same set, else an
// error naming every declared ability the values lack (with its
// interface) and every implemented one the declaration omits.
func CheckAbilities(declared []engines.Ability, e engines.Engine, b engines.SandboxBuilder, s engines.Sandbox) error {
	has := engines.Implemented(e, b, s)
	var problems []string
	for _, a := range declared {
		if a.Interface() == "" {
			problems = append(problems, fmt.Sprintf("declares %q, which is not an ability (known: %s)", a, joinAbilities(engines.Abilities())))
		} else if !slices.Contains(has, a) {
			problems = append(problems, fmt.Sprintf("declares ability %q but does not implement %s", a, a.Interface()))
		}
	}
	for _, a := range has {
		if !slices.Contains(declared, a) {
			problems = append(problems, fmt.Sprintf("implements %s but does not declare ability %q", a.Interface(), a))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("engine abilities: %s", strings.Join(problems, "; "))
	}
	return nil
}

func joinAbilities(as []engines.Ability) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// abilities checks Harness.Abilities against the engine's types and, with
// Harness.Kind, against the engine's CUE metadata.
func (s *suite) abilities(t *testing.T) {
	if s.h.Kind != "" {
		declared := SchemaAbilities(t, s.h.Kind)
		if !sameAbilities(declared, s.h.Abilities) {
			t.Errorf("Harness.Abilities %v differ from engines.%s.abilities %v in the schemas", s.h.Abilities, s.h.Kind, declared)
		}
	}
	r := s.newRun(t, Scenario{Steps: []Step{{Stdout: "hello\n"}}})
	ctx := s.ctx(t)
	r.start(ctx)
	if err := CheckAbilities(s.h.Abilities, r.e, r.b, r.sb); err != nil {
		t.Error(err)
	}
	r.wait(ctx)
}

// SchemaAbilities returns the abilities engines.<kind> declares in the
// CUE of the module the test runs in (engines/<kind>/<kind>.cue),
// failing t when they cannot be read.
func SchemaAbilities(t testing.TB, kind string) []engines.Ability {
	t.Helper()
	declared, err := gen.EngineAbilities(moduleRoot(t), kind)
	if err != nil {
		t.Fatal(err)
	}
	return declared
}

func sameAbilities(a, b []engines.Ability) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// moduleRoot walks up from the working directory to the directory holding
// go.mod and schemas/.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, gen.SchemasDir)); err == nil {
				return dir
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no module root with schemas/ lies above the test's directory")
		}
		dir = parent
	}
}

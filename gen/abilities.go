package gen

import (
	"fmt"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"

	"github.com/workergen/workergen/engines"
)

// EngineAbilities returns the abilities engines.<kind> declares in the CUE
// of this module's engine folders below root (its `abilities` list, in the
// order written), for engines/enginetest to check against the engine's Go
// types. Errors wrap the CUE errors, or name an unknown engine.
func EngineAbilities(root, kind string) ([]engines.Ability, error) {
	v, errs := loadModuleCUE(root)
	if errs != nil {
		return nil, fmt.Errorf("loading schemas: %s", cueerrors.Details(errs, nil))
	}
	mv := v.LookupPath(cue.MakePath(cue.Str("engines"), cue.Str(kind)))
	if !mv.Exists() {
		return nil, fmt.Errorf("unknown engine %q; known engines: %v", kind, keysOf(v.LookupPath(cue.ParsePath("engines"))))
	}
	var names []string
	if err := mv.LookupPath(cue.ParsePath("abilities")).Decode(&names); err != nil {
		return nil, fmt.Errorf("engines.%s.abilities: %w", kind, err)
	}
	out := make([]engines.Ability, len(names))
	for i, n := range names {
		out[i] = engines.Ability(n)
	}
	return out, nil
}

// loadModuleCUE loads schemas/ and the CUE of every component folder of
// the module at root, without a profile.
func loadModuleCUE(root string) (cue.Value, cueerrors.Error) {
	files, err := schemaFiles(root)
	if err != nil {
		return cue.Value{}, cueerrors.Promote(err, "")
	}
	modPath, err := ModulePath(root)
	if err != nil {
		return cue.Value{}, cueerrors.Promote(err, "")
	}
	comps, errs := inTreeComponents(root, modPath)
	if errs != nil {
		return cue.Value{}, errs
	}
	for _, c := range comps {
		files = append(files, c.Files...)
	}
	return loadInstance(newContext(), files)
}

// Package gen is workergen's generator: it turns a CUE profile
// (profiles/<name>.cue, or a profile file elsewhere) into the Go main
// package, data files and Go module of a tailored worker (dist/<name>/).
//
// The generator loads every .cue file under schemas/, the CUE of every
// component folder of this module (engines/*/, plugins/*/: a component is
// one folder holding its Go package and the CUE declaring it), the CUE of
// the profile's third-party components (found from their import paths in
// their modules: a local replace folder or the module cache) and the
// profile file as one CUE package, checks the profile against #Profile
// (closed: a typo is an error with file:line and the field path), rejects
// impossible combinations (unknown engine or plugin, a target OS an engine
// or plugin does not support, a plugin with no fragment for the profile's
// dialect, an engine ability (engines.Ability) a plugin requires and the
// engine lacks, conflicting plugins, two payload fragments defining the same
// field), composes the payload JSON Schema from the engine's and plugins'
// fragments for the profile's dialect (the dialect's fields no linked
// component provides, derived from every component's fragments and the
// dialect's `unimplemented` list, are rejected and listed as Unsupported),
// exports the worker config JSON Schema and default config (every field's
// description is its CUE doc comment, docs.go), renders the task payload
// reference page (payload.md), emits
// main.go with jennifer, which passes the dialect to every component, and
// writes the profile's go.mod and go.sum (WriteModule).
//
// Output is deterministic: the same inputs give the same bytes on any
// machine (no timestamps, no absolute paths).
package gen

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
)

// Directories below the repository root.
const (
	SchemasDir  = "schemas"
	ProfilesDir = "profiles"
	DistDir     = "dist"
)

// cuePackage is the package clause every schema and profile file carries.
const cuePackage = "workergen"

// Sentinel errors; match them with errors.Is.
var (
	// ErrUnknownProfile is returned for a profile name with no
	// profiles/<name>.cue file. The error message lists the known ones.
	ErrUnknownProfile = errors.New("unknown profile")
	// ErrInvalidProfile is returned when a profile (or the schemas) fail
	// validation. The error message holds one line per problem, each with
	// file:line:column.
	ErrInvalidProfile = errors.New("invalid profile")
)

// ProfileError is a validation failure of a profile, carrying CUE errors
// with positions. Error() prints every problem with its file:line:column
// (relative to the repository root).
type ProfileError struct {
	Profile string
	Err     cueerrors.Error
}

func (e *ProfileError) Error() string {
	details := strings.TrimSpace(cueerrors.Details(e.Err, &cueerrors.Config{ToSlash: true}))
	return fmt.Sprintf("profile %q: %s", e.Profile, details)
}

// Unwrap makes errors.Is(err, ErrInvalidProfile) true.
func (e *ProfileError) Unwrap() []error { return []error{ErrInvalidProfile, e.Err} }

// Positions returns "file:line:column" of every problem, in order.
func (e *ProfileError) Positions() []string {
	var out []string
	for _, err := range cueerrors.Errors(e.Err) {
		for _, p := range cueerrors.Positions(err) {
			if p.IsValid() {
				out = append(out, p.String())
			}
		}
	}
	return out
}

// KnownProfiles returns the names of the profiles in root/profiles, sorted.
func KnownProfiles(root string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, ProfilesDir))
	if err != nil {
		return nil, fmt.Errorf("listing profiles: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".cue") {
			names = append(names, strings.TrimSuffix(e.Name(), ".cue"))
		}
	}
	slices.Sort(names)
	return names, nil
}

// ProfileFile returns the profile's file path relative to root: for a
// name, profiles/<name>.cue, or an error wrapping ErrUnknownProfile that
// lists the known profiles; for an argument ending in ".cue" (a profile
// kept elsewhere, e.g. examples/thirdparty/linux-stamp.cue), that file,
// relative to root unless absolute.
func ProfileFile(root, name string) (string, error) {
	if strings.HasSuffix(name, ".cue") {
		abs := name
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(root, abs)
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("%w %q: %w", ErrUnknownProfile, name, err)
		}
		return displayPath(root, abs), nil
	}
	known, err := KnownProfiles(root)
	if err != nil {
		return "", err
	}
	if !slices.Contains(known, name) {
		return "", fmt.Errorf("%w %q: known profiles are %s (or give the path of a profile file ending in .cue)", ErrUnknownProfile, name, strings.Join(known, ", "))
	}
	return path.Join(ProfilesDir, name+".cue"), nil
}

// displayPath is how positions name the file at abs: slash-separated and
// relative to root (with ../ when outside it), so that output and errors
// hold no absolute path.
func displayPath(root, abs string) string {
	absRoot, err := filepath.Abs(root)
	if err == nil {
		if a, err := filepath.Abs(abs); err == nil {
			if rel, err := filepath.Rel(absRoot, a); err == nil {
				return filepath.ToSlash(rel)
			}
		}
	}
	return filepath.ToSlash(abs)
}

// source is a CUE file the generator loads: Name is what positions show
// (see displayPath, or <module>@<version>/<path> for a file in the module
// cache), Path where it is on disk.
type source struct{ Name, Path string }

// rootSource is the source of a file given relative to root.
func rootSource(root, rel string) source {
	return source{Name: rel, Path: filepath.Join(root, filepath.FromSlash(rel))}
}

// schemaFiles returns the .cue files under root/schemas, sorted.
func schemaFiles(root string) ([]source, error) {
	var files []source
	err := filepath.WalkDir(filepath.Join(root, SchemasDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".cue") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, source{Name: filepath.ToSlash(rel), Path: p})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing schemas: %w", err)
	}
	slices.SortFunc(files, func(a, b source) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

// parseSource parses one file of the package cuePackage, with its
// comments: doc comments become the JSON Schemas' descriptions (docs.go).
func parseSource(f source) (*ast.File, cueerrors.Error) {
	src, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, cueerrors.Promote(err, "reading "+f.Name)
	}
	file, err := parser.ParseFile(f.Name, src, parser.ParseComments)
	if err != nil {
		return nil, cueerrors.Promote(err, "")
	}
	if file.PackageName() != cuePackage {
		return nil, cueerrors.Newf(packagePos(file), "%s: package must be %q, found %q", f.Name, cuePackage, file.PackageName())
	}
	return file, nil
}

// loadInstance parses the given files and builds them as one CUE package.
// Positions in errors carry the files' display names.
func loadInstance(ctx *cue.Context, files []source, extra ...*ast.File) (cue.Value, cueerrors.Error) {
	inst := build.NewContext().NewInstance(cuePackage, nil)
	var errs cueerrors.Error
	for _, f := range files {
		file, err := parseSource(f)
		if err != nil {
			errs = cueerrors.Append(errs, err)
			continue
		}
		if err := inst.AddSyntax(file); err != nil {
			errs = cueerrors.Append(errs, err)
		}
	}
	for _, f := range extra {
		if err := inst.AddSyntax(f); err != nil {
			errs = cueerrors.Append(errs, err)
		}
	}
	if errs != nil {
		return cue.Value{}, errs
	}
	v := ctx.BuildInstance(inst)
	if err := v.Err(); err != nil {
		return v, cueerrors.Promote(err, "")
	}
	return v, nil
}

func packagePos(f *ast.File) token.Pos {
	for _, d := range f.Decls {
		if pkg, ok := d.(*ast.Package); ok {
			return pkg.Pos()
		}
	}
	return f.Pos()
}

// newContext returns a fresh CUE context; one is used per profile so that
// generation of different profiles can run concurrently.
func newContext() *cue.Context { return cuecontext.New() }

package gen

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"cuelang.org/go/cue/ast"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"
	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
)

// Component folders. A component (an engine or a plugin) is one folder
// holding its Go package and the CUE that declares it: every .cue file of
// the folder (package workergen) defines exactly one of
//
//	engines: <name>: {...}   (#EngineMeta, schemas/profile.cue)
//	plugins: <name>: {...}   (#PluginMeta)
//
// plus `let` and import declarations. The folder is found from the Go
// import path a profile names: below this module's root for an import path
// inside its module (EnginesDir/..., PluginsDir/...), in the module's
// folder for a third-party one (a local `replace` directory, else the
// module cache through `go mod download -json <module>@<version>`).
const (
	EnginesDir = "engines"
	PluginsDir = "plugins"
)

// componentDir is the CUE of one component folder.
type componentDir struct {
	// Import is the Go import path of the folder's package.
	Import string
	// Section is "engines" or "plugins"; Name the key declared there.
	Section, Name string
	// Pos is where the name is declared.
	Pos   token.Pos
	Files []source
}

// kind is "engine" or "plugin".
func (c *componentDir) kind() string { return strings.TrimSuffix(c.Section, "s") }

// ModulePath returns the module path declared by root/go.mod.
func ModulePath(root string) (string, error) {
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("reading the module path: %w", err)
	}
	mp := modfile.ModulePath(data)
	if mp == "" {
		return "", fmt.Errorf("%s: no module line", filepath.Join(root, "go.mod"))
	}
	return mp, nil
}

// inTreeComponents finds every component folder below root/engines and
// root/plugins (folders holding .cue files; testdata folders and nested
// modules are skipped), sorted by import path.
func inTreeComponents(root, modPath string) ([]*componentDir, cueerrors.Error) {
	var out []*componentDir
	var errs cueerrors.Error
	for _, top := range []string{EnginesDir, PluginsDir} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			if d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			rel := displayPath(root, p)
			c, cerr := readComponentDir(p, rel, modPath+"/"+rel)
			errs = cueerrors.Append(errs, cerr)
			if c != nil {
				out = append(out, c)
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			errs = cueerrors.Append(errs, cueerrors.Promote(err, "listing components"))
		}
	}
	slices.SortFunc(out, func(a, b *componentDir) int { return cmp.Compare(a.Import, b.Import) })
	return out, errs
}

// readComponentDir reads the CUE of the folder dir, whose files positions
// name display/<file>. It returns nil and no error for a folder without
// .cue files.
func readComponentDir(dir, display, importPath string) (*componentDir, cueerrors.Error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, cueerrors.Promote(err, "reading "+display)
	}
	c := &componentDir{Import: importPath}
	var errs cueerrors.Error
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".cue") {
			continue
		}
		src := source{Name: path.Join(display, e.Name()), Path: filepath.Join(dir, e.Name())}
		c.Files = append(c.Files, src)
		f, perr := parseSource(src)
		if perr != nil {
			errs = cueerrors.Append(errs, perr)
			continue
		}
		errs = cueerrors.Append(errs, c.addDecls(f))
	}
	if len(c.Files) == 0 {
		return nil, nil
	}
	if errs == nil && c.Name == "" {
		errs = cueerrors.Newf(token.NoPos, "%s: its CUE declares no component: add `plugins: <name>: {...}` or `engines: <name>: {...}`", display)
	}
	if errs != nil {
		return nil, errs
	}
	return c, nil
}

// addDecls records the component file f declares, rejecting anything else
// at its top level and a second component.
func (c *componentDir) addDecls(f *ast.File) cueerrors.Error {
	var errs cueerrors.Error
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.Package, *ast.ImportDecl, *ast.LetClause, *ast.CommentGroup, *ast.Attribute:
			continue
		case *ast.Field:
			section, _, _ := ast.LabelName(d.Label)
			st, ok := d.Value.(*ast.StructLit)
			if (section != "engines" && section != "plugins") || !ok {
				errs = cueerrors.Append(errs, cueerrors.Newf(d.Pos(), "%s: a component's CUE defines only `engines: <name>: {...}` or `plugins: <name>: {...}`, not %q", f.Filename, section))
				continue
			}
			for _, elt := range st.Elts {
				errs = cueerrors.Append(errs, c.addName(f.Filename, section, elt))
			}
		default:
			errs = cueerrors.Append(errs, cueerrors.Newf(d.Pos(), "%s: a component's CUE defines only `engines: <name>: {...}` or `plugins: <name>: {...}`", f.Filename))
		}
	}
	return errs
}

func (c *componentDir) addName(file, section string, elt ast.Decl) cueerrors.Error {
	switch elt.(type) {
	case *ast.LetClause, *ast.CommentGroup:
		return nil
	}
	fld, ok := elt.(*ast.Field)
	if !ok {
		return cueerrors.Newf(elt.Pos(), "%s: %s holds one `<name>: {...}` field", file, section)
	}
	name, _, err := ast.LabelName(fld.Label)
	if err != nil {
		return cueerrors.Newf(fld.Pos(), "%s: %s.<name> must be a literal name", file, section)
	}
	if c.Name == "" {
		c.Section, c.Name, c.Pos = section, name, fld.Label.Pos()
		return nil
	}
	if c.Section != section || c.Name != name {
		return cueerrors.Newf(fld.Label.Pos(), "%s: a component folder declares one component; this one already declares %s.%s (%s): move %s.%s to its own folder",
			file, c.Section, c.Name, c.Pos, section, name)
	}
	return nil
}

// moduleInfo is what `go mod download -json` prints for one module.
type moduleInfo struct {
	Path, Version, Error, Dir, GoMod, Sum, GoModSum string
}

// DownloadTimeout bounds one `go mod download` of a third-party module.
var DownloadTimeout = 5 * time.Minute

// downloadModule runs `go mod download -json mod@version` in root (with
// GOWORK=off and GOFLAGS=-mod=mod, other settings such as GOPROXY from
// the environment) and returns the module's folder in the module cache.
func downloadModule(root, mod, version string) (*moduleInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DownloadTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod+"@"+version)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var info moduleInfo
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if runErr != nil && msg == "" {
			msg = runErr.Error()
		}
		return nil, fmt.Errorf("go mod download %s@%s: %s", mod, version, cmp.Or(msg, "no JSON output"))
	}
	if info.Error != "" {
		return nil, fmt.Errorf("go mod download %s@%s: %s", mod, version, info.Error)
	}
	if runErr != nil || info.Dir == "" {
		return nil, fmt.Errorf("go mod download %s@%s: %v %s", mod, version, runErr, strings.TrimSpace(stderr.String()))
	}
	return &info, nil
}

// checkModulePath checks a profile's module and version fields and that
// the import path lies inside the module.
func checkModuleRef(imp, mod, version string) error {
	if err := module.CheckPath(mod); err != nil {
		return fmt.Errorf("module %q is not a module path: %w", mod, err)
	}
	if imp != mod && !strings.HasPrefix(imp, mod+"/") {
		return fmt.Errorf("import %q is not inside module %q: the module path must be a prefix of the import path", imp, mod)
	}
	if err := module.Check(mod, version); err != nil {
		return fmt.Errorf("version %q: %w (write a semantic version such as v1.2.0, or a pseudo-version)", version, err)
	}
	return nil
}

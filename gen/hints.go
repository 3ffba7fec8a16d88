package gen

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"

	"github.com/workergen/workergen/internal/suggest"
)

// addErr records err, each CUE error in it with a hint added where one
// helps (see withHint).
func (r *resolver) addErr(err error) {
	if err == nil {
		return
	}
	errs := cueerrors.Errors(err)
	byPath := map[string][]cueerrors.Error{}
	for _, e := range errs {
		k := strings.Join(e.Path(), ".")
		byPath[k] = append(byPath[k], e)
	}
	replaced := map[string]bool{}
	for _, e := range errs {
		k := strings.Join(e.Path(), ".")
		format, _ := e.Msg()
		if replaced[k] && strings.HasPrefix(format, "conflicting values") {
			continue // folded into the disjunction's message
		}
		if strings.Contains(format, "errors in empty disjunction") {
			if d := r.disjunctionError(k, byPath[k]); d != nil {
				r.errs = cueerrors.Append(r.errs, d)
				replaced[k] = true
				continue
			}
		}
		r.errs = cueerrors.Append(r.errs, r.withHint(e))
	}
}

// disjunctionError folds CUE's "N errors in empty disjunction" and its
// "conflicting values A and B" details (a value that is none of a list of
// literals, such as an unknown target OS) into one line: the value given,
// the closest allowed one and all of them, at the profile's line. It
// returns nil when the details are not all literal conflicts.
func (r *resolver) disjunctionError(path string, errs []cueerrors.Error) cueerrors.Error {
	count := map[string]int{}
	conflicts := 0
	var positions []token.Pos
	for _, e := range errs {
		format, args := e.Msg()
		if !strings.HasPrefix(format, "conflicting values") {
			if strings.Contains(format, "errors in empty disjunction") {
				continue
			}
			return nil
		}
		if len(args) < 2 {
			return nil
		}
		conflicts++
		a, b := fmt.Sprint(args[0]), fmt.Sprint(args[1])
		count[a]++
		if b != a {
			count[b]++
		}
		positions = append(positions, cueerrors.Positions(e)...)
	}
	if conflicts < 2 {
		return nil
	}
	given := ""
	var allowed []string
	for v, n := range count {
		if n == conflicts && given == "" {
			given = v
		} else {
			allowed = append(allowed, v)
		}
	}
	if given == "" || len(allowed) == 0 {
		return nil
	}
	slices.Sort(allowed)
	var pos token.Pos
	for _, p := range positions {
		if p.IsValid() && p.Filename() == r.p.File {
			pos = p
			break
		}
		if !pos.IsValid() {
			pos = p
		}
	}
	hint := ""
	unquoted := make([]string, len(allowed))
	for i, a := range allowed {
		unquoted[i] = strings.Trim(a, `"`)
	}
	if best := suggest.Closest(strings.Trim(given, `"`), unquoted); best != "" {
		hint = fmt.Sprintf(" did you mean %q?", best)
	}
	return cueerrors.Newf(pos, "%s: %s is not allowed;%s allowed values: %s", path, given, hint, strings.Join(allowed, ", "))
}

// withHint turns CUE's "field not allowed" (a typo in a closed struct)
// into a message that says what to write instead: the closest allowed
// field name, and the list of allowed ones.
func (r *resolver) withHint(e cueerrors.Error) cueerrors.Error {
	format, _ := e.Msg()
	path := e.Path()
	if !strings.Contains(format, "field not allowed") || len(path) < 2 || !r.cur.Exists() {
		return e
	}
	bad := path[len(path)-1]
	schema, shown := r.schemaFor(path[:len(path)-1])
	if !schema.Exists() {
		return e
	}
	iter, err := schema.Fields(cue.Optional(true))
	if err != nil {
		return e
	}
	var allowed []string
	for iter.Next() {
		allowed = append(allowed, iter.Selector().Unquoted())
	}
	slices.Sort(allowed)
	hint := "no fields are allowed here"
	if len(allowed) > 0 {
		hint = "allowed fields here: " + strings.Join(allowed, ", ")
	}
	if best := suggest.Closest(bad, allowed); best != "" {
		hint = fmt.Sprintf("did you mean %q? %s", best, hint)
	}
	// Prefer the position in the profile file, or in the component's CUE.
	pos := e.Position()
	for _, p := range cueerrors.Positions(e) {
		if p.IsValid() && (p.Filename() == r.p.File || (path[0] != "profile" && !strings.HasPrefix(p.Filename(), SchemasDir+"/"))) {
			pos = p
			break
		}
		if !pos.IsValid() {
			pos = p
		}
	}
	return cueerrors.Newf(pos, "%s.%s: field not allowed; %s", shown, bad, hint)
}

// schemaFor returns the schema value that constrains the struct at path
// (in the loaded or composed package) and the path to show the user.
func (r *resolver) schemaFor(path []string) (cue.Value, string) {
	sels := func(ps []string) []cue.Selector {
		out := make([]cue.Selector, 0, len(ps))
		for _, p := range ps {
			if _, err := strconv.Atoi(p); err == nil {
				out = append(out, cue.AnyIndex)
			} else {
				out = append(out, cue.Str(p))
			}
		}
		return out
	}
	joined := strings.Join(path, ".")
	switch {
	case (path[0] == "plugins" || path[0] == "engines") && len(path) >= 2:
		def := "#PluginMeta"
		if path[0] == "engines" {
			def = "#EngineMeta"
		}
		return r.cur.LookupPath(cue.MakePath(append([]cue.Selector{cue.Def(def)}, sels(path[2:])...)...)), joined
	case path[0] == "profile":
		return r.cur.LookupPath(cue.MakePath(append([]cue.Selector{cue.Def("#Profile")}, sels(path[1:])...)...)), joined
	case len(path) >= 3 && path[0] == "generated" && path[1] == "defaults" && path[2] == "engine":
		rest := path[3:]
		v := r.cur.LookupPath(cue.MakePath(append([]cue.Selector{cue.Str("engines"), cue.Str(r.p.Engine.Name), cue.Def("#Config")}, sels(rest)...)...))
		return v, strings.Join(append([]string{"profile.engine.config"}, rest...), ".")
	case len(path) >= 4 && path[0] == "generated" && path[1] == "defaults" && path[2] == "plugins":
		rest := path[4:]
		v := r.cur.LookupPath(cue.MakePath(append([]cue.Selector{cue.Str("plugins"), cue.Str(path[3]), cue.Def("#Config")}, sels(rest)...)...))
		return v, strings.Join(append([]string{"profile.plugins." + path[3] + ".config"}, rest...), ".")
	}
	return cue.Value{}, joined
}

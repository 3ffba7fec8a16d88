package native

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/workergen/workergen/engines"
)

// DefaultInheritEnvPOSIX is the default `inheritEnv` on Linux and macOS: the
// variables a login session would give a user, which tasks written for
// generic-worker's insecure engine expect to find.
var DefaultInheritEnvPOSIX = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TMPDIR", "SHELL", "TERM"}

// DefaultInheritEnvWindows is the default `inheritEnv` on Windows: what
// cmd.exe and most programs need to run at all.
var DefaultInheritEnvWindows = []string{
	"ALLUSERSPROFILE", "APPDATA", "COMPUTERNAME", "ComSpec", "CommonProgramFiles", "CommonProgramFiles(x86)",
	"CommonProgramW6432", "HOMEDRIVE", "HOMEPATH", "LOCALAPPDATA", "NUMBER_OF_PROCESSORS", "OS", "PATH",
	"PATHEXT", "PROCESSOR_ARCHITECTURE", "PROCESSOR_IDENTIFIER", "PROCESSOR_LEVEL", "PROCESSOR_REVISION",
	"ProgramData", "ProgramFiles", "ProgramFiles(x86)", "ProgramW6432", "PUBLIC", "SystemDrive", "SystemRoot",
	"TEMP", "TMP", "USERDOMAIN", "USERNAME", "USERPROFILE", "windir",
}

// envRules are the platform's environment variable rules.
type envRules struct {
	// foldCase: names are case-insensitive (Windows).
	foldCase bool
	// maxEntry is the largest "NAME=value" entry, in bytes (POSIX, NUL
	// included) or UTF-16 code units (Windows), that can be passed to a
	// new process; 0 means no per-entry limit.
	maxEntry int
	// utf16 counts maxEntry in UTF-16 code units.
	utf16 bool
	// limitSource names where maxEntry comes from, for error messages.
	limitSource string
}

// validName checks a variable name with the contract's rules
// (engines.CheckEnv).
func validName(name string) error { return engines.CheckEnv(name, "") }

// validValue checks value against NUL and the platform's entry size limit.
func (r envRules) validValue(name, value string) error {
	if strings.ContainsRune(value, 0) {
		return fmt.Errorf("%s: value contains NUL: %w", name, engines.ErrInvalidEnvValue)
	}
	if r.maxEntry <= 0 {
		return nil
	}
	size := len(name) + 1 + len(value) + 1
	if r.utf16 {
		size = len(utf16.Encode([]rune(name + "=" + value)))
	}
	if size > r.maxEntry {
		return fmt.Errorf("%s: %d-byte value is too large: %s limits one variable to %d bytes including its name: %w",
			name, len(value), r.limitSource, r.maxEntry, engines.ErrInvalidEnvValue)
	}
	return nil
}

// key is the map key for name under the rules.
func (r envRules) key(name string) string {
	if r.foldCase {
		return strings.ToUpper(name)
	}
	return name
}

// inheritMatcher matches worker environment names against `inheritEnv`
// entries: exact names, or a prefix followed by '*' ("LC_*").
type inheritMatcher struct {
	exact    map[string]bool
	prefixes []string
	foldCase bool
}

func newInheritMatcher(list []string, foldCase bool) (inheritMatcher, error) {
	m := inheritMatcher{exact: map[string]bool{}, foldCase: foldCase}
	for i, n := range list {
		if err := validName(strings.TrimSuffix(n, "*")); err != nil {
			return m, fmt.Errorf("engine.inheritEnv[%d]: %w", i, err)
		}
		if strings.Contains(strings.TrimSuffix(n, "*"), "*") {
			return m, fmt.Errorf("engine.inheritEnv[%d]: %q: '*' is only allowed at the end", i, n)
		}
		if strings.HasPrefix(strings.ToUpper(n), "TASKCLUSTER_") {
			return m, fmt.Errorf("engine.inheritEnv[%d]: %q: the worker's TASKCLUSTER_* variables (its credentials) are never passed to tasks", i, n)
		}
		if foldCase {
			n = strings.ToUpper(n)
		}
		if p, ok := strings.CutSuffix(n, "*"); ok {
			m.prefixes = append(m.prefixes, p)
		} else {
			m.exact[n] = true
		}
	}
	return m, nil
}

func (m inheritMatcher) match(name string) bool {
	if m.foldCase {
		name = strings.ToUpper(name)
	}
	if strings.HasPrefix(name, "TASKCLUSTER_") {
		return false
	}
	if m.exact[name] {
		return true
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// mergeEnv returns the task environment: the entries of worker (os.Environ
// form) that inherit matches, then set (the SetEnv variables, in order),
// which override inherited variables of the same name. The result is sorted
// by name for a deterministic environment block.
func mergeEnv(worker []string, m inheritMatcher, set [][2]string, r envRules) []string {
	byKey := map[string]string{}
	for _, kv := range worker {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" || !m.match(name) {
			continue
		}
		byKey[r.key(name)] = kv
	}
	for _, nv := range set {
		byKey[r.key(nv[0])] = nv[0] + "=" + nv[1]
	}
	out := make([]string, 0, len(byKey))
	for _, kv := range byKey {
		out = append(out, kv)
	}
	slices.Sort(out)
	return out
}

// lookupEnv returns the value of name in env (os.Environ form).
func lookupEnv(env []string, name string, r envRules) (string, bool) {
	for _, kv := range env {
		n, v, _ := strings.Cut(kv, "=")
		if r.key(n) == r.key(name) {
			return v, true
		}
	}
	return "", false
}

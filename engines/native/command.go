package native

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"

	"github.com/workergen/workergen/task"
)

// commands is the decoded payload `command`: on POSIX one argv per command
// (generic-worker insecure_posix / multiuser_posix schema, `[][]string`), on
// Windows one cmd.exe command line per command (multiuser_windows schema,
// `[]string`). Exactly one of argv and lines is set.
type commands struct {
	argv  [][]string
	lines []string
}

func (c commands) len() int {
	if c.lines != nil {
		return len(c.lines)
	}
	return len(c.argv)
}

// describe renders command i for the task log.
func (c commands) describe(i int) string {
	if c.lines != nil {
		return c.lines[i]
	}
	return shellQuote(c.argv[i])
}

// parseCommands decodes the payload's `command` for goos. Problems are
// malformed-payload errors naming the field.
func parseCommands(goos string, payload json.RawMessage) (commands, error) {
	var p struct {
		Command json.RawMessage `json:"command"`
	}
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &p); err != nil {
			return commands{}, task.MalformedPayloadf("payload: %v", err)
		}
	}
	if len(p.Command) == 0 || string(p.Command) == "null" {
		return commands{}, task.MalformedPayloadf("payload.command: required: the commands to run")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(p.Command, &items); err != nil {
		return commands{}, task.MalformedPayloadf("payload.command: must be an array: %v", err)
	}
	if len(items) == 0 {
		return commands{}, task.MalformedPayloadf("payload.command: at least one command is required")
	}
	if goos == "windows" {
		lines := make([]string, len(items))
		for i, it := range items {
			if err := json.Unmarshal(it, &lines[i]); err != nil {
				return commands{}, task.MalformedPayloadf("payload.command[%d]: must be a string (a line of a Windows .bat file): %v", i, jsonTypeMsg(err))
			}
			if strings.ContainsRune(lines[i], 0) {
				return commands{}, task.MalformedPayloadf("payload.command[%d]: contains NUL", i)
			}
		}
		return commands{lines: lines}, nil
	}
	argv := make([][]string, len(items))
	for i, it := range items {
		if err := json.Unmarshal(it, &argv[i]); err != nil {
			return commands{}, task.MalformedPayloadf("payload.command[%d]: must be an array of strings (program and arguments): %v", i, jsonTypeMsg(err))
		}
		if len(argv[i]) == 0 {
			return commands{}, task.MalformedPayloadf("payload.command[%d]: empty: a command needs at least the program to run", i)
		}
		if argv[i][0] == "" {
			return commands{}, task.MalformedPayloadf("payload.command[%d][0]: empty program name", i)
		}
		for j, a := range argv[i] {
			if strings.ContainsRune(a, 0) {
				return commands{}, task.MalformedPayloadf("payload.command[%d][%d]: contains NUL", i, j)
			}
		}
	}
	return commands{argv: argv}, nil
}

func jsonTypeMsg(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "found " + te.Value
	}
	return err.Error()
}

// shellQuote renders argv the way a POSIX shell would read it back.
func shellQuote(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			b.WriteString(a)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(a, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String()
}

// Exit codes for a command that could not be started, as POSIX shells
// report them.
const (
	exitNotFound      = 127
	exitNotExecutable = 126
)

// errNotFound is returned by lookPath when no executable is found.
var errNotFound = errors.New("executable file not found in the task's PATH")

// lookPath resolves a POSIX program name the way execvp does, but with the
// task's PATH (pathEnv) rather than the worker's, and relative to the task
// directory dir: a name containing '/' is used as is (relative to dir);
// otherwise each PATH element is tried in order (an empty element means
// dir). It returns the path to exec and an exit code to report when it is
// unusable (127 not found, 126 not executable).
func lookPath(name, pathEnv, dir string) (string, int, error) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", exitNotFound, fmt.Errorf("%s: %w", name, err)
			}
			return "", exitNotExecutable, fmt.Errorf("%s: %w", name, err)
		}
		return p, 0, nil
	}
	var denied error
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, name)
		err := executable(p)
		if err == nil {
			return p, 0, nil
		}
		if !errors.Is(err, fs.ErrNotExist) && denied == nil {
			denied = fmt.Errorf("%s: %w", p, err)
		}
	}
	if denied != nil {
		return "", exitNotExecutable, denied
	}
	return "", exitNotFound, fmt.Errorf("%q: %w", name, errNotFound)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("is a directory")
	}
	if fi.Mode()&0o111 == 0 {
		return fs.ErrPermission
	}
	return nil
}

// ---------------------------------------------------------------------------
// Windows: generic-worker's command wrapping, platform-independent so it is
// tested everywhere.
//
// generic-worker (workers/generic-worker/multiuser_windows.go, prepareCommand)
// runs payload command i as command_<i>.bat ("@echo on" + the line) called
// from command_<i>_wrapper.bat, which first restores the environment and
// working directory the previous command left (`set > env.txt`,
// `cd > dir.txt` at the end of each wrapper) and exits with the command's
// errorlevel. So `set FOO=bar` or `cd src` in one command is seen by the
// next. workergen keeps that behaviour with two differences that make it
// exact: the saved environment is written as UTF-16 (`cmd /u /c set`) and
// handed to the next command as its process environment by the engine
// (instead of `set NAME=value` lines, which cmd.exe would re-parse), and
// the first command's environment is the process environment built from
// inheritEnv and SetEnv (instead of `set` lines), so values pass unchanged.
// Variables whose values hold a line break cannot survive the `set` dump;
// they reach the first command intact only.

// batFiles are the generated files of command i.
type batFiles struct {
	Script, Wrapper string // paths
	EnvOut, DirOut  string // where the wrapper saves env and cwd ("" for the last command)
}

// batPaths names the files of command i of n in dir (a Windows path; joined
// with '\\' whatever the OS the code runs on, so it is testable anywhere).
func batPaths(dir string, i, n int) batFiles {
	base := strings.TrimRight(dir, `\`) + `\` + fmt.Sprintf("command_%06d", i)
	f := batFiles{Script: base + ".bat", Wrapper: base + "_wrapper.bat"}
	if i < n-1 {
		f.EnvOut = base + "_env.txt"
		f.DirOut = base + "_dir.txt"
	}
	return f
}

// exitCodeVar holds the command's errorlevel inside the wrapper; it is
// removed from the environment handed to the next command.
const exitCodeVar = "WORKERGEN_EXIT_CODE"

// batScript is the content of command_<i>.bat: echo on, then the payload
// line, as generic-worker writes it.
func batScript(line string) []byte {
	return []byte("@echo on\r\n" + line + "\r\n")
}

// batWrapper is the content of command_<i>_wrapper.bat.
func batWrapper(f batFiles, taskID string, i int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, ":: workergen: runs command %d of task %s\r\n", i, taskID)
	b.WriteString("@echo off\r\n")
	// errorlevel must not be a variable, else %errorlevel% reads it
	// (https://devblogs.microsoft.com/oldnewthing/20080926-00/?p=20743).
	b.WriteString("set errorlevel=\r\n")
	b.WriteString("call " + batQuote(f.Script) + " 2>&1\r\n")
	b.WriteString("@echo off\r\n")
	b.WriteString("set " + exitCodeVar + "=%errorlevel%\r\n")
	if f.EnvOut != "" {
		b.WriteString("cmd.exe /d /u /c set > " + batQuote(f.EnvOut) + "\r\n")
		b.WriteString("cmd.exe /d /u /c cd > " + batQuote(f.DirOut) + "\r\n")
	}
	b.WriteString("exit /b %" + exitCodeVar + "%\r\n")
	return []byte(b.String())
}

// batQuote quotes a path for a .bat line: in double quotes, with '%'
// doubled (cmd.exe expands %VAR% even inside quotes).
func batQuote(p string) string {
	return `"` + strings.ReplaceAll(p, "%", "%%") + `"`
}

// cmdLine is the raw command line that runs a wrapper with cmd.exe: /d
// skips AutoRun commands from the registry, /s strips the outer quotes so
// paths with spaces survive.
func cmdLine(comspec, wrapper string) string {
	return `"` + comspec + `" /d /s /c ""` + wrapper + `""`
}

// parseSavedEnv decodes what `cmd /u /c set` wrote (UTF-16LE, CRLF lines of
// NAME=value) into os.Environ form, dropping the wrapper's exit code
// variable.
func parseSavedEnv(data []byte) ([]string, error) {
	text, err := decodeUTF16LE(data)
	if err != nil {
		return nil, err
	}
	var env []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSuffix(line, "\r")
		name, _, ok := strings.Cut(line, "=")
		if !ok || name == "" || strings.EqualFold(name, exitCodeVar) {
			continue
		}
		env = append(env, line)
	}
	return env, nil
}

// parseSavedDir decodes what `cmd /u /c cd` wrote: one line with the
// working directory.
func parseSavedDir(data []byte) (string, error) {
	text, err := decodeUTF16LE(data)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(text, "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return "", errors.New("empty working directory")
	}
	return line, nil
}

func decodeUTF16LE(data []byte) (string, error) {
	data = bytes.TrimPrefix(data, []byte{0xff, 0xfe}) // BOM, if any
	if len(data)%2 != 0 {
		return "", fmt.Errorf("saved cmd.exe output: odd length %d for UTF-16", len(data))
	}
	u := make([]uint16, len(data)/2)
	for i := range u {
		u[i] = uint16(data[2*i]) | uint16(data[2*i+1])<<8
	}
	return string(utf16.Decode(u)), nil
}

package native

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/task"
)

func TestParseCommandsPOSIX(t *testing.T) {
	c, err := parseCommands("linux", json.RawMessage(`{"command":[["echo","hi"],["true"]],"env":{"A":"1"}}`))
	require.NoError(t, err)
	assert.Equal(t, [][]string{{"echo", "hi"}, {"true"}}, c.argv)
	assert.Nil(t, c.lines)
	assert.Equal(t, 2, c.len())

	for payload, field := range map[string]string{
		`{}`:                            "payload.command: required",
		`{"command":null}`:              "payload.command: required",
		`{"command":[]}`:                "payload.command: at least one",
		`{"command":"echo"}`:            "payload.command: must be an array",
		`{"command":[["a"],"b c"]}`:     "payload.command[1]: must be an array of strings",
		`{"command":[["a"],[]]}`:        "payload.command[1]: empty",
		`{"command":[[""]]}`:            "payload.command[0][0]: empty program",
		`{"command":[["a",1]]}`:         "payload.command[0]: must be an array of strings",
		`{"command":[["a","b\u0000"]]}`: "payload.command[0][1]: contains NUL",
	} {
		_, err := parseCommands("darwin", json.RawMessage(payload))
		var ee *task.ExceptionError
		if assert.True(t, errors.As(err, &ee), payload) {
			assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
			assert.Contains(t, err.Error(), field, payload)
		}
	}
}

func TestParseCommandsWindows(t *testing.T) {
	c, err := parseCommands("windows", json.RawMessage(`{"command":["set FOO=bar","echo %FOO%"]}`))
	require.NoError(t, err)
	assert.Equal(t, []string{"set FOO=bar", "echo %FOO%"}, c.lines)
	assert.Equal(t, "echo %FOO%", c.describe(1))

	_, err = parseCommands("windows", json.RawMessage(`{"command":[["echo","hi"]]}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "payload.command[0]: must be a string")
}

func TestShellQuote(t *testing.T) {
	assert.Equal(t, `echo hello`, shellQuote([]string{"echo", "hello"}))
	assert.Equal(t, `sh -c 'echo "a b"; it'\''s'`, shellQuote([]string{"sh", "-c", `echo "a b"; it's`}))
	assert.Equal(t, `printf ''`, shellQuote([]string{"printf", ""}))
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"PATH", "lower", "_x", "1ABC", "A.B", "WITH SPACE", "é"} {
		assert.NoError(t, validName(ok), ok)
	}
	for _, bad := range []string{"", "A=B", "=C", "A\x00"} {
		assert.ErrorIs(t, validName(bad), engines.ErrInvalidEnvName, bad)
	}
}

func TestValidValueLimits(t *testing.T) {
	linux := envRules{maxEntry: 131072, limitSource: "Linux (MAX_ARG_STRLEN)"}
	assert.NoError(t, linux.validValue("X", strings.Repeat("a", 131072-3)))
	err := linux.validValue("X", strings.Repeat("a", 131072-2))
	assert.ErrorIs(t, err, engines.ErrInvalidEnvValue)
	assert.Contains(t, err.Error(), "MAX_ARG_STRLEN")
	assert.ErrorIs(t, linux.validValue("X", "a\x00b"), engines.ErrInvalidEnvValue)

	windows := envRules{foldCase: true, maxEntry: 32767, utf16: true, limitSource: "Windows"}
	assert.NoError(t, windows.validValue("X", strings.Repeat("é", 32765))) // 2-byte UTF-8, 1 UTF-16 unit
	assert.ErrorIs(t, windows.validValue("X", strings.Repeat("é", 32766)), engines.ErrInvalidEnvValue)
	assert.NoError(t, envRules{}.validValue("X", strings.Repeat("a", 4<<20)))
}

func TestInheritMatcher(t *testing.T) {
	m, err := newInheritMatcher([]string{"PATH", "LC_*", "HOME"}, false)
	require.NoError(t, err)
	assert.True(t, m.match("PATH"))
	assert.True(t, m.match("LC_CTYPE"))
	assert.False(t, m.match("path"))
	assert.False(t, m.match("SECRET"))

	for _, bad := range [][]string{{"TASKCLUSTER_ACCESS_TOKEN"}, {"TASKCLUSTER_*"}, {"taskcluster_client_id"}, {"A*B"}, {""}, {"A=B"}} {
		_, err := newInheritMatcher(bad, false)
		assert.Error(t, err, bad)
		assert.Contains(t, err.Error(), "engine.inheritEnv[0]")
	}
	// A prefix that covers TASKCLUSTER_ names still never passes them.
	m, err = newInheritMatcher([]string{"T*"}, false)
	require.NoError(t, err)
	assert.True(t, m.match("TERM"))
	assert.False(t, m.match("TASKCLUSTER_ACCESS_TOKEN"))
}

func TestMergeEnv(t *testing.T) {
	worker := []string{"PATH=/usr/bin", "HOME=/home/w", "SECRET=x", "TASKCLUSTER_ACCESS_TOKEN=tok", "LC_ALL=C", "EMPTY="}
	m, err := newInheritMatcher([]string{"PATH", "HOME", "LC_*", "EMPTY", "MISSING"}, false)
	require.NoError(t, err)
	got := mergeEnv(worker, m, [][2]string{{"HOME", "/task"}, {"TASK_ID", "abc"}, {"MULTI", "a\nb=c"}}, envRules{})
	assert.Equal(t, []string{"EMPTY=", "HOME=/task", "LC_ALL=C", "MULTI=a\nb=c", "PATH=/usr/bin", "TASK_ID=abc"}, got)

	// Windows: names fold case; a SetEnv replaces the inherited variable
	// whatever its case.
	mw, err := newInheritMatcher([]string{"Path", "SystemRoot"}, true)
	require.NoError(t, err)
	got = mergeEnv([]string{"PATH=C:\\Windows", "SYSTEMROOT=C:\\Windows", "Other=1"}, mw, [][2]string{{"path", "C:\\tools"}}, envRules{foldCase: true})
	assert.Equal(t, []string{"SYSTEMROOT=C:\\Windows", "path=C:\\tools"}, got)
	v, ok := lookupEnv(got, "Path", envRules{foldCase: true})
	assert.True(t, ok)
	assert.Equal(t, "C:\\tools", v)
}

func TestLookPath(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX lookup")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.Mkdir(bin, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "tool"), []byte("#!/bin/sh\n"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "noexec"), []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "local.sh"), []byte("#!/bin/sh\n"), 0o755))

	p, _, err := lookPath("tool", "/nonexistent:"+bin, dir)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(bin, "tool"), p)

	// Relative PATH entries and names with '/' are relative to the task dir.
	p, _, err = lookPath("tool", "bin", dir)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(bin, "tool"), p)
	p, _, err = lookPath("./local.sh", "", dir)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "local.sh"), p)

	_, code, err := lookPath("missing", bin, dir)
	assert.ErrorIs(t, err, errNotFound)
	assert.Equal(t, 127, code)
	_, code, err = lookPath("noexec", bin, dir)
	assert.Error(t, err)
	assert.Equal(t, 126, code)
	_, code, _ = lookPath("./missing.sh", "", dir)
	assert.Equal(t, 127, code)
	_, code, _ = lookPath("bin", "", dir+"/..") // a directory
	assert.Equal(t, 127, code)
}

func TestBatWrapper(t *testing.T) {
	dir := `C:\Users\task 1\AppData\Local\Temp\workergen-native-42`
	first := batPaths(dir, 0, 2)
	assert.Equal(t, dir+`\command_000000.bat`, first.Script)
	got := string(batWrapper(first, "TASKID", 0))
	want := ":: workergen: runs command 0 of task TASKID\r\n" +
		"@echo off\r\n" +
		"set errorlevel=\r\n" +
		`call "` + dir + `\command_000000.bat" 2>&1` + "\r\n" +
		"@echo off\r\n" +
		"set WORKERGEN_EXIT_CODE=%errorlevel%\r\n" +
		`cmd.exe /d /u /c set > "` + dir + `\command_000000_env.txt"` + "\r\n" +
		`cmd.exe /d /u /c cd > "` + dir + `\command_000000_dir.txt"` + "\r\n" +
		"exit /b %WORKERGEN_EXIT_CODE%\r\n"
	assert.Equal(t, want, got)

	// The last command saves nothing.
	last := batPaths(dir, 1, 2)
	assert.Empty(t, last.EnvOut)
	got = string(batWrapper(last, "TASKID", 1))
	assert.NotContains(t, got, "set >")
	assert.True(t, strings.HasSuffix(got, "exit /b %WORKERGEN_EXIT_CODE%\r\n"))

	assert.Equal(t, "@echo on\r\necho 100%% & dir\r\n", string(batScript("echo 100%% & dir")))
	assert.Equal(t, `"C:\a b\100%%.bat"`, batQuote(`C:\a b\100%.bat`))
	assert.Equal(t, `"C:\Windows\system32\cmd.exe" /d /s /c ""C:\a b\w.bat""`, cmdLine(`C:\Windows\system32\cmd.exe`, `C:\a b\w.bat`))
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 0, 2*len(u))
	for _, c := range u {
		b = append(b, byte(c), byte(c>>8))
	}
	return b
}

func TestParseSaved(t *testing.T) {
	env, err := parseSavedEnv(utf16le("ComSpec=C:\\Windows\\system32\\cmd.exe\r\nFOO=bär ✓ = x\r\nWORKERGEN_EXIT_CODE=0\r\nPath=C:\\bin;C:\\x\r\n"))
	require.NoError(t, err)
	assert.Equal(t, []string{`ComSpec=C:\Windows\system32\cmd.exe`, "FOO=bär ✓ = x", `Path=C:\bin;C:\x`}, env)

	dir, err := parseSavedDir(append([]byte{0xff, 0xfe}, utf16le("C:\\Users\\task_1\\src dir\r\n")...))
	require.NoError(t, err)
	assert.Equal(t, `C:\Users\task_1\src dir`, dir)

	_, err = parseSavedDir(nil)
	assert.Error(t, err)
	_, err = parseSavedEnv([]byte{1, 2, 3})
	assert.Error(t, err)
}

func TestConfig(t *testing.T) {
	_, err := New(engines.Options{Config: json.RawMessage(`{"inheritEnv":["PATH"],"bogus":1}`)})
	assert.ErrorContains(t, err, "bogus")
	_, err = New(engines.Options{Config: json.RawMessage(`{"inheritEnv":["TASKCLUSTER_ACCESS_TOKEN"]}`)})
	assert.ErrorContains(t, err, "engine.inheritEnv[0]")
	_, err = New(engines.Options{})
	assert.NoError(t, err)
}

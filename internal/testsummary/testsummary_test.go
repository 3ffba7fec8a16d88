package testsummary_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/internal/testsummary"
)

// TestSummaryOfARealRun runs `go test -json` on a small module (a package
// that passes, one with a failing test among passing ones that log, one
// with a failing subtest, one that does not build, one without tests) and
// checks the summary: the failures first, each with its own output only,
// then a line per package, then the totals.
func TestSummaryOfARealRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":            "module example.com/sum\n\ngo 1.24\n",
		"good/good_test.go": "package good\n\nimport \"testing\"\n\nfunc TestOK(t *testing.T) {}\n\nfunc TestSkipped(t *testing.T) { t.Skip(\"not here\") }\n",
		"bad/bad_test.go": `package bad

import (
	"fmt"
	"os"
	"testing"
)

func TestNoisy(t *testing.T) {
	for i := 0; i < 50; i++ {
		fmt.Fprintln(os.Stderr, "level=INFO msg=noise")
	}
}

func TestBroken(t *testing.T) {
	for i := 0; i < 30; i++ {
		t.Log("time=2026-01-01T00:00:00.000Z level=INFO msg=\"claimed task\" taskId=x")
	}
	t.Log("time=2026-01-01T00:00:00.000Z level=WARN msg=\"reclaim failed\"")
	t.Log("{\"time\":\"2026-01-01T00:00:00Z\",\"level\":\"DEBUG\",\"msg\":\"x\"}")
	t.Log("the useful line")
	t.Fatal("want 2, got 3")
}

func TestTable(t *testing.T) {
	t.Run("one", func(t *testing.T) {})
	t.Run("two", func(t *testing.T) { t.Error("two is wrong") })
}
`,
		"nobuild/nobuild_test.go": "package nobuild\n\nimport \"testing\"\n\nfunc TestX(t *testing.T) { undefined() }\n",
		"notests/notests.go":      "package notests\n",
	}
	for name, content := range files {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	cmd := exec.Command("go", "test", "-json", "-p=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	out, err := cmd.Output()
	require.Error(t, err, "the run fails")

	s := testsummary.New()
	var progress bytes.Buffer
	require.NoError(t, s.Read(bytes.NewReader(out), &progress))
	require.True(t, s.Failed())
	require.Regexp(t, `(?m)^ok    example.com/sum/good  \d+\.\ds  \(1 passed, 1 skipped\)$`, progress.String())
	require.Regexp(t, `(?m)^FAIL  example.com/sum/bad  \d+\.\ds  \(3 failed, 2 passed\)$`, progress.String())

	var sum bytes.Buffer
	s.Write(&sum)
	got := sum.String()
	t.Log(got)
	require.NotContains(t, got, "noise", "a passing test's output")
	require.NotContains(t, got, "claimed task", "an INFO log line of the failed test")
	require.NotContains(t, got, "=== RUN")
	require.NotContains(t, got, "outside any test", "a build failure twice")
	require.NotContains(t, got, "--- FAIL example.com/sum/bad TestTable\n", "the parent of a failed subtest")
	want := []string{
		"--- BUILD FAILED example.com/sum/nobuild",
		"undefined: undefined",
		"--- FAIL example.com/sum/bad TestBroken\n",
		"level=WARN msg=\"reclaim failed\"",
		"the useful line",
		"want 2, got 3",
		"(31 INFO and DEBUG log lines of this test left out; go test -v -run '^TestBroken$' example.com/sum/bad shows them)",
		"--- FAIL example.com/sum/bad TestTable/two\n",
		"two is wrong",
		"FAIL  example.com/sum/bad",
		"ok    example.com/sum/good",
		"FAIL  example.com/sum/nobuild  (build failed)",
		"-     1 packages without test files",
		"FAIL: 4 packages,",
	}
	last := -1
	for _, w := range want {
		i := strings.Index(got, w)
		require.Greater(t, i, last, "%q missing or out of order", w)
		last = i
	}
}

// TestSummaryPass: a run without failures ends "PASS" and Failed is false;
// a line that is not an event is passed through.
func TestSummaryPass(t *testing.T) {
	events := `go: downloading example.com/x v1.0.0
{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.1}
{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s\n"}
{"Action":"pass","Package":"p","Elapsed":0.2}
`
	s := testsummary.New()
	var progress, sum bytes.Buffer
	require.NoError(t, s.Read(strings.NewReader(events), &progress))
	require.Equal(t, "go: downloading example.com/x v1.0.0\nok    p  0.2s  (1 passed)\n", progress.String())
	require.False(t, s.Failed())
	s.Write(&sum)
	require.Equal(t, "ok    p  0.2s  (1 passed)\nPASS: 1 packages, 1 tests and subtests: 1 passed, 0 failed, 0 skipped; 0 failures above\n", sum.String())
}

package release_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"github.com/stretchr/testify/require"
)

// TestWorkflowsLint runs actionlint (as a library; shellcheck and pyflakes
// are not available offline, so those two external checks are off) on
// every workflow.
func TestWorkflowsLint(t *testing.T) {
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var out bytes.Buffer
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{WorkingDir: root, Oneline: true})
	require.NoError(t, err)
	errs, err := l.LintFiles(files, nil)
	require.NoError(t, err)
	require.Empty(t, errs, out.String())
}

func parseWorkflow(t *testing.T, name string) (*actionlint.Workflow, string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot(t), ".github", "workflows", name))
	require.NoError(t, err)
	w, errs := actionlint.Parse(src)
	require.Empty(t, errs)
	return w, string(src)
}

func runs(w *actionlint.Workflow) []string {
	var out []string
	for _, j := range w.Jobs {
		for _, s := range j.Steps {
			if r, ok := s.Exec.(*actionlint.ExecRun); ok && r.Run != nil {
				out = append(out, r.Run.Value)
			}
		}
	}
	return out
}

// TestReleaseWorkflow: a pushed v* tag runs `go tool mage release` and
// attaches archives, SHA256SUMS, SBOMs and the manifest to the release.
func TestReleaseWorkflow(t *testing.T) {
	w, _ := parseWorkflow(t, "release.yml")
	var tags []string
	for _, e := range w.On {
		if we, ok := e.(*actionlint.WebhookEvent); ok && we.EventName() == "push" {
			require.NotNil(t, we.Tags)
			for _, f := range we.Tags.Values {
				tags = append(tags, f.Value)
			}
		}
	}
	require.Equal(t, []string{"v*"}, tags)
	steps := strings.Join(runs(w), "\n")
	require.Contains(t, steps, "go tool mage release")
	require.Contains(t, steps, "sha256sum -c SHA256SUMS")
	require.Contains(t, steps, "gh release upload")
	for _, f := range []string{"*.tar.gz", "*.zip", "*.cdx.json", "manifest.json", "SHA256SUMS"} {
		require.Contains(t, steps, f)
	}
}

// TestCIWorkflow: pull requests run the README's test command.
func TestCIWorkflow(t *testing.T) {
	w, _ := parseWorkflow(t, "ci.yml")
	var events []string
	for _, e := range w.On {
		events = append(events, e.EventName())
	}
	require.Contains(t, events, "pull_request")
	readme, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	require.NoError(t, err)
	require.Contains(t, string(readme), "go tool mage test")
	require.Contains(t, runs(w), "go tool mage test")
}

// TestWorkflowsLintCatches guards the linter set-up: a broken workflow
// must be reported.
func TestWorkflowsLintCatches(t *testing.T) {
	l, err := actionlint.NewLinter(&bytes.Buffer{}, &actionlint.LinterOptions{WorkingDir: repoRoot(t)})
	require.NoError(t, err)
	errs, err := l.Lint(".github/workflows/broken.yml", []byte(`on: push
jobs:
  x:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-dept: 0
      - run: echo ${{ github.nope }}
`), nil)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(errs), 2, "unknown input and unknown context property")
}

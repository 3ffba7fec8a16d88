// Package testsummary turns the event stream of `go test -json` (the
// format of cmd/test2json: one JSON object a line with Action, Package,
// Test, Output and Elapsed; build errors as "build-output" events with
// ImportPath) into what a person reads: a line per package as it ends,
// then a summary with the failures first (package, test, that test's own
// output, so the logs of the tests that passed stay out of it, and its
// INFO and DEBUG log records counted instead of shown), a line per package
// and the totals.
//
// `go tool mage test` prints through it; it is our own small consumer
// rather than gotestsum so that no further tool joins go.mod's tool set
// and the summary can put failures first.
package testsummary

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Event is one test2json event.
type Event struct {
	Action     string  // start, run, pause, cont, pass, fail, skip, output, bench, build-output, build-fail
	Package    string  // import path of the package under test
	Test       string  // test name, "Parent/Sub" for a subtest; "" for the package
	Elapsed    float64 // seconds, on pass/fail/skip
	Output     string  // on output and build-output
	ImportPath string  // on build-output and build-fail: the package that failed to build
}

// Summary accumulates a test run's events. Feed it with Read.
type Summary struct {
	pkgs  map[string]*pkgResult
	order []string // packages in the order they ended
	build map[string]*strings.Builder
	other strings.Builder // lines that are not events (e.g. go: downloading)
}

type pkgResult struct {
	name            string
	action          string // pass, fail, skip; "" while running
	elapsed         time.Duration
	out             strings.Builder // package-level output (no test)
	tests           map[string]*testResult
	failed          []string // failed tests in the order they failed
	passed, skipped int
	buildFailed     bool // the package or its tests did not compile
}

type testResult struct {
	out    strings.Builder
	action string
}

// New returns an empty Summary.
func New() *Summary {
	return &Summary{pkgs: map[string]*pkgResult{}, build: map[string]*strings.Builder{}}
}

// Read reads events from r until it ends, writing a line to progress as
// each package ends (see PackageLine). Lines that are not JSON events are
// written to progress as they are. The error is r's.
func (s *Summary) Read(r io.Reader, progress io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e Event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(progress, "%s\n", line)
			s.other.Write(line)
			s.other.WriteByte('\n')
			continue
		}
		if p := s.add(e); p != nil {
			fmt.Fprintln(progress, p.line())
		}
	}
	return sc.Err()
}

// add records one event; it returns the package's result when the event
// ended the package.
func (s *Summary) add(e Event) *pkgResult {
	if e.Action == "build-output" || e.Action == "build-fail" {
		b := s.build[e.ImportPath]
		if b == nil {
			b = &strings.Builder{}
			s.build[e.ImportPath] = b
		}
		b.WriteString(e.Output)
		return nil
	}
	if e.Package == "" {
		return nil
	}
	p := s.pkgs[e.Package]
	if p == nil {
		p = &pkgResult{name: e.Package, tests: map[string]*testResult{}}
		s.pkgs[e.Package] = p
	}
	if e.Test == "" {
		switch e.Action {
		case "output":
			p.out.WriteString(e.Output)
		case "pass", "fail", "skip":
			p.action = e.Action
			p.buildFailed = s.buildFailed(p.name)
			p.elapsed = time.Duration(e.Elapsed * float64(time.Second))
			s.order = append(s.order, p.name)
			return p
		}
		return nil
	}
	t := p.tests[e.Test]
	if t == nil {
		t = &testResult{}
		p.tests[e.Test] = t
	}
	switch e.Action {
	case "output":
		if !framing(e.Output) {
			t.out.WriteString(e.Output)
		}
	case "pass":
		t.action = e.Action
		p.passed++
	case "skip":
		t.action = e.Action
		p.skipped++
	case "fail":
		t.action = e.Action
		p.failed = append(p.failed, e.Test)
	}
	return nil
}

// framing tells the lines go test writes around a test's own output.
func framing(out string) bool {
	for _, prefix := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME"} {
		if strings.HasPrefix(out, prefix) {
			return true
		}
	}
	return false
}

// line is the package's one-line result:
// "ok    <pkg>  12.3s  (40 passed, 2 skipped)", "FAIL  <pkg>  3.1s  (1 failed, 19 passed)"
// or "-     <pkg>  (no test files)".
func (p *pkgResult) line() string {
	switch {
	case p.action == "skip" && len(p.tests) == 0:
		return fmt.Sprintf("-     %s  (no test files)", p.name)
	case p.action == "fail" && p.buildFailed:
		return fmt.Sprintf("FAIL  %s  (build failed)", p.name)
	case p.action == "fail":
		return fmt.Sprintf("FAIL  %s  %s  (%s)", p.name, seconds(p.elapsed), p.counts())
	case p.action == "":
		return fmt.Sprintf("FAIL  %s  (did not finish: %s)", p.name, p.counts())
	}
	return fmt.Sprintf("ok    %s  %s  (%s)", p.name, seconds(p.elapsed), p.counts())
}

func (p *pkgResult) counts() string {
	parts := []string{}
	if n := len(p.failed); n > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", n))
	}
	parts = append(parts, fmt.Sprintf("%d passed", p.passed))
	if p.skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d skipped", p.skipped))
	}
	return strings.Join(parts, ", ")
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// Failed reports whether a package failed, failed to build or did not
// finish.
func (s *Summary) Failed() bool {
	if len(s.build) > 0 {
		return true
	}
	for _, p := range s.pkgs {
		if p.action == "fail" || p.action == "" {
			return true
		}
	}
	return false
}

// Write prints the summary: every failure (build errors by package, then
// each failed test that has no failed subtest, with its own output, then
// the output of packages that failed outside any test), a line per
// package that ran tests (packages without test files counted in one
// line), and the totals.
func (s *Summary) Write(w io.Writer) {
	names := slices.Sorted(maps.Keys(s.pkgs))
	failures := 0
	for _, ip := range slices.Sorted(maps.Keys(s.build)) {
		failures++
		fmt.Fprintf(w, "--- BUILD FAILED %s\n%s\n", ip, indent(s.build[ip].String()))
	}
	for _, n := range names {
		p := s.pkgs[n]
		for _, name := range p.failed {
			if hasFailedSubtest(p, name) {
				continue
			}
			failures++
			out, omitted := withoutRoutineLogs(p.tests[name].out.String())
			fmt.Fprintf(w, "--- FAIL %s %s\n%s\n", n, name, indent(out))
			if omitted > 0 {
				fmt.Fprintf(w, "    (%d INFO and DEBUG log lines of this test left out; go test -v -run '^%s$' %s shows them)\n",
					omitted, strings.ReplaceAll(name, "/", "$/^"), n)
			}
		}
		if (p.action == "fail" || p.action == "") && len(p.failed) == 0 && !s.buildFailed(n) {
			failures++
			fmt.Fprintf(w, "--- FAIL %s (outside any test)\n%s\n", n, indent(p.out.String()))
		}
	}
	var noTests, tests, passed, failed, skipped int
	for _, n := range names {
		p := s.pkgs[n]
		if p.action == "skip" && len(p.tests) == 0 {
			noTests++
			continue
		}
		fmt.Fprintln(w, p.line())
		tests += len(p.tests)
		passed += p.passed
		failed += len(p.failed)
		skipped += p.skipped
	}
	if noTests > 0 {
		fmt.Fprintf(w, "-     %d packages without test files\n", noTests)
	}
	result := "PASS"
	if s.Failed() {
		result = "FAIL"
	}
	fmt.Fprintf(w, "%s: %d packages, %d tests and subtests: %d passed, %d failed, %d skipped; %d failures above\n",
		result, len(names), tests, passed, failed, skipped, failures)
}

// routineLog matches a log/slog record at INFO or DEBUG level, in the
// text or the JSON handler's format, alone on its line or after t.Log's
// "file.go:12: " prefix.
var routineLog = regexp.MustCompile(`^\s*(\S+\.go:\d+: )?(time=\S+ )?level=(INFO|DEBUG) |^\s*(\S+\.go:\d+: )?\{.*"level":"(INFO|DEBUG)"`)

// withoutRoutineLogs drops the INFO and DEBUG log records from a failed
// test's output (the lines that bury its failure; warnings and errors
// stay) and counts them.
func withoutRoutineLogs(out string) (string, int) {
	var kept strings.Builder
	omitted := 0
	for line := range strings.Lines(out) {
		if routineLog.MatchString(line) {
			omitted++
			continue
		}
		kept.WriteString(line)
	}
	return kept.String(), omitted
}

// buildFailed tells whether package pkg (or its test variant) failed to
// build; build-output events name it "pkg" or "pkg [pkg.test]".
func (s *Summary) buildFailed(pkg string) bool {
	for ip := range s.build {
		if ip == pkg || strings.HasPrefix(ip, pkg+" [") {
			return true
		}
	}
	return false
}

// hasFailedSubtest tells whether a subtest of name failed (then the
// subtest's failure is the one to show).
func hasFailedSubtest(p *pkgResult, name string) bool {
	return slices.ContainsFunc(p.failed, func(f string) bool { return strings.HasPrefix(f, name+"/") })
}

// indent indents every line of out by four spaces, without a final
// newline.
func indent(out string) string {
	out = strings.TrimRight(out, "\n")
	if out == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(out, "\n", "\n    ")
}

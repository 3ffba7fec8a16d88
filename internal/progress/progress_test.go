package progress_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/internal/progress"
)

// lines is a writer safe for the printer's goroutines.
type lines struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// clock returns a Now that advances by step on every call.
func clock(step time.Duration) func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(step)
		return t
	}
}

func TestStepLines(t *testing.T) {
	var out lines
	p := &progress.Printer{W: &out, Now: clock(90 * time.Second)}
	s := p.Start("[1/2]", "compile dist/hello for linux/amd64", "a cold cache takes minutes")
	require.Equal(t, 90*time.Second, s.Done("9.8 MiB"))
	s = p.Start("", "go vet ./...", "")
	require.Error(t, s.End(errors.New("exit status 1\nvet: x.go:1: bad"), ""))
	p.Printf("%d packages", 3)
	require.Equal(t, "[1/2] start compile dist/hello for linux/amd64 (a cold cache takes minutes)\n"+
		"[1/2] done  compile dist/hello for linux/amd64 in 1m30s: 9.8 MiB\n"+
		"start go vet ./...\n"+
		"FAILED go vet ./... after 1m30s: exit status 1\n    vet: x.go:1: bad\n"+
		"3 packages\n", out.String())
}

// TestStillLines: while a step runs, a "still" line with the time so far
// comes every Every; none after it ended.
func TestStillLines(t *testing.T) {
	var out lines
	p := &progress.Printer{W: &out, Every: time.Millisecond, Now: clock(time.Second)}
	s := p.Start("", "compile", "")
	require.Eventually(t, func() bool { return strings.Count(out.String(), "still compile (") >= 2 }, time.Minute, time.Millisecond)
	s.Done("")
	after := out.String()
	require.Regexp(t, `^start compile\n(still compile \(\d+\.\ds\)\n)+done  compile in \d+\.\ds\n$`, after)
	time.Sleep(5 * time.Millisecond)
	require.Equal(t, after, out.String(), "a line after Done")
}

// TestStartQuiet: a quick step prints nothing; a slow one its start line
// once the delay passed, then its end line; a failure always prints.
func TestStartQuiet(t *testing.T) {
	var out lines
	p := &progress.Printer{W: &out, Now: clock(time.Second)}
	p.StartQuiet(time.Hour, "", "check the tool", "").Done("")
	require.Empty(t, out.String())

	s := p.StartQuiet(time.Millisecond, "", "compile the tool", "minutes on a cold cache")
	require.Eventually(t, func() bool { return out.String() != "" }, time.Minute, time.Millisecond)
	s.Done("")
	require.Equal(t, "start compile the tool (minutes on a cold cache)\ndone  compile the tool in 1.0s\n", out.String())

	var failed lines
	p = &progress.Printer{W: &failed, Now: clock(time.Second)}
	p.StartQuiet(time.Hour, "", "compile the tool", "").Fail(errors.New("syntax error"))
	require.Equal(t, "FAILED compile the tool after 1.0s: syntax error\n", failed.String())
}

func TestNilPrinter(t *testing.T) {
	var p *progress.Printer
	p.Printf("x")
	s := p.Start("", "x", "")
	require.Zero(t, s.Done(""))
	require.NoError(t, s.End(nil, ""))
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                     "0.0s",
		420 * time.Millisecond:                "0.4s",
		12*time.Second + 340*time.Millisecond: "12.3s",
		90*time.Second + 400*time.Millisecond: "1m30s",
		time.Hour + 2*time.Minute + 5*time.Second: "1h2m5s",
	} {
		require.Equal(t, want, progress.Duration(d), d.String())
	}
}

package mock_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/enginetest"
	"github.com/workergen/workergen/engines/mock"
)

func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Harness{
		New: func(t *testing.T) engines.Engine {
			e, err := mock.New(engines.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return e
		},
		Payload:   payload,
		HostFiles: true,
	})
}

// payload maps a scenario onto the mock's fixed order: files, symlinks,
// output, printEnv, sleep, exit.
func payload(t *testing.T, s enginetest.Scenario) json.RawMessage {
	sc := mock.Script{Files: map[string]string{}, Symlinks: map[string]string{}, ExitCode: s.ExitCode}
	var out strings.Builder
	for _, st := range s.Steps {
		switch {
		case st.Stdout != "" || st.Stderr != "":
			n := max(st.Repeat, 1)
			out.WriteString(strings.Repeat(st.Stdout+st.Stderr, n))
		case st.PrintEnv != "":
			sc.PrintEnv = append(sc.PrintEnv, st.PrintEnv)
		case st.File != "":
			sc.Files[st.File] = st.Content
		case st.Symlink != "":
			sc.Symlinks[st.Symlink] = st.Target
		case st.SleepUntilKilled:
			out.WriteString(st.Announce)
			sc.Sleep = "forever"
		case st.Background:
			t.Fatalf("the mock engine has no background processes")
		}
	}
	sc.OutputBase64 = []byte(out.String())
	b, err := json.Marshal(mock.Payload{Mock: &sc})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

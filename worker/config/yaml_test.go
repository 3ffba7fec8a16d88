package config

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestYAMLSyntaxErrorLines: a syntax error names the 1-based line it is on
// and quotes it. go.yaml.in/yaml/v3 prints its parser's errors with a
// 0-based line (one line early, and none on the first line); its
// scanner's are right already and must stay so.
func TestYAMLSyntaxErrorLines(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		line      int
		text      string
	}{
		{"unclosed flow mapping", "payload:\n  maxRunTime: 60\n  env: {A: 1\n  command: x\n", 3, "env: {A: 1"},
		{"unclosed flow sequence", "payload:\n  command: [1, 2\n  env: 3\n", 2, "command: [1, 2"},
		{"sequence entry in a mapping", "payload:\n  maxRunTime: 60\n  - b\n", 2, "maxRunTime: 60"},
		{"flow mapping opened on the first line: the problem's line", "{a: 1\nb: 2\n", 2, "b: 2"},
		{"problem on the first line", "{a: 1]\n", 1, "{a: 1]"},
		{"mapping value in a plain scalar (scanner)", "payload:\n  maxRunTime: 60\n   bad: 1\n", 3, "bad: 1"},
		{"unterminated quoted string (scanner)", "a: 1\nb: \"x\nc: 2\n", 2, "b: \"x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := YAMLToJSON([]byte(c.doc))
			var se *SyntaxError
			require.True(t, errors.As(err, &se), "%v", err)
			assert.Equal(t, c.line, se.Line, "%v", err)
			assert.Equal(t, c.text, se.Text)
			assert.Contains(t, err.Error(), "line ")
		})
	}
	_, err := YAMLToJSON([]byte("a: 1\nb: 2\na: 3\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `line 3: mapping key "a" already defined at line 1`, "duplicate keys keep the decoder's right lines")
}

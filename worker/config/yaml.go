package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// ErrManyDocuments is returned for a YAML stream of more than one
// non-empty document: silently ignoring the rest of a file would lose what
// the author wrote.
var ErrManyDocuments = errors.New("holds more than one YAML document (a second one starts at a `---` line): keep one per file")

// YAMLToJSON converts a config or task file, YAML or JSON, to JSON. It
// reads YAML 1.2 (go.yaml.in/yaml/v3): only true and false are booleans,
// so keys and values such as N, y, yes, on and off stay strings, as a
// task author means them (YAML 1.1 would turn `env: {N: "40"}` into a
// variable named "false"). A duplicate key is an error with its line; a
// second non-empty document is ErrManyDocuments. An empty file gives
// "null". A syntax error is a *SyntaxError with the line it was found on.
func YAMLToJSON(data []byte) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return []byte("null"), nil
		}
		return nil, syntaxError(err, data)
	}
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, syntaxError(err, data)
		}
		if len(next.Content) > 0 && next.Content[0].Tag != "!!null" {
			return nil, ErrManyDocuments
		}
	}
	var v any
	if err := doc.Decode(&v); err != nil {
		return nil, err
	}
	v, err := jsonValue(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// jsonValue makes a decoded YAML value JSON-encodable: mapping keys that
// are not strings (numbers, booleans) become their text, and timestamps
// RFC 3339 strings.
func jsonValue(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			j, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			x[k] = j
		}
		return x, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			key := fmt.Sprint(k)
			if _, dup := out[key]; dup {
				return nil, fmt.Errorf("mapping key %q appears twice (as different YAML types)", key)
			}
			j, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[key] = j
		}
		return out, nil
	case []any:
		for i, e := range x {
			j, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			x[i] = j
		}
		return x, nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	}
	return v, nil
}

// SyntaxError is a YAML (or JSON) syntax error of a config or task file:
// Line is 1-based, Text the line's content (trimmed; "" when Line is past
// the end), Problem the parser's words.
type SyntaxError struct {
	Line    int
	Text    string
	Problem string
}

func (e *SyntaxError) Error() string {
	if e.Text == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Problem)
	}
	return fmt.Sprintf("line %d (%s): %s", e.Line, e.Text, e.Problem)
}

// yamlErrorLine matches the syntax errors of go.yaml.in/yaml/v3:
// "yaml: line N: problem" or, without a line, "yaml: problem".
var yamlErrorLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// parserProblems are the problems the YAML parser (libyaml's parserc, as
// ported by go.yaml.in/yaml/v3), as opposed to its scanner, reports. For
// them the library prints the 0-based line of the construct being parsed
// (its context mark; or of the problem when the context is on the first
// line), where its scanner errors are 1-based (decode.go, parser.fail;
// upstream go-yaml issue 205): these errors pointed one line early, and
// one found on the first line had no line at all.
var parserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// syntaxError turns a syntax error of the YAML library into a *SyntaxError
// with the 1-based line and its text; other errors (duplicate keys, which
// carry correct lines) are returned as they are.
func syntaxError(err error, data []byte) error {
	m := yamlErrorLine.FindStringSubmatch(err.Error())
	if m == nil || strings.Contains(m[2], "\n") || strings.HasPrefix(m[2], "unmarshal errors") {
		return err
	}
	line, _ := strconv.Atoi(m[1]) // 0 when the library gave none
	problem := m[2]
	if slices.Contains(parserProblems, problem) {
		line++ // 0-based, or absent for the first line
	}
	if line == 0 {
		return fmt.Errorf("%s", problem)
	}
	return &SyntaxError{Line: line, Text: lineText(data, line), Problem: problem}
}

// lineText is line n (1-based) of data, trimmed and shortened to 60
// characters; "" past the end or for a blank line.
func lineText(data []byte, n int) string {
	lines := strings.Split(string(data), "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	t := strings.TrimSpace(lines[n-1])
	if r := []rune(t); len(r) > 60 {
		t = string(r[:57]) + "..."
	}
	return t
}

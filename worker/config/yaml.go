package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// "null".
func YAMLToJSON(data []byte) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return []byte("null"), nil
		}
		return nil, err
	}
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
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

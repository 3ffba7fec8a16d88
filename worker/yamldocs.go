package worker

import (
	"bytes"
	"errors"
	"io"

	yamlv2 "go.yaml.in/yaml/v2"
)

// errManyDocuments is returned for a YAML stream of more than one
// non-empty document: the converter reads only the first, and silently
// ignoring the rest of a file would lose what the author wrote.
var errManyDocuments = errors.New("holds more than one YAML document (a second one starts at a `---` line): keep one per file")

// checkOneDocument returns errManyDocuments when data holds a second
// non-empty YAML document. Syntax errors are left to the converter, which
// reports them with a line number.
func checkOneDocument(data []byte) error {
	dec := yamlv2.NewDecoder(bytes.NewReader(data))
	docs := 0
	for {
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return nil
		}
		if v != nil {
			docs++
		}
		if docs > 1 {
			return errManyDocuments
		}
	}
}

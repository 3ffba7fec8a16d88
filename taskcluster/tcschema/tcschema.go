// Package tcschema loads the upstream Taskcluster JSON Schemas (kept outside
// the repository, in ../shared/taskcluster/schemas next to the repository
// root) and validates documents against them. It is test support: the client
// tests, the embedded Queue's tests and integration tests use it to check
// that every request body sent and every response body parsed matches the
// upstream schema.
//
// Upstream schemas have ids like "/schemas/queue/v1/claim-work-request.json#"
// and refer to each other with relative $refs and to the meta-schema
// "/schemas/common/metaschema.json#". Set resolves such ids against a private
// base URL and maps them to files below the schemas directory.
package tcschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// base is the URL schema ids are resolved against; nothing is fetched from
// it.
const base = "https://schemas.taskcluster.invalid"

// ErrNotFound means the repository root (go.mod) or the shared directory
// could not be found.
var ErrNotFound = errors.New("taskcluster reference data not found")

// SharedDir returns the directory holding upstream reference data: the
// "shared" directory next to the repository root, where the root is found
// by walking up from the working directory to go.mod. Tests run in their
// package directory, so this works from any package.
func SharedDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("locating shared reference data: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			shared := filepath.Join(filepath.Dir(dir), "shared")
			if _, err := os.Stat(filepath.Join(shared, "taskcluster")); err != nil {
				return "", fmt.Errorf("%w: %v", ErrNotFound, err)
			}
			return shared, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no go.mod above the working directory", ErrNotFound)
		}
		dir = parent
	}
}

// Set validates documents against the upstream schemas in one directory.
// It is safe for concurrent use; schemas are compiled on first use and
// cached.
type Set struct {
	dir string

	mu       sync.Mutex
	compiler *jsonschema.Compiler
	compiled map[string]*jsonschema.Schema
}

// New returns a Set reading schemas from dir (the directory that holds
// "queue/v1/...", "common/..."). Formats such as date-time are asserted.
func New(dir string) *Set {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.UseLoader(loader{dir: dir})
	return &Set{dir: dir, compiler: c, compiled: map[string]*jsonschema.Schema{}}
}

// Default returns a Set over ../shared/taskcluster/schemas (see SharedDir).
func Default() (*Set, error) {
	shared, err := SharedDir()
	if err != nil {
		return nil, err
	}
	return New(filepath.Join(shared, "taskcluster", "schemas")), nil
}

var (
	defaultOnce sync.Once
	defaultSet  *Set
	defaultErr  error
)

// ForTest returns the process-wide default Set, failing tb when the
// reference data cannot be found.
func ForTest(tb testing.TB) *Set {
	tb.Helper()
	defaultOnce.Do(func() { defaultSet, defaultErr = Default() })
	if defaultErr != nil {
		tb.Fatalf("loading upstream taskcluster schemas: %v", defaultErr)
	}
	return defaultSet
}

// URL maps a schema id or short name to the URL the Set compiles. Accepted
// forms: "/schemas/queue/v1/task.json#", "schemas/queue/v1/task.json",
// "queue/v1/task.json", with or without the trailing "#" and ".json";
// a reference entry's "v1/task.json#" needs the service: use the long form.
func URL(id string) string {
	id = strings.TrimSuffix(id, "#")
	id = strings.TrimPrefix(id, "/")
	id = strings.TrimPrefix(id, "schemas/")
	if !strings.HasSuffix(id, ".json") {
		id += ".json"
	}
	return base + "/schemas/" + id
}

// Schema compiles (once) and returns the schema with the given id (see URL
// for the accepted forms).
func (s *Set) Schema(id string) (*jsonschema.Schema, error) {
	u := URL(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch, ok := s.compiled[u]; ok {
		return sch, nil
	}
	sch, err := s.compiler.Compile(u)
	if err != nil {
		return nil, fmt.Errorf("compiling schema %s: %w", id, err)
	}
	s.compiled[u] = sch
	return sch, nil
}

// Validate checks the JSON document doc against schema id. The error
// describes every violation with its instance path.
func (s *Set) Validate(id string, doc []byte) error {
	sch, err := s.Schema(id)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("decoding document for %s: %w", id, err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("document does not match %s: %w", id, err)
	}
	return nil
}

// ValidateValue marshals v to JSON and validates it against schema id.
func (s *Set) ValidateValue(id string, v any) error {
	doc, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding value for %s: %w", id, err)
	}
	return s.Validate(id, doc)
}

// missing holds stand-ins for the worker-manager schemas the shared
// reference data refers to but does not include. They carry only the
// properties the request schemas use, with upstream's identifier
// constraints (identifiers of 1 to 38 characters of [a-zA-Z0-9-_];
// workerPoolId is "<provisionerId>/<workerType>" with a lower-case
// workerType); worker-pool-error.json only checks types and required
// members, as its exact limits are not in the reference data.
var missing = map[string]string{
	"worker-manager/v1/worker-full.json": `{
		"$schema": "http://json-schema.org/draft-06/schema#",
		"type": "object",
		"properties": {
			"providerId": {"type": "string", "pattern": "^([a-zA-Z0-9-_]*)$", "minLength": 1, "maxLength": 38},
			"workerGroup": {"type": "string", "pattern": "^([a-zA-Z0-9-_]*)$", "minLength": 1, "maxLength": 38},
			"workerId": {"type": "string", "pattern": "^([a-zA-Z0-9-_]*)$", "minLength": 1, "maxLength": 38}
		}
	}`,
	"worker-manager/v1/worker-pool-full.json": `{
		"$schema": "http://json-schema.org/draft-06/schema#",
		"type": "object",
		"properties": {
			"workerPoolId": {"type": "string", "pattern": "^[a-zA-Z0-9-_]{1,38}/[a-z]([-a-z0-9]{0,36}[a-z0-9])?$"}
		}
	}`,
	"worker-manager/v1/worker-pool-error.json": `{
		"$schema": "http://json-schema.org/draft-06/schema#",
		"type": "object",
		"properties": {
			"errorId": {"type": "string"},
			"workerPoolId": {"$ref": "worker-pool-full.json#/properties/workerPoolId"},
			"reported": {"type": "string", "format": "date-time"},
			"kind": {"type": "string"},
			"title": {"type": "string"},
			"description": {"type": "string"},
			"extra": {"type": "object"}
		},
		"required": ["errorId", "workerPoolId", "reported", "kind", "title", "description", "extra"]
	}`,
}

// draft06 is the meta-schema Taskcluster's "/schemas/common/metaschema.json#"
// stands for: that file is only a $ref to it.
const (
	draft06      = "http://json-schema.org/draft-06/schema#"
	tcMetaSchema = "/schemas/common/metaschema.json#"
)

// loader serves base/schemas/<path> from dir/<path>. A "$schema" naming
// Taskcluster's meta-schema is rewritten to draft-06, the meta-schema it
// refers to: the relative URL is not a valid "$schema" for the library.
// Other URLs (draft-06 itself) are left to the library's built-in
// meta-schemas.
type loader struct{ dir string }

func (l loader) Load(u string) (any, error) {
	rest, ok := strings.CutPrefix(u, base+"/schemas/")
	if !ok {
		return nil, fmt.Errorf("schema %s is outside the taskcluster schema set", u)
	}
	rest, _, _ = strings.Cut(rest, "#")
	p := filepath.Join(l.dir, filepath.FromSlash(rest))
	if !strings.HasPrefix(p, filepath.Clean(l.dir)+string(filepath.Separator)) {
		return nil, fmt.Errorf("schema %s escapes the schema directory", u)
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		if stub, ok := missing[rest]; ok {
			return jsonschema.UnmarshalJSON(strings.NewReader(stub))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("loading schema %s: %w", u, err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return nil, fmt.Errorf("decoding schema %s: %w", u, err)
	}
	if obj, ok := doc.(map[string]any); ok && obj["$schema"] == tcMetaSchema {
		obj["$schema"] = draft06
	}
	return doc, nil
}

package worker

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/worker/taskrun"
)

// Stamped at link time by mage with
// -X github.com/workergen/workergen/worker.version=... and .commit=...
var (
	version = "0.0.0-dev"
	commit  = "unknown"
)

// Version returns the version stamped into the binary.
func Version() string { return version }

// Commit returns the commit stamped into the binary.
func Commit() string { return commit }

// Gunzip returns the gzip stream b inflated: a generated main's embedded
// schemas (gen.PayloadSchemaGzipFile, gen.ConfigSchemaGzipFile), which it
// hands to Main in Build. It panics when b does not inflate, which only a
// damaged generated main's data can cause: generate the profile again.
func Gunzip(b []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err == nil {
		var out []byte
		if out, err = io.ReadAll(zr); err == nil {
			return out
		}
	}
	panic(fmt.Sprintf("workergen: the generated main's embedded data does not inflate (%v); generate the profile again", err))
}

// Build is what a generated main hands to Main: the profile's identity, its
// exported schemas, and explicit constructors for exactly the engine and
// plugins the profile chose, plugins in their declared stage order.
type Build struct {
	Profile string // profile name, e.g. "linux-native"
	Binary  string // binary base name, e.g. "workergen-linux-native"
	// Dialect is the profile's payload format, passed to the engine and
	// every plugin in their Options.
	Dialect task.Dialect

	Engine  EngineEntry
	Plugins []PluginEntry

	// ProfileJSON is the resolved profile (dist/<profile>/profile.json).
	ProfileJSON []byte
	// PayloadSchema is the composed payload JSON Schema
	// (dist/<profile>/payload.schema.json).
	PayloadSchema []byte
	// ConfigSchema is the worker config JSON Schema
	// (dist/<profile>/config.schema.json).
	ConfigSchema []byte
	// DefaultConfig is the profile's default worker config
	// (dist/<profile>/config.defaults.json); operator config is merged over
	// it, object by object.
	DefaultConfig []byte

	// Unsupported lists payload fields of the profile's payload dialect
	// that no chosen engine or plugin provides. A payload using one is
	// malformed-payload with a message naming the field and Feature.
	Unsupported []Unsupported
}

// EngineEntry names the engine and how to construct it.
type EngineEntry struct {
	Name string
	New  engines.Constructor
	// Import is the Go import path of New's package (see Components).
	Import string
}

// PluginEntry names a plugin and how to construct it.
type PluginEntry struct {
	Name string
	New  plugins.Constructor
	// Import is the Go import path of New's package (see Components).
	Import string
}

// Unsupported is a payload field the profile's dialect defines but this
// profile does not implement (taskrun.Unsupported; generated mains list
// them in Build.Unsupported).
type Unsupported = taskrun.Unsupported

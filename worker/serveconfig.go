package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/workergen/workergen/worker/config"
	"github.com/workergen/workergen/worker/gwconfig"
)

// ErrConfigLoad marks a worker config file that cannot be read or is not
// JSON or YAML (exit ExitUsage, generic-worker's "not able to load
// config"); other config errors wrap ErrConfig (exit ExitInvalidConfig).
var ErrConfigLoad = errors.New("cannot load worker config")

// ConfigFormat is the format of a worker config file.
type ConfigFormat string

const (
	// FormatWorkergen is workergen's own config (README, `schema config`).
	FormatWorkergen ConfigFormat = "workergen"
	// FormatGenericWorker is generic-worker's config file, as worker-runner
	// writes it for `implementation: generic-worker` (package gwconfig).
	FormatGenericWorker ConfigFormat = "generic-worker"
)

// workerConfig is a loaded worker config with what its format adds.
type workerConfig struct {
	*Config
	Format ConfigFormat
	// GW is the generic-worker file's reading (FormatGenericWorker only):
	// its ignored keys (GW.LogWarnings) and GW.Location.
	GW *gwconfig.Config
}

// DetectConfigFormat says which format a config document (a decoded JSON
// or YAML object) is in: generic-worker's when one of its top-level keys
// is a generic-worker key (gwconfig.Keys, any case) that is not spelt as a
// key of workergen's config (the properties of configSchema): worker-runner
// always writes rootURL, clientId and accessToken, which workergen spells
// rootUrl and credentials. key is the first such key (sorted), "" for
// workergen's format.
func DetectConfigFormat(doc map[string]any, configSchema []byte) (f ConfigFormat, key string) {
	own := workergenKeys(configSchema)
	for _, k := range slices.Sorted(maps.Keys(doc)) {
		if slices.Contains(own, k) {
			continue
		}
		for _, gk := range gwconfig.Keys {
			if strings.EqualFold(gk.Name, k) {
				return FormatGenericWorker, k
			}
		}
	}
	return FormatWorkergen, ""
}

// workergenKeys are the top-level properties of the config schema.
func workergenKeys(configSchema []byte) []string {
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	_ = json.Unmarshal(configSchema, &s)
	return slices.Sorted(maps.Keys(s.Properties))
}

// loadWorkerConfig loads the config file of a claiming worker in either
// format. workergen's is read as LoadConfig reads it (TASKCLUSTER_*
// variables looked up with getenv override it); generic-worker's is
// checked key by key by package gwconfig and the workergen config it means
// is merged over the profile's defaults, with no environment overrides (as
// generic-worker, which reads only its file). Both are validated against
// the embedded config schema. Errors wrap ErrConfigLoad or ErrConfig.
func loadWorkerConfig(b Build, path string, getenv func(string) string) (*workerConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfigLoad, err)
	}
	js, err := config.YAMLToJSON(data)
	if err != nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		// Meant as JSON: gwconfig says where it breaks and after which key.
		if _, jerr := gwconfig.Parse(data, gwconfig.Options{}); jerr != nil {
			err = jerr
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not valid JSON or YAML: %w", ErrConfigLoad, path, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(js, &doc); err != nil || doc == nil {
		return nil, fmt.Errorf("%w: %s: the config must be an object of settings", ErrConfigLoad, path)
	}
	format, key := DetectConfigFormat(doc, b.ConfigSchema)
	if format == FormatWorkergen {
		cfg, err := LoadConfig(b, path, getenv)
		if err != nil {
			return nil, err
		}
		return &workerConfig{Config: cfg, Format: format}, nil
	}
	if json.Valid(data) {
		js = data // gwconfig's errors then give positions in the file itself
	}
	gw, err := gwconfig.Parse(js, gwconfig.Options{Plugins: pluginNames(b), Native: nativeKeys(b)})
	if err != nil {
		return nil, fmt.Errorf("%w: %s (read as generic-worker's config format, because of key %q): %w", ErrConfig, path, key, err)
	}
	cfg, err := config.LoadDocument(b.DefaultConfig, b.ConfigSchema, gw.Document, path, func(string) string { return "" })
	if err != nil {
		return nil, err
	}
	return &workerConfig{Config: cfg, Format: format, GW: gw}, nil
}

func pluginNames(b Build) []string {
	names := make([]string, len(b.Plugins))
	for i, p := range b.Plugins {
		names[i] = p.Name
	}
	return names
}

// nativeKeys are workergen's config keys a generic-worker file may carry
// as they are (engine, plugins, reclaimMargin, ...; see
// gwconfig.Options.Native).
func nativeKeys(b Build) []string {
	return workergenKeys(b.ConfigSchema)
}

package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/workergen/workergen/worker/schema"
)

// ErrConfig marks errors in the operator's worker config.
var ErrConfig = errors.New("invalid worker config")

// Load builds the worker config: defaults (the profile's
// config.defaults.json, a JSON object), then the file at path (JSON or
// YAML; "" for none) merged over them object by object (arrays and scalars
// replace), then the TASKCLUSTER_ROOT_URL, TASKCLUSTER_CLIENT_ID,
// TASKCLUSTER_ACCESS_TOKEN and TASKCLUSTER_CERTIFICATE environment
// variables (looked up with getenv; nil means os.Getenv). The result is
// validated against schemaDoc, the profile's config.schema.json (no check
// when empty); errors wrap ErrConfig and list every offending field as
// `config.<path>: <problem>` with the file name.
func Load(defaults, schemaDoc []byte, path string, getenv func(string) string) (*Config, error) {
	var op map[string]any
	if path != "" {
		var err error
		if op, err = readFile(path); err != nil {
			return nil, err
		}
	}
	return LoadDocument(defaults, schemaDoc, op, path, getenv)
}

// LoadDocument is Load with the operator's settings already read: doc (nil
// for none), e.g. the workergen config a generic-worker config file means
// (package gwconfig), merged over defaults, then the environment, then
// validated as Load does. source names doc in errors (a file name, or ""
// for the defaults alone). doc is not modified.
func LoadDocument(defaults, schemaDoc []byte, doc map[string]any, source string, getenv func(string) string) (*Config, error) {
	var merged map[string]any
	if err := json.Unmarshal(defaults, &merged); err != nil || merged == nil {
		return nil, fmt.Errorf("embedded default config is not a JSON object (generator bug): %v", err)
	}
	if doc != nil {
		// A deep copy through JSON, so merging never changes doc.
		data, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrConfig, source, err)
		}
		var op map[string]any
		if err := json.Unmarshal(data, &op); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrConfig, source, err)
		}
		merged = mergeObjects(merged, op)
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	applyEnv(merged, getenv)
	out, err := json.Marshal(merged)
	if err != nil {
		return nil, err
	}
	if err := validate(schemaDoc, out, source); err != nil {
		return nil, err
	}
	return decode(out)
}

// readFile reads the operator's config file: an object of settings, or
// nothing.
func readFile(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w", ErrConfig, path, err)
	}
	js, err := YAMLToJSON(data)
	if errors.Is(err, ErrManyDocuments) {
		return nil, fmt.Errorf("%w: %s %w", ErrConfig, path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not valid YAML or JSON: %w", ErrConfig, path, err)
	}
	var op any
	if err := json.Unmarshal(js, &op); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
	}
	opm, ok := op.(map[string]any)
	if !ok && op != nil {
		return nil, fmt.Errorf("%w: %s: the config must be an object of settings, got %s", ErrConfig, path, JSONKind(op))
	}
	return opm, nil
}

// applyEnv sets rootUrl, the identity (IdentityKeys) and credentials from
// the TASKCLUSTER_* variables that are set.
func applyEnv(merged map[string]any, getenv func(string) string) {
	if v := getenv("TASKCLUSTER_ROOT_URL"); v != "" {
		merged["rootUrl"] = v
	}
	for _, k := range IdentityKeys {
		if v := getenv(k.Env); v != "" {
			merged[k.Key] = v
		}
	}
	creds, _ := merged["credentials"].(map[string]any)
	if creds == nil {
		creds = map[string]any{}
	}
	if getenv("TASKCLUSTER_CLIENT_ID") != "" || getenv("TASKCLUSTER_ACCESS_TOKEN") != "" {
		// A certificate from the file belongs to the file's temporary
		// credentials; it must not pair with credentials from the
		// environment (TASKCLUSTER_CERTIFICATE still applies).
		delete(creds, "certificate")
	}
	for env, key := range map[string]string{
		"TASKCLUSTER_CLIENT_ID":    "clientId",
		"TASKCLUSTER_ACCESS_TOKEN": "accessToken",
		"TASKCLUSTER_CERTIFICATE":  "certificate",
	} {
		if v := getenv(env); v != "" {
			creds[key] = v
		}
	}
	if len(creds) > 0 {
		merged["credentials"] = creds
	}
}

// validate checks the merged config doc against the config schema; path
// names the operator's file in the error ("" for the defaults alone).
func validate(schemaDoc, doc []byte, path string) error {
	if len(schemaDoc) == 0 {
		return nil
	}
	sch, err := schema.Compile("config.schema.json", schemaDoc)
	if err != nil {
		return fmt.Errorf("embedded config schema (generator bug): %w", err)
	}
	if problems := sch.Validate("config", doc); len(problems) > 0 {
		src := "the default config"
		if path != "" {
			src = path
		}
		return fmt.Errorf("%w (%s):\n  %s", ErrConfig, src, strings.Join(problems, "\n  "))
	}
	return nil
}

// decode turns the validated doc into a Config: durations refused when
// they would overflow, capacity and uploadConcurrency at least 1 and 4 by
// default, stateDir and tasksDir resolved (resolveDirs).
func decode(doc []byte) (*Config, error) {
	var cfg Config
	if err := json.Unmarshal(doc, &cfg); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	// Seconds beyond ~68 years overflow time.Duration; refuse them rather
	// than let a huge "never" wrap to a negative duration.
	const maxSeconds = 1 << 31
	var tooBig []string
	for name, v := range map[string]int{"maxTaskRunTime": cfg.MaxTaskRunTime, "reclaimMargin": cfg.ReclaimMargin,
		"shutdownGracePeriod": cfg.ShutdownGracePeriod, "idleTimeout": cfg.IdleTimeout, "capacity": cfg.Capacity} {
		if v >= maxSeconds {
			tooBig = append(tooBig, fmt.Sprintf("config.%s: %d is too large (at most %d)", name, v, maxSeconds-1))
		}
	}
	if len(tooBig) > 0 {
		sort.Strings(tooBig)
		return nil, fmt.Errorf("%w:\n  %s", ErrConfig, strings.Join(tooBig, "\n  "))
	}
	if cfg.Capacity < 1 {
		cfg.Capacity = 1
	}
	if cfg.UploadConcurrency < 1 {
		cfg.UploadConcurrency = 4
	}
	if err := resolveDirs(&cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func mergeObjects(dst, src map[string]any) map[string]any {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = mergeObjects(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

// JSONKind names the JSON kind of v, a value decoded by encoding/json, for
// messages: "an object", "an array", "a string", "a number", "a boolean" or
// "null".
func JSONKind(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, json.Number:
		return "a number"
	case nil:
		return "null"
	}
	return "an object"
}

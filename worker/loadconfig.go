package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// ErrConfig marks errors in the operator's worker config.
var ErrConfig = errors.New("invalid worker config")

// LoadConfig builds the worker config: the profile's defaults, then the file
// at path (JSON or YAML; "" for none) merged over them object by object
// (arrays and scalars replace), then the TASKCLUSTER_ROOT_URL,
// TASKCLUSTER_CLIENT_ID, TASKCLUSTER_ACCESS_TOKEN and TASKCLUSTER_CERTIFICATE
// environment variables (looked up with getenv). The result is validated
// against the profile's config schema; errors wrap ErrConfig and list every
// offending field as `config.<path>: <problem>` with the file name.
func LoadConfig(b Build, path string, getenv func(string) string) (*Config, error) {
	var merged map[string]any
	if err := json.Unmarshal(b.DefaultConfig, &merged); err != nil || merged == nil {
		return nil, fmt.Errorf("embedded default config is not a JSON object (generator bug): %v", err)
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: reading %s: %w", ErrConfig, path, err)
		}
		js, err := yamlToJSON(data)
		if errors.Is(err, errManyDocuments) {
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
			return nil, fmt.Errorf("%w: %s: the config must be an object of settings, got %s", ErrConfig, path, jsonKind(op))
		}
		merged = mergeObjects(merged, opm)
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	if v := getenv("TASKCLUSTER_ROOT_URL"); v != "" {
		merged["rootUrl"] = v
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
	doc, err := json.Marshal(merged)
	if err != nil {
		return nil, err
	}
	if len(b.ConfigSchema) > 0 {
		sch, err := CompileSchema("config.schema.json", b.ConfigSchema)
		if err != nil {
			return nil, fmt.Errorf("embedded config schema (generator bug): %w", err)
		}
		if problems := sch.Validate("config", doc); len(problems) > 0 {
			src := "the default config"
			if path != "" {
				src = path
			}
			return nil, fmt.Errorf("%w (%s):\n  %s", ErrConfig, src, strings.Join(problems, "\n  "))
		}
	}
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
	if cfg.TasksDir != "" && !filepath.IsAbs(cfg.TasksDir) {
		if abs, err := filepath.Abs(cfg.TasksDir); err == nil {
			cfg.TasksDir = abs
		}
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

func jsonKind(v any) string {
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

// Info returns the worker's identity from the config and the build.
func (c *Config) Info(b Build) task.WorkerInfo {
	names := make([]string, len(b.Plugins))
	for i, p := range b.Plugins {
		names[i] = p.Name
	}
	return task.WorkerInfo{
		RootURL:      c.RootURL,
		WorkerPoolID: c.WorkerPoolID,
		WorkerGroup:  c.WorkerGroup,
		WorkerID:     c.WorkerID,
		Profile:      b.Profile,
		Version:      version,
		Engine:       b.Engine.Name,
		Plugins:      names,
	}
}

// NewRunner constructs the engine and every plugin of the build from cfg,
// in the build's order. On error, what was constructed is closed again.
func NewRunner(b Build, cfg *Config, logger *slog.Logger) (*Runner, error) {
	if logger == nil {
		logger = slog.Default()
	}
	info := cfg.Info(b)
	payload, err := CompileSchema("payload.schema.json", b.PayloadSchema)
	if err != nil {
		return nil, fmt.Errorf("embedded payload schema (generator bug): %w", err)
	}
	eng, err := b.Engine.New(engines.Options{Config: section(cfg.Engine), Logger: logger.With("engine", b.Engine.Name), Worker: info, Dialect: b.Dialect, Artifacts: &QueueArtifacts{}})
	if err != nil {
		return nil, fmt.Errorf("%w: engine %s (config key engine): %w", ErrConfig, b.Engine.Name, err)
	}
	r := &Runner{Engine: eng, Payload: payload, Unsupported: b.Unsupported, Info: info, Logger: logger}
	wc := plugins.WorkerConfig{WorkerInfo: info, MaxTaskRunTime: cfg.MaxTaskRunTime, TasksDir: cfg.TasksDir, UploadConcurrency: cfg.UploadConcurrency}
	for _, p := range b.Plugins {
		pl, err := p.New(plugins.Options{Config: section(cfg.Plugins[p.Name]), Worker: wc, Engine: eng, Logger: logger.With("plugin", p.Name), Dialect: b.Dialect})
		if err != nil {
			_ = r.Close()
			return nil, fmt.Errorf("%w: plugin %s (config key plugins.%s): %w", ErrConfig, p.Name, p.Name, err)
		}
		r.Plugins = append(r.Plugins, NamedPlugin{Name: p.Name, Plugin: pl})
	}
	return r, nil
}

// Close closes every plugin (in reverse order) and then the engine.
func (r *Runner) Close() error {
	var errs []error
	for i := len(r.Plugins) - 1; i >= 0; i-- {
		if err := r.Plugins[i].Plugin.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing plugin %s: %w", r.Plugins[i].Name, err))
		}
	}
	if r.Engine != nil {
		if err := r.Engine.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing engine: %w", err))
		}
	}
	return errors.Join(errs...)
}

func section(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}")
	}
	return raw
}

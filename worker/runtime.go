package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/worker/config"
	"github.com/workergen/workergen/worker/schema"
	"github.com/workergen/workergen/worker/taskrun"
)

// Runner runs task runs through the stages; see package taskrun.
type Runner = taskrun.Runner

// Config is the operator's worker config; see package config.
type Config = config.Config

// ErrConfig marks errors in the operator's worker config (config.ErrConfig).
var ErrConfig = config.ErrConfig

// LoadConfig loads the worker config of build b: its DefaultConfig, the
// file at path ("" for none) and the TASKCLUSTER_* variables looked up with
// getenv, validated against its ConfigSchema; see config.Load.
func LoadConfig(b Build, path string, getenv func(string) string) (*Config, error) {
	return config.Load(b.DefaultConfig, b.ConfigSchema, path, getenv)
}

// workerInfo returns the worker's identity from the config and the build.
func workerInfo(c *Config, b Build) task.WorkerInfo {
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
// in the build's order, into a Runner with the build's payload schema and
// unsupported fields. On error, what was constructed is closed again;
// errors of the engine's or a plugin's config section wrap ErrConfig.
func NewRunner(b Build, cfg *Config, logger *slog.Logger) (*Runner, error) {
	if logger == nil {
		logger = slog.Default()
	}
	info := workerInfo(cfg, b)
	payload, err := schema.Compile("payload.schema.json", b.PayloadSchema)
	if err != nil {
		return nil, fmt.Errorf("embedded payload schema (generator bug): %w", err)
	}
	eng, err := b.Engine.New(engines.Options{Config: section(cfg.Engine), Logger: logger.With("engine", b.Engine.Name), Worker: info, Dialect: b.Dialect})
	if err != nil {
		if errors.Is(err, engines.ErrHostUnavailable) {
			return nil, fmt.Errorf("engine %s: %w", b.Engine.Name, err)
		}
		return nil, fmt.Errorf("%w: engine %s (config key engine): %w", ErrConfig, b.Engine.Name, err)
	}
	r := &Runner{Engine: eng, Payload: payload, Unsupported: b.Unsupported, Dialect: b.Dialect, Info: info, Logger: logger}
	wc := plugins.WorkerConfig{WorkerInfo: info, MaxTaskRunTime: cfg.MaxTaskRunTime, TasksDir: cfg.TasksDir, UploadConcurrency: cfg.UploadConcurrency}
	for _, p := range b.Plugins {
		pl, err := p.New(plugins.Options{Config: section(cfg.Plugins[p.Name]), Worker: wc, Engine: eng, Logger: logger.With("plugin", p.Name), Dialect: b.Dialect})
		if err != nil {
			_ = r.Close()
			return nil, fmt.Errorf("%w: plugin %s (config key plugins.%s): %w", ErrConfig, p.Name, p.Name, err)
		}
		r.Plugins = append(r.Plugins, taskrun.NamedPlugin{Name: p.Name, Plugin: pl})
	}
	return r, nil
}

// section is a config section as its component reads it: {} when absent.
func section(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}")
	}
	return raw
}

// runnerLogger is r's logger, or slog.Default().
func runnerLogger(r *Runner) *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

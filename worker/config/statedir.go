package config

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Environment variables that set the worker's identity, in Taskcluster's
// terms (workerPoolId, workerGroup, workerId), beside TASKCLUSTER_ROOT_URL
// and the credentials' TASKCLUSTER_* variables. Taskcluster defines no
// variables for a worker's identity (generic-worker reads it only from its
// config file, which worker-runner writes); these let one config file
// serve many hosts, e.g. TASKCLUSTER_WORKER_ID=%H in a systemd unit.
const (
	EnvWorkerPoolID = "TASKCLUSTER_WORKER_POOL_ID"
	EnvWorkerGroup  = "TASKCLUSTER_WORKER_GROUP"
	EnvWorkerID     = "TASKCLUSTER_WORKER_ID"
)

// IdentityKeys are the config keys naming the worker to the Queue, each
// with the environment variable that overrides it.
var IdentityKeys = []struct{ Key, Env string }{
	{"workerPoolId", EnvWorkerPoolID},
	{"workerGroup", EnvWorkerGroup},
	{"workerId", EnvWorkerID},
}

// Local placeholders of the identity for `run TASK_FILE`, which has no
// Queue (FillLocalIdentity).
const (
	LocalWorkerPoolID = "workergen/local"
	LocalWorkerGroup  = "local"
	LocalWorkerID     = "local-1"
)

// FillLocalIdentity sets the identity keys cfg lacks to the local
// placeholders; `run TASK_FILE` calls it, `work` never does.
func FillLocalIdentity(cfg *Config) {
	for _, f := range []struct {
		v   *string
		def string
	}{{&cfg.WorkerPoolID, LocalWorkerPoolID}, {&cfg.WorkerGroup, LocalWorkerGroup}, {&cfg.WorkerID, LocalWorkerID}} {
		if *f.v == "" {
			*f.v = f.def
		}
	}
}

// stateDirName is the directory the worker's state lives in under the
// system's or the user's state directory.
const stateDirName = "workergen"

// DefaultStateDir is the worker's state directory when the config names
// none: $STATE_DIRECTORY when it is absolute (systemd sets it for a
// service with StateDirectory=; of a colon-separated list, the first);
// else on Windows %ProgramData%\workergen (C:\ProgramData\workergen
// without ProgramData); elsewhere /var/lib/workergen for root (euid 0, the
// FHS place for a service's state, systemd's StateDirectory=workergen),
// else $XDG_STATE_HOME/workergen, or $HOME/.local/state/workergen without
// XDG_STATE_HOME (the XDG Base Directory default). getenv looks up
// variables (nil: os.Getenv); euid is the effective user id (-1 on
// Windows). The error is for a non-root user without HOME.
func DefaultStateDir(goos string, euid int, getenv func(string) string) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if dir, _, _ := strings.Cut(getenv("STATE_DIRECTORY"), ":"); goos != "windows" && filepath.IsAbs(dir) {
		return dir, nil
	}
	switch {
	case goos == "windows":
		base := getenv("ProgramData")
		if base == "" {
			base = `C:\ProgramData`
		}
		return base + `\` + stateDirName, nil
	case euid == 0:
		return "/var/lib/" + stateDirName, nil
	case filepath.IsAbs(getenv("XDG_STATE_HOME")):
		// The XDG spec: a relative XDG_STATE_HOME is invalid and ignored.
		return filepath.Join(getenv("XDG_STATE_HOME"), stateDirName), nil
	case getenv("HOME") != "":
		return filepath.Join(getenv("HOME"), ".local", "state", stateDirName), nil
	}
	return "", fmt.Errorf("%w: config.stateDir: no default for this user (not root, and neither XDG_STATE_HOME nor HOME is set); set stateDir or tasksDir in the config", ErrConfig)
}

// resolveDirs makes cfg.StateDir and cfg.TasksDir absolute, defaulting
// StateDir to DefaultStateDir (for this process's OS and user) and
// TasksDir to StateDir/tasks. Nothing is created.
func resolveDirs(cfg *Config) error {
	if cfg.StateDir == "" {
		d, err := DefaultStateDir(runtime.GOOS, os.Geteuid(), os.Getenv)
		if err != nil && cfg.TasksDir == "" {
			return err
		}
		cfg.StateDir = d
	}
	if cfg.TasksDir == "" {
		cfg.TasksDir = filepath.Join(cfg.StateDir, "tasks")
	}
	for _, p := range []*string{&cfg.StateDir, &cfg.TasksDir} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrConfig, *p, err)
		}
		*p = abs
	}
	return nil
}

package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// workerKind starts one worker binary for a scenario.
type workerKind struct {
	name   string // "workergen" or "generic-worker"
	binary string
	// config writes the worker's config file in dir and returns the
	// command line arguments that run it.
	config func(r *runEnv) ([]string, error)
}

// runEnv is what one worker run needs to know.
type runEnv struct {
	dir          string // fresh directory of this run
	rootURL      string
	clientID     string
	accessToken  string
	provisioner  string // provisionerId part of the task queue
	workerType   string // workerType part
	capacity     int
	storage      string // "s3" or "object"
	gwSigningKey string
}

func workergenKind(binary string) workerKind {
	return workerKind{name: "workergen", binary: binary, config: func(r *runEnv) ([]string, error) {
		cfg := map[string]any{
			"rootUrl":             r.rootURL,
			"credentials":         map[string]string{"clientId": r.clientID, "accessToken": r.accessToken},
			"workerPoolId":        r.provisioner + "/" + r.workerType,
			"workerGroup":         "local",
			"workerId":            "wg-1",
			"capacity":            r.capacity,
			"stateDir":            r.dir,
			"tasksDir":            filepath.Join(r.dir, "tasks"),
			"artifactUpload":      r.storage,
			"shutdownGracePeriod": 5,
		}
		path := filepath.Join(r.dir, "worker.json")
		if err := writeJSON(path, cfg); err != nil {
			return nil, err
		}
		return []string{"work", "--config", path}, nil
	}}
}

func genericWorkerKind(binary string) workerKind {
	return workerKind{name: "generic-worker", binary: binary, config: func(r *runEnv) ([]string, error) {
		cfg := map[string]any{
			"rootURL": r.rootURL, "clientId": r.clientID, "accessToken": r.accessToken,
			"provisionerId": r.provisioner, "workerType": r.workerType,
			"workerGroup": "local", "workerId": "gw-1",
			"ed25519SigningKeyLocation": r.gwSigningKey,
			"tasksDir":                  filepath.Join(r.dir, "tasks"),
			"cachesDir":                 filepath.Join(r.dir, "caches"),
			"downloadsDir":              filepath.Join(r.dir, "downloads"),
			"publicIP":                  "127.0.0.1",
			"createObjectArtifacts":     r.storage == "object",
			"capacity":                  r.capacity,
			"enableLiveLog":             false, "enableTaskclusterProxy": false, "enableInteractive": false,
			"enableChainOfTrust": true, "enableMounts": true, "enableMetadata": true, "enableResourceMonitor": true,
			"disableReboots": true, "shutdownMachineOnIdle": false, "shutdownMachineOnInternalError": false,
			"requiredDiskSpaceMegabytes": 512, "numberOfTasksToRun": 0, "idleTimeoutSecs": 0,
			"sentryProject": "", "cleanUpTaskDirs": true,
		}
		path := filepath.Join(r.dir, "generic-worker.json")
		if err := writeJSON(path, cfg); err != nil {
			return nil, err
		}
		return []string{"run", "--config", path}, nil
	}}
}

// gwSigningKey makes generic-worker's ed25519 key in dir once.
func gwSigningKey(ctx context.Context, binary, dir string) (string, error) {
	path := filepath.Join(dir, "ed25519.key")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	out, err := exec.CommandContext(ctx, binary, "new-ed25519-keypair", "--file", path).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("generic-worker new-ed25519-keypair: %v: %s", err, out)
	}
	return path, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// process is a started worker.
type process struct {
	cmd  *exec.Cmd
	done chan error
	gone chan struct{} // closed when the process ended
}

// start runs k in r.dir with its output in r.dir/worker.log.
func start(k workerKind, r *runEnv) (*process, error) {
	args, err := k.config(r)
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(r.dir, "worker.log"))
	if err != nil {
		return nil, err
	}
	argv := append([]string{k.binary}, args...)
	if wrap := strings.Fields(os.Getenv("BENCH_WRAP_" + strings.ToUpper(strings.ReplaceAll(k.name, "-", "_")))); len(wrap) > 0 {
		// A profiling prefix, e.g. BENCH_WRAP_WORKERGEN="strace -f -ttt -o /tmp/wg.strace";
		// figures then include the wrapper.
		argv = append(wrap, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = r.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "TASKCLUSTER_ROOT_URL="+r.rootURL)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting %s: %w", k.name, err)
	}
	p := &process{cmd: cmd, done: make(chan error, 1), gone: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		close(p.gone)
		p.done <- err
		_ = logf.Close()
	}()
	return p, nil
}

// stop sends SIGTERM, then SIGKILL to the process group after 10 s.
func (p *process) stop() {
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
	}
}

// exited reports the exit error if the process ended already.
func (p *process) exited() error {
	select {
	case err := <-p.done:
		p.done <- err
		if err == nil {
			err = errors.New("exited")
		}
		return err
	default:
		return nil
	}
}

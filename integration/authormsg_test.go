//go:build linux

package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/worker"
)

// What a task author sees from `run` (issue 16, point 8), through the
// generated binaries.

// runResult is one `run` of a worker binary.
type runResult struct {
	code           int
	stdout, stderr string
	out            string // --output directory
}

// runBinary runs `bin run --output <tmp>/out args...` in dir, with files
// written there first (name -> content), and returns its exit code and
// output.
func runBinary(t *testing.T, bin string, files map[string]string, args ...string) runResult {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	out := filepath.Join(dir, "out")
	cmd := exec.Command(bin, append([]string{"run", "--output", out}, args...)...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), stateDirEnv()}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		require.NoError(t, err)
	}
	return runResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String(), out: out}
}

func (r runResult) manifest(t *testing.T) worker.Manifest {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(r.out, "manifest.json"))
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	var m worker.Manifest
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

// reasonLines are the reason lines `run` prints under the resolution.
func (r runResult) reasonLines() []string {
	var out []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "  ") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// TestRunDockerWorkerPayloadOnNative: the upstream tutorial's
// docker-worker task given to the linux-native worker is refused with one
// leading reason saying what it is and which profiles run it, then the
// schema's details; exit 64 (bad input).
func TestRunDockerWorkerPayloadOnNative(t *testing.T) {
	task, err := os.ReadFile(filepath.Join("..", "..", "shared", "corpus", "real-tasks", "004-tutorial-hello-world.json"))
	if err != nil {
		t.Skip("../shared corpus not found")
	}
	r := runBinary(t, workerBin, map[string]string{"task.json": string(task)}, "task.json")
	assert.Equal(t, worker.ExitUsage, r.code, r.stdout+r.stderr)
	reasons := r.reasonLines()
	require.Greater(t, len(reasons), 1, r.stdout)
	assert.Equal(t, "malformed-payload: payload: this looks like a docker-worker payload (image, command as a list of strings); "+
		"this worker's profile linux-native runs generic-worker payloads: use a container profile such as linux-docker or linux-podman", reasons[0])
	assert.Contains(t, reasons[1:], "malformed-payload: payload.command[0]: got string, want array", "the details follow")
	m := r.manifest(t)
	assert.Equal(t, "exception/malformed-payload", m.Resolution)
	assert.Contains(t, m.Reasons[0], "this looks like a docker-worker payload")
	log, err := os.ReadFile(filepath.Join(r.out, "task.log"))
	require.NoError(t, err)
	assert.Contains(t, string(log), "malformed-payload: payload: this looks like a docker-worker payload")
}

// TestRunGenericWorkerPayloadOnPodman: the reverse, a generic-worker task
// of the corpus given to the linux-podman worker.
func TestRunGenericWorkerPayloadOnPodman(t *testing.T) {
	sock := podmanSetting("WORKERGEN_PODMAN_SOCKET")
	if sock == "" {
		t.Skip("no Podman socket (" + podmanEnvFile + "); run .ci/podman-setup.sh")
	}
	task, err := os.ReadFile(filepath.Join("..", "..", "shared", "corpus", "real-tasks", "027-changelog-osgroups-docker.json"))
	if err != nil {
		t.Skip("../shared corpus not found")
	}
	bin, err := podmanBin()
	require.NoError(t, err)
	r := runBinary(t, bin, map[string]string{"task.json": string(task), "worker.yml": "engine: {socket: \"" + sock + "\"}\n"},
		"--config", "worker.yml", "task.json")
	assert.Equal(t, worker.ExitUsage, r.code, r.stdout+r.stderr)
	reasons := r.reasonLines()
	require.Greater(t, len(reasons), 1, r.stdout+r.stderr)
	assert.Equal(t, "malformed-payload: payload: this looks like a generic-worker payload (command as a list of commands, osGroups); "+
		"this worker's profile linux-podman runs docker-worker payloads: use a native profile such as linux-native, linux-multiuser or windows-multiuser", reasons[0])
	assert.Contains(t, reasons[1:], "malformed-payload: payload: missing property 'image'")
}

// TestRunUnreachableDaemon: a container worker whose engine.socket no
// daemon answers on exits 69 (the host cannot run tasks), not 73 (invalid
// config), naming engine.socket.
func TestRunUnreachableDaemon(t *testing.T) {
	if podmanSetting("WORKERGEN_PODMAN_SOCKET") == "" {
		t.Skip("no Podman socket (" + podmanEnvFile + "); run .ci/podman-setup.sh")
	}
	bin, err := podmanBin()
	require.NoError(t, err)
	sock := "unix://" + t.TempDir() + "/none.sock"
	r := runBinary(t, bin, map[string]string{"task.yml": "payload: {image: busybox, command: [\"true\"], maxRunTime: 60}\n",
		"worker.yml": "engine: {socket: \"" + sock + "\"}\n"}, "--config", "worker.yml", "task.yml")
	assert.Equal(t, worker.ExitInternal, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stderr, "engine.socket")
	assert.Contains(t, r.stderr, sock)
}

// TestRunMissingRequiredArtifact: the run's printed result, its manifest
// and the task log name the missing artifact, its entry and path, and
// hint at optional: true.
func TestRunMissingRequiredArtifact(t *testing.T) {
	r := runBinary(t, workerBin, map[string]string{"task.yml": `payload:
  command: [["/bin/sh", "-c", "exit 0"]]
  maxRunTime: 60
  artifacts:
    - {type: file, path: out/result.txt, name: public/result.txt}
`}, "task.yml")
	assert.Equal(t, worker.ExitFailed, r.code, r.stdout+r.stderr)
	want := "required artifact \"public/result.txt\" (payload.artifacts[0]): \"out/result.txt\" was not found; " +
		"mark it `optional: true` in the payload if it may be absent"
	assert.Equal(t, []string{want}, r.reasonLines())
	assert.Equal(t, []string{want}, r.manifest(t).Reasons)
	log, err := os.ReadFile(filepath.Join(r.out, "task.log"))
	require.NoError(t, err)
	assert.Contains(t, string(log), `artifact "public/result.txt": error artifact (file-missing-on-worker)`)
	assert.Contains(t, string(log), "(required: this fails the task; mark it `optional: true` in the payload if it may be absent)")

	r = runBinary(t, workerBin, map[string]string{"task.yml": `payload:
  command: [["/bin/sh", "-c", "exit 3"]]
  maxRunTime: 60
  artifacts:
    - {type: file, path: out/result.txt, name: public/result.txt}
`}, "task.yml")
	assert.Equal(t, []string{"task exited with code 3", want}, r.reasonLines(), "the command's own failure first")
}

// TestRunLiveLog: `run` with the tasklog plugin's live log configured
// completes, with the live log published once (a link to the complete
// log, which replaced the reference to the stream) and the log written
// once.
func TestRunLiveLog(t *testing.T) {
	r := runBinary(t, workerBin, map[string]string{
		"worker.yml": "plugins:\n  tasklog: {liveLog: {listenAddress: \"127.0.0.1:0\"}}\n",
		"task.yml":   "payload:\n  command: [[\"/bin/sh\", \"-c\", \"echo live-$((20+22))\"]]\n  maxRunTime: 60\n",
	}, "--config", "worker.yml", "task.yml")
	require.Equal(t, worker.ExitCompleted, r.code, r.stdout+r.stderr)
	m := r.manifest(t)
	assert.Equal(t, "completed", m.Resolution)
	kinds := map[string]string{}
	for _, a := range m.Artifacts {
		_, dup := kinds[a.Name]
		assert.False(t, dup, "%s listed twice", a.Name)
		kinds[a.Name] = a.StorageType
		if a.Name == "public/logs/live.log" {
			assert.Equal(t, "public/logs/live_backing.log", a.LinkTo)
		}
	}
	assert.Equal(t, map[string]string{"public/logs/live.log": "link", "public/logs/live_backing.log": "file"}, kinds)
	for _, f := range []string{"task.log", filepath.Join("artifacts", "public", "logs", "live_backing.log")} {
		log, err := os.ReadFile(filepath.Join(r.out, f))
		require.NoError(t, err)
		assert.Equal(t, 1, strings.Count(string(log), "live-42\n"), "%s:\n%s", f, log)
	}
}

// TestRunYAMLErrorLine: a YAML error in a task file names the line it is
// on (go.yaml.in/yaml/v3 alone says one line earlier).
func TestRunYAMLErrorLine(t *testing.T) {
	r := runBinary(t, workerBin, map[string]string{
		"task.yml": "payload:\n  command: [[\"/bin/true\"]]\n  maxRunTime: 60\n  env: {A: \"1\"\n  features: {}\n",
	}, "task.yml")
	assert.Equal(t, worker.ExitUsage, r.code)
	assert.Contains(t, r.stderr, `task file task.yml: not valid JSON or YAML: line 4 (env: {A: "1"): did not find expected ',' or '}'`)
}

// TestRunExitCodes: one run per row of worker.RunExitCodes.
func TestRunExitCodes(t *testing.T) {
	sh := func(script string) string {
		return "payload:\n  command: [[\"/bin/sh\", \"-c\", \"" + script + "\"]]\n  maxRunTime: 60\n"
	}
	dep := worker.NewSlugID() // an artifact mount needs a Queue: run has none
	for _, c := range []struct {
		name  string
		files map[string]string
		args  []string
		code  int
		want  string // in stdout or stderr
	}{
		{"completed", map[string]string{"t.yml": sh("exit 0")}, []string{"t.yml"}, worker.ExitCompleted, ": completed"},
		{"failed", map[string]string{"t.yml": sh("exit 5")}, []string{"t.yml"}, worker.ExitFailed, "task exited with code 5"},
		{"resource-unavailable", map[string]string{"t.yml": "dependencies: [" + dep + "]\npayload:\n  command: [[\"/bin/true\"]]\n  maxRunTime: 60\n" +
			"  mounts: [{file: x, content: {taskId: " + dep + ", artifact: public/x}}]\n"},
			[]string{"t.yml"}, worker.ExitException, "exception/resource-unavailable"},
		{"malformed payload", map[string]string{"t.yml": "payload: {command: [[\"/bin/true\"]], maxRunTime: soon}\n"},
			[]string{"t.yml"}, worker.ExitUsage, "exception/malformed-payload"},
		{"invalid YAML", map[string]string{"t.yml": "payload: {command: [\n"}, []string{"t.yml"}, worker.ExitUsage, "not valid JSON or YAML"},
		{"not a task definition", map[string]string{"t.yml": "payload: {}\nretries: five\n"}, []string{"t.yml"}, worker.ExitUsage, "retries: got string"},
		{"task file missing", nil, []string{"nope.yml"}, worker.ExitUsage, "reading task file"},
		{"bad flag", nil, []string{"--bogus", "t.yml"}, worker.ExitUsage, "flag provided but not defined"},
		{"config not YAML", map[string]string{"t.yml": sh("exit 0"), "w.yml": "capacity: [\n"}, []string{"--config", "w.yml", "t.yml"}, worker.ExitUsage, "not valid JSON or YAML"},
		{"output not writable", map[string]string{"t.yml": sh("exit 0"), "file": "x"}, []string{"--output", "file/out", "t.yml"}, worker.ExitInternal, "task directory"},
		{"invalid config", map[string]string{"t.yml": sh("exit 0"), "w.yml": "capacityy: 2\n"}, []string{"--config", "w.yml", "t.yml"},
			worker.ExitInvalidConfig, `did you mean "capacity"?`},
		{"plugin config typo", map[string]string{"t.yml": sh("exit 0"), "w.yml": "plugins:\n  mounts: {minFreeByte: 1}\n"}, []string{"--config", "w.yml", "t.yml"},
			worker.ExitInvalidConfig, `config.plugins.mounts: additional properties 'minFreeByte' not allowed; did you mean "minFreeBytes"?`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runBinary(t, workerBin, c.files, c.args...)
			assert.Equal(t, c.code, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			assert.Contains(t, r.stdout+r.stderr, c.want)
		})
	}
	t.Run("SIGTERM", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "t.yml"), []byte(sh("echo started; exec sleep 600")), 0o644))
		out := filepath.Join(dir, "out")
		cmd := exec.Command(workerBin, "run", "--output", out, "t.yml")
		cmd.Dir = dir
		var stdout bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stdout
		require.NoError(t, cmd.Start())
		eventually(t, "the task to start", func() bool {
			log, _ := os.ReadFile(filepath.Join(out, "task.log"))
			return bytes.Contains(log, []byte("started\n"))
		})
		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			t.Fatal("run did not end after SIGTERM")
		}
		assert.Equal(t, worker.ExitSignal, cmd.ProcessState.ExitCode(), stdout.String())
		assert.Contains(t, stdout.String(), "exception/worker-shutdown")
	})
}

//go:build linux

package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/gen/build"
)

// podmanEnvFile is where .ci/podman-setup.sh records the Podman socket and
// the test image.
const podmanEnvFile = "/run/workergen-podman.env"

func podmanSetting(name string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	f, err := os.Open(podmanEnvFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && k == name {
			return v
		}
	}
	return ""
}

var podmanBin = sync.OnceValues(func() (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "workergen-it-podman-")
	if err != nil {
		return "", err
	}
	res, err := build.Build(context.Background(), build.Options{
		Root: root, DistDir: filepath.Join(dir, "dist"), Profile: "linux-podman", BinDir: dir, Version: "0.0.0-it", Commit: "it",
		Targets: []gen.Target{{OS: runtime.GOOS, Arch: runtime.GOARCH}},
	})
	if err != nil {
		return "", err
	}
	return res.Binaries[0].Path, nil
})

// podman runs the podman CLI against the test's Podman service.
func podman(t *testing.T, args ...string) string {
	sock := strings.TrimPrefix(podmanSetting("WORKERGEN_PODMAN_SOCKET"), "unix://")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "podman", append([]string{"--url", "unix://" + sock}, args...)...).CombinedOutput()
	require.NoError(t, err, "podman %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

// TestKill9RecoveryPodman: the linux-podman worker is killed with SIGKILL
// while its task's container runs; restarted with the same config, it
// removes the container, resolves run 0 exception/worker-shutdown (not
// claim-expired), removes run 0's directory, and completes run 1.
func TestKill9RecoveryPodman(t *testing.T) {
	sock, image := podmanSetting("WORKERGEN_PODMAN_SOCKET"), podmanSetting("WORKERGEN_TEST_IMAGE")
	if sock == "" || image == "" {
		t.Skip("no Podman service: run .ci/podman-setup.sh as root")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("no podman CLI")
	}
	bin, err := podmanBin()
	require.NoError(t, err)
	e := newEnv(t, 2*time.Minute)
	e.bin = bin
	tasksDir := filepath.Join(t.TempDir(), "tasks")
	// Run 0 leaves a setsid grandchild and sleeps; run 1 succeeds.
	id := e.task(map[string]any{"image": image, "maxRunTime": 600, "command": []string{"sh", "-c",
		`if [ "$RUN_ID" != 0 ]; then echo second run; exit 0; fi; setsid sleep 600 & echo started; exec sleep 600`}}, 1)
	workerID := fmt.Sprintf("it-podman-%d", os.Getpid())
	cfg := map[string]any{"tasksDir": tasksDir, "workerId": workerID, "engine": map[string]any{"socket": sock}}
	cmd, out := e.start(cfg)
	label := "label=org.workergen.task-id=" + id
	var ctr string
	eventually(t, "run 0's container to run", func() bool {
		ctr = podman(t, "ps", "-q", "--no-trunc", "--filter", label)
		return ctr != "" && strings.Contains(e.runState(id, 0), "running")
	})
	runDir := filepath.Join(tasksDir, id+"-0")
	require.DirExists(t, runDir)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	require.NotEmpty(t, podman(t, "ps", "-q", "--filter", "id="+ctr), "the container died with the worker: the test shows nothing")

	restart := time.Now()
	cfg["numberOfTasksToRun"] = 1
	cmd2, out2 := e.start(cfg)
	eventually(t, "run 0 to be cleaned up and resolved", func() bool {
		_, dirErr := os.Stat(runDir)
		return os.IsNotExist(dirErr) && e.runState(id, 0) == "exception/worker-shutdown" &&
			podman(t, "ps", "-aq", "--filter", "id="+ctr) == ""
	})
	t.Logf("FIGURE restart to run 0 cleaned and resolved (podman): %v", time.Since(restart))
	e.wait(cmd2, out2)
	assert.Equal(t, "exception/worker-shutdown", e.runState(id, 0), "first worker:\n%s\nrestarted worker:\n%s", out, out2)
	assert.Equal(t, "completed", e.runState(id, 1), "restarted worker:\n%s", out2)
	assert.NoDirExists(t, runDir)
	assert.Empty(t, podman(t, "ps", "-aq", "--filter", label), "no container of the task is left")
	assert.Contains(t, out2.String(), "recovery: resolved the run")
}

package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

// scenario is one task set.
type scenario struct {
	name     string
	title    string
	tasks    int
	capacity int
	storage  string // worker artifactUpload
	expect   string // state every task must end in
	perTask  bool   // report wall per task in ms
	payload  func(b *bencher) func(i int) map[string]any
	// floor measures the same work without a worker (nil: none).
	floor func(ctx context.Context, b *bencher, sc *scenario, round int) (sample, error)
	// skip gives, per worker name, why it does not run this scenario.
	skip map[string]string
	// data is the data file the scenario reads: dataText, dataRandom,
	// dataDir or none (0).
	data dataKind
}

// dataKind names one of the generated data files (dataFiles).
type dataKind int

const (
	dataText dataKind = 1 << iota
	dataRandom
	dataDir
)

// Scenarios are the names Options.Scenarios selects from.
func Scenarios() []string {
	var n []string
	for _, s := range allScenarios() {
		n = append(n, s.name)
	}
	return n
}

func allScenarios() []*scenario {
	fixed := func(script string) func(*bencher) func(int) map[string]any {
		return func(*bencher) func(int) map[string]any {
			return func(int) map[string]any { return shPayload(script) }
		}
	}
	fileArtifact := func(b *bencher) func(int) map[string]any {
		return func(int) map[string]any {
			p := shPayload(fmt.Sprintf("ln %[1]s random.bin 2>/dev/null || cp %[1]s random.bin", b.data.random))
			p["artifacts"] = []map[string]string{{"type": "file", "path": "random.bin", "name": "public/random.bin"}}
			return p
		}
	}
	return []*scenario{
		{name: "true-c1", title: "30 × true, capacity 1", tasks: 30, capacity: 1, expect: tcwire.StateCompleted, perTask: true,
			payload: fixed("true"), floor: rttFloor},
		{name: "true-c4", title: "60 × true, capacity 4", tasks: 60, capacity: 4, expect: tcwire.StateCompleted, perTask: true,
			payload: fixed("true"), floor: rttFloor},
		{name: "false-c1", title: "30 × false (failing), capacity 1", tasks: 30, capacity: 1, expect: tcwire.StateFailed, perTask: true,
			payload: fixed("false"), floor: rttFloor},
		{name: "stdout", title: "3 × SIZE MB stdout", tasks: 3, capacity: 1, expect: tcwire.StateCompleted, data: dataText,
			payload: func(b *bencher) func(int) map[string]any {
				return func(int) map[string]any { return shPayload("cat " + b.data.text) }
			}, floor: catFloor},
		{name: "s3-random", title: "3 × SIZE MB random file artifact (s3)", tasks: 3, capacity: 1, storage: "s3", data: dataRandom,
			expect: tcwire.StateCompleted, payload: fileArtifact, floor: putFloor},
		{name: "object-random", title: "3 × SIZE MB random file artifact (object)", tasks: 3, capacity: 1, storage: "object", data: dataRandom,
			expect: tcwire.StateCompleted, payload: fileArtifact, floor: putFloor,
			skip: map[string]string{"generic-worker": "v106 sends object uploads over 8 KB chunked without Content-Length (HTTP 411)"}},
		{name: "dir500", title: "3 × 500-file directory artifact (s3)", tasks: 3, capacity: 1, storage: "s3", data: dataDir,
			expect: tcwire.StateCompleted, payload: func(b *bencher) func(int) map[string]any {
				return func(int) map[string]any {
					p := shPayload("cp -al " + b.data.dir + " out 2>/dev/null || cp -r " + b.data.dir + " out")
					p["artifacts"] = []map[string]string{{"type": "directory", "path": "out", "name": "public/out"}}
					return p
				}
			}},
	}
}

func selectScenarios(names []string) ([]*scenario, error) {
	all := allScenarios()
	if len(names) == 0 {
		return all, nil
	}
	var out []*scenario
	for _, n := range names {
		found := false
		for _, s := range all {
			if s.name == strings.TrimSpace(n) {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("BENCH_SCENARIOS: unknown scenario %q; known: %s", n, strings.Join(Scenarios(), ", "))
		}
	}
	return out, nil
}

// dataFiles are the inputs the tasks copy.
type dataFiles struct {
	text   string // log-like text, compressible about 4×
	random string // random bytes, incompressible
	dir    string // 500 small text files
}

// makeData writes the data files in dir that need asks for: size bytes
// of text (dataText), size random bytes (dataRandom), a directory of 500
// files of 1-4 KiB (dataDir). Contents are deterministic (fixed seeds).
func makeData(dir string, size int64, need dataKind) (dataFiles, error) {
	d := dataFiles{text: filepath.Join(dir, "stdout.txt"), random: filepath.Join(dir, "random.bin"), dir: filepath.Join(dir, "dir500")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return d, err
	}
	if need&dataText != 0 {
		if err := writeText(d.text, size); err != nil {
			return d, err
		}
	}
	if need&dataRandom != 0 {
		if err := writeRandom(d.random, size); err != nil {
			return d, err
		}
	}
	if need&dataDir != 0 {
		if err := writeDir500(d.dir); err != nil {
			return d, err
		}
	}
	return d, nil
}

// writeText writes size bytes of log-like text to path.
func writeText(path string, size int64) error {
	rng := rand.New(rand.NewPCG(1, 2))
	return writeFile(path, func(w *bufio.Writer) {
		var n int64
		for i := 0; n < size; i++ {
			line := fmt.Sprintf("2026-12-06T00:%02d:%02d.%03dZ INFO step %d: compiling src/pkg%d/file%d.go (%016x)\n",
				i/60000%60, i/1000%60, i%1000, i, rng.IntN(200), rng.IntN(50), rng.Uint64())
			if n+int64(len(line)) > size {
				line = line[:size-n]
			}
			w.WriteString(line)
			n += int64(len(line))
		}
	})
}

// writeRandom writes size random bytes to path.
func writeRandom(path string, size int64) error {
	rng := rand.New(rand.NewPCG(3, 4))
	return writeFile(path, func(w *bufio.Writer) {
		var b [8]byte
		for n := int64(0); n < size; n += 8 {
			v := rng.Uint64()
			for i := range b {
				b[i] = byte(v >> (8 * i))
			}
			w.Write(b[:min(8, size-n)])
		}
	})
}

// writeDir500 writes 500 text files of 1-4 KiB into dir.
func writeDir500(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 500 {
		err := writeFile(filepath.Join(dir, fmt.Sprintf("f%03d.txt", i)), func(w *bufio.Writer) {
			for j := range (1024 + rng.IntN(3072)) / 32 {
				fmt.Fprintf(w, "line %d of file %d %x\n", j, i, rng.Uint32())
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, fill func(*bufio.Writer)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fill(w)
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// catFloor is `cat` of the stdout data to a file, sc.tasks times.
func catFloor(ctx context.Context, b *bencher, sc *scenario, _ int) (sample, error) {
	out := filepath.Join(b.opts.Dir, "cat.out")
	defer os.Remove(out)
	var s sample
	for range sc.tasks {
		cmd := exec.CommandContext(ctx, "sh", "-c", `cat "$1" > "$2"`, "sh", b.data.text, out)
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			return s, err
		}
		s.wall += time.Since(t0)
		s.cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			s.disk += ru.Oublock * 512
			s.peak = max(s.peak, ru.Maxrss<<10)
		}
	}
	return s, nil
}

// putFloor is createArtifact + a PUT of the random data (identity
// encoding) to sc.storage, sc.tasks times, on one claimed task.
func putFloor(ctx context.Context, b *bencher, sc *scenario, round int) (sample, error) {
	queueID := fmt.Sprintf("bench/floor-%s-%d", sc.name, round)
	ids, err := b.createTasks(ctx, queueID, 1, truePayload)
	if err != nil {
		return sample{}, err
	}
	defer b.dropBlobs(ids)
	c, err := claimOne(ctx, b.client, queueID)
	if err != nil {
		return sample{}, err
	}
	q := b.taskQueue(c)
	fi, err := os.Stat(b.data.random)
	if err != nil {
		return sample{}, err
	}
	t0 := time.Now()
	for i := range sc.tasks {
		err := q.UploadArtifact(ctx, c.Status.TaskID, c.RunID, fmt.Sprintf("public/floor-%d.bin", i), &taskcluster.ArtifactUpload{
			StorageType:   sc.storage,
			ContentType:   "application/octet-stream",
			ContentLength: fi.Size(),
			Expires:       c.Task.Expires,
			Open:          func() (io.ReadCloser, error) { return os.Open(b.data.random) },
		})
		if err != nil {
			return sample{}, err
		}
	}
	s := sample{wall: time.Since(t0), wallOnly: true}
	_, err = q.ReportCompleted(ctx, c.Status.TaskID, c.RunID)
	return s, err
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/workergen/workergen/bench"
	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/gen/build"
	"github.com/workergen/workergen/internal/progress"
)

// benchCmd builds the linux-native worker and runs it side by side with generic-worker (../shared/peers/generic-worker, or GW_BINARY) on the same tasks against the embedded Queue; BENCH_ROUNDS (5), BENCH_MB (100), BENCH_SCENARIOS (all), BENCH_DIR (dist/bench), WORKERGEN_BINARY (instead of building).
func benchCmd(ctx context.Context, args []string) error {
	if len(args) != 0 {
		return fmt.Errorf("bench takes no arguments, got %q", args)
	}
	wg := os.Getenv("WORKERGEN_BINARY") // e.g. a build with symbols, for perf
	if wg == "" {
		host := gen.Target{OS: runtime.GOOS, Arch: runtime.GOARCH}
		res, err := build.Build(ctx, build.Options{Root: ".", Profile: "linux-native", Targets: []gen.Target{host}, Progress: progress.New(os.Stdout)})
		if err != nil {
			return err
		}
		wg = res.Binaries[0].Path
	}
	gw := envOr("GW_BINARY", filepath.Join("..", "shared", "peers", "generic-worker", "generic-worker-insecure-linux-amd64"))
	rounds, err := atoiEnv("BENCH_ROUNDS", 5)
	if err != nil {
		return err
	}
	size, err := atoiEnv("BENCH_MB", 100)
	if err != nil {
		return err
	}
	var scens []string
	if s := os.Getenv("BENCH_SCENARIOS"); s != "" {
		scens = strings.Split(s, ",")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	return bench.Run(ctx, bench.Options{
		FloorCommand:  []string{self, "bench-floor"},
		Workergen:     wg,
		GenericWorker: gw,
		Dir:           envOr("BENCH_DIR", filepath.Join("dist", "bench")),
		Rounds:        rounds,
		SizeMB:        size,
		Scenarios:     scens,
		Out:           os.Stdout,
	})
}

func atoiEnv(key string, def int) (int, error) {
	v := os.Getenv(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive integer", key, v)
	}
	return n, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// benchFloorCmd is the benchmark's round-trip floor client (bench.FloorClient),
// run by bench in a process of its own.
func benchFloorCmd(ctx context.Context, args []string) error { return bench.FloorClient(ctx, args) }

//go:build mage

package main

import "context"

// Bench builds the linux-native worker and runs it side by side with generic-worker (../shared/peers/generic-worker, or GW_BINARY) on the same tasks against the embedded Queue; BENCH_ROUNDS (5), BENCH_MB (100), BENCH_SCENARIOS (all), BENCH_DIR (dist/bench), WORKERGEN_BINARY (instead of building).
func Bench(ctx context.Context) error {
	return tool(ctx, "bench")
}

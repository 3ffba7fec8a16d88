package artifacts_test

import (
	"testing"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/native"
)

// BenchmarkDirectoryArtifact10kNative is BenchmarkDirectoryArtifact10k with
// the native engine running `true` as the task's command.
func BenchmarkDirectoryArtifact10kNative(b *testing.B) {
	e, err := native.New(engines.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	benchDirectory(b, e, M{"command": [][]string{{"true"}}})
}

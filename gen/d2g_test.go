package gen_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/workergen/workergen/gen"
)

// d2gOutOfScope names the payload features of the d2g translations that
// the linux-multiuser profile does not provide, and why: a d2g payload
// using one is rejected (malformed-payload naming it) rather than run
// without it.
var d2gOutOfScope = map[string]string{
	// Loopback devices need kernel modules and a plugin of their own.
	"features.loopbackAudio": "needs the loopback plugin (snd-aloop), not built",
	"features.loopbackVideo": "needs the loopback plugin (v4l2loopback), not built",
}

// TestD2GPayloads: the generic-worker payloads d2g produces
// (../shared/taskcluster/d2g-testcases, genericWorkerTaskPayload and
// genericWorkerTaskDefinition.payload) are accepted by the linux-multiuser
// payload schema, except those using a feature of d2gOutOfScope, which
// must be rejected and, without that feature, accepted.
func TestD2GPayloads(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(sharedDir(t), "taskcluster", "d2g-testcases", "*.yml"))
	require.NoError(t, err)
	p, err := gen.Resolve(repoRoot(t), "linux-multiuser")
	require.NoError(t, err)
	ours := compile(t, p.PayloadSchema, nil)
	var accepted, outOfScope int
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var suite struct {
			TestSuite struct {
				PayloadTests []struct {
					Name    string         `json:"name"`
					Payload map[string]any `json:"genericWorkerTaskPayload"`
				} `json:"payloadTests"`
				TaskDefTests []struct {
					Name string `json:"name"`
					Def  struct {
						Payload map[string]any `json:"payload"`
					} `json:"genericWorkerTaskDefinition"`
				} `json:"taskDefTests"`
			} `json:"testSuite"`
		}
		require.NoError(t, yaml.Unmarshal(raw, &suite), f)
		var payloads []corpusTask
		for _, c := range suite.TestSuite.PayloadTests {
			if c.Payload != nil {
				payloads = append(payloads, corpusTask{filepath.Base(f) + ": " + c.Name, c.Payload})
			}
		}
		for _, c := range suite.TestSuite.TaskDefTests {
			if c.Def.Payload != nil {
				payloads = append(payloads, corpusTask{filepath.Base(f) + ": " + c.Name, c.Def.Payload})
			}
		}
		for _, c := range payloads {
			used := usedUnsupported(c.payload, p.Unsupported)
			for _, u := range used {
				require.Contains(t, d2gOutOfScope, u, "%s uses %s, which linux-multiuser lacks and d2gOutOfScope does not explain", c.file, u)
			}
			err := ours.Validate(toValidatable(t, c.payload))
			if len(used) == 0 {
				require.NoError(t, err, c.file)
				accepted++
				continue
			}
			require.Error(t, err, c.file)
			require.NoError(t, ours.Validate(toValidatable(t, withoutPaths(c.payload, used))), "%s without %v", c.file, used)
			outOfScope++
			t.Logf("%s: rejected for %s", c.file, strings.Join(used, ", "))
		}
	}
	t.Logf("d2g generic-worker payloads: %d accepted by linux-multiuser, %d rejected for an out-of-scope feature", accepted, outOfScope)
	require.Equal(t, 37, accepted+outOfScope)
	require.True(t, slices.ContainsFunc(p.Unsupported, func(u gen.Unsupported) bool { return u.Path == "features.loopbackAudio" }))
}

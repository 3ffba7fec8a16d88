package chainoftrust_test

// Integration: the linux-native and linux-podman workers run tasks with
// features.chainOfTrust against the embedded Queue; the test downloads
// chain-of-trust.json and its .sig with getArtifact and verifies them as
// scriptworker does.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins/internal/workerit"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/worker"
)

// cotV1Schema holds the constraints of scriptworker's
// scriptworker/data/cot_v1_schema.json (Chain of Trust artifact v1): the
// required top-level fields and their types, and the task fields
// scriptworker reads.
const cotV1Schema = `{
  "type": "object",
  "properties": {
    "artifacts": {"type": "object"},
    "chainOfTrustVersion": {"type": "number"},
    "environment": {"type": "object"},
    "runId": {"type": "number"},
    "task": {
      "type": "object",
      "properties": {
        "dependencies": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
        "payload": {"type": "object"},
        "scopes": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
        "taskGroupId": {"type": "string"},
        "workerType": {"type": "string"}
      },
      "required": ["dependencies", "payload", "scopes", "taskGroupId", "workerType"]
    },
    "taskId": {"type": "string"},
    "workerGroup": {"type": "string"},
    "workerId": {"type": "string"}
  },
  "required": ["artifacts", "chainOfTrustVersion", "environment", "runId", "task", "taskId", "workerGroup", "workerId"]
}`

// newKey runs `new-ed25519-keypair --file` through the worker's CLI and
// returns the key file and the public key it printed.
func newKey(t *testing.T) (string, ed25519.PublicKey) {
	return newKeyTB(t)
}

func newKeyTB(t testing.TB) (string, ed25519.PublicKey) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ed25519_private_key")
	var out, errOut bytes.Buffer
	code := worker.MainArgs(worker.Build{Binary: "workergen-test"}, []string{"new-ed25519-keypair", "--file", path}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	pub, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out.String()))
	require.NoError(t, err, "public key printed: %q", out.String())
	require.Len(t, pub, ed25519.PublicKeySize)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	return path, pub
}

func sharedPath(t *testing.T, rel string) string {
	t.Helper()
	wd, _ := os.Getwd()
	p := filepath.Join(wd, "..", "..", "..", "shared", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference file not at hand: %v", err)
	}
	return p
}

// verified downloads the certificate and signature of taskID, checks the
// signature with pub, the certificate against the v1 schema and every
// listed sha256 against the artifact served, and returns the certificate.
func verified(t *testing.T, e *workerit.Env, taskID string, pub ed25519.PublicKey) map[string]any {
	t.Helper()
	ctx := context.Background()
	cert, err := e.Download(ctx, taskID, "public/chain-of-trust.json")
	require.NoError(t, err)
	sig, err := e.Download(ctx, taskID, "public/chain-of-trust.json.sig")
	require.NoError(t, err)
	require.True(t, ed25519.Verify(pub, cert, sig), "signature does not verify with the public key new-ed25519-keypair printed")

	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(cert))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	sd, _ := jsonschema.UnmarshalJSON(strings.NewReader(cotV1Schema))
	require.NoError(t, c.AddResource("cot_v1_schema.json", sd))
	sch, err := c.Compile("cot_v1_schema.json")
	require.NoError(t, err)
	require.NoError(t, sch.Validate(doc))

	var m map[string]any
	require.NoError(t, json.Unmarshal(cert, &m))
	require.True(t, strings.HasPrefix(string(cert), "{\n  \""), "indented for humans")
	arts := m["artifacts"].(map[string]any)
	for name, v := range arts {
		want := v.(map[string]any)["sha256"].(string)
		data, err := e.Download(ctx, taskID, name)
		require.NoError(t, err, name)
		sum := sha256.Sum256(data)
		require.Equal(t, want, hex.EncodeToString(sum[:]), "sha256 of %s", name)
	}
	require.Equal(t, taskID, m["taskId"])
	require.EqualValues(t, 0, m["runId"])
	require.EqualValues(t, 1, m["chainOfTrustVersion"])
	require.Equal(t, e.Config.WorkerGroup, m["workerGroup"])
	require.Equal(t, e.Config.WorkerID, m["workerId"])
	return m
}

func names(m map[string]any) []string {
	var out []string
	for k := range m["artifacts"].(map[string]any) {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestChainOfTrustNative(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux-native profile")
	}
	keyPath, pub := newKey(t)
	e := workerit.New(t, workerit.Options{Profile: "linux-native", Plugins: map[string]any{
		"chainoftrust": map[string]any{
			"ed25519SigningKeyLocation": keyPath,
			"additionalDataFile":        sharedPath(t, "taskcluster/references/chain-of-trust/chain-of-trust-additional-data.json"),
			"environment":               map[string]any{"publicIpAddress": "203.0.113.7", "privateIpAddress": "10.0.0.7", "instanceType": "m5.large", "region": "us-east-1", "availabilityZone": "us-east-1a", "instanceId": "i-0abc"},
		},
	}})
	script := `mkdir -p out && echo one > out/a.txt && echo two > out/b.txt && printf 'single' > single.txt && echo "hello from the task" &&
printf '{"environment": {"fromTask": "yes", "region": "forged"}, "taskId": "forged"}' > chain-of-trust-additional-data.json`
	id := e.CreateTask(map[string]any{
		"command":    [][]string{{"/bin/sh", "-c", script}},
		"maxRunTime": 60,
		"artifacts": []any{
			map[string]any{"type": "directory", "path": "out", "name": "public/out"},
			map[string]any{"type": "file", "path": "single.txt", "name": "public/single.txt"},
		},
		"features": map[string]any{"chainOfTrust": true},
	})
	plain := e.CreateTask(map[string]any{"command": [][]string{{"true"}}, "maxRunTime": 60})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, e.Work(ctx, 2))
	require.Equal(t, "completed", e.Resolution(id), e.Log(id))
	require.Equal(t, "completed", e.Resolution(plain), e.Log(plain))

	m := verified(t, e, id, pub)
	require.Equal(t, []string{"public/logs/certified.log", "public/out/a.txt", "public/out/b.txt", "public/single.txt"}, names(m))
	env := m["environment"].(map[string]any)
	require.Equal(t, map[string]any{"publicIpAddress": "203.0.113.7", "privateIpAddress": "10.0.0.7", "instanceType": "m5.large",
		"region": "us-east-1", "availabilityZone": "us-east-1a", "instanceId": "i-0abc", "fromTask": "yes"}, env)
	tk := m["task"].(map[string]any)
	require.Equal(t, "tests", tk["schedulerId"], "the worker's values win over additional data")
	require.Equal(t, "bar2", tk["foo"], "operator additional data merged into task")
	require.Equal(t, "bar1", m["foo"])
	require.Equal(t, "linux-native", tk["workerType"])
	certified, err := e.Download(ctx, id, "public/logs/certified.log")
	require.NoError(t, err)
	require.Contains(t, string(certified), "hello from the task")

	_, err = e.Download(ctx, plain, "public/chain-of-trust.json")
	require.Error(t, err, "no certificate without features.chainOfTrust")
}

func TestChainOfTrustContainer(t *testing.T) {
	keyPath, pub := newKey(t)
	e := workerit.New(t, workerit.Options{Profile: "linux-podman",
		Engine:  map[string]any{"pullPolicy": "missing"},
		Plugins: map[string]any{"chainoftrust": map[string]any{"ed25519SigningKeyLocation": keyPath}}})
	id := e.CreateTask(map[string]any{
		"image": e.Image, "maxRunTime": 120,
		"command":   []string{"sh", "-c", "mkdir -p /out && echo built > /out/result.txt && echo done"},
		"artifacts": map[string]any{"public/result.txt": map[string]any{"type": "file", "path": "/out/result.txt"}},
		"features":  map[string]any{"chainOfTrust": true},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	require.NoError(t, e.Work(ctx, 1))
	require.Equal(t, "completed", e.Resolution(id), e.Log(id))
	m := verified(t, e, id, pub)
	require.Equal(t, []string{"public/logs/certified.log", "public/result.txt"}, names(m))

	cli, err := client.New(client.WithHost(workerit.PodmanEnv("WORKERGEN_PODMAN_SOCKET")))
	require.NoError(t, err)
	defer cli.Close()
	im, err := cli.ImageInspect(ctx, e.Image)
	require.NoError(t, err)
	env := m["environment"].(map[string]any)
	require.Equal(t, im.ID, env["imageHash"])
	require.True(t, strings.HasPrefix(im.ID, "sha256:"), im.ID)
	require.NotContains(t, env, "imageArtifactHash", "a registry image")

	// A task image: imageArtifactHash is the sha256 of the artifact it was
	// loaded from, imageHash the loaded image's ID (save/load keeps it).
	rc, err := cli.ImageSave(ctx, []string{e.Image})
	require.NoError(t, err)
	image, err := io.ReadAll(rc)
	rc.Close()
	require.NoError(t, err)
	producer := e.CreateTask(map[string]any{"image": e.Image, "maxRunTime": 60})
	claimed, err := e.Server.ClaimWork(ctx, e.Pool, "producer", "p1", 1)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	pq := (&taskcluster.Client{RootURL: e.URL, Credentials: taskcluster.StaticCredentials(claimed[0].Credentials)}).Queue()
	require.NoError(t, pq.UploadArtifact(ctx, producer, 0, "public/image.tar", &taskcluster.ArtifactUpload{
		StorageType: taskcluster.StorageS3, ContentType: "application/x-tar", ContentLength: int64(len(image)),
		Expires: time.Now().Add(24 * time.Hour),
		Open:    func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(image)), nil },
	}))
	_, err = pq.ReportCompleted(ctx, producer, 0)
	require.NoError(t, err)
	t.Cleanup(func() {
		st, _ := cli.ImageList(context.Background(), client.ImageListOptions{})
		for _, im := range st.Items {
			for _, tag := range im.RepoTags {
				if strings.Contains(tag, "workergen-task-image") {
					cli.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{})
				}
			}
		}
	})
	consumer := e.CreateTask(map[string]any{
		"image":   map[string]string{"type": "task-image", "taskId": producer, "path": "public/image.tar"},
		"command": []string{"sh", "-c", "echo in the task image"}, "maxRunTime": 60,
		"features": map[string]any{"chainOfTrust": true},
	})
	require.NoError(t, e.Work(ctx, 1))
	require.Equal(t, "completed", e.Resolution(consumer), e.Log(consumer))
	m = verified(t, e, consumer, pub)
	env = m["environment"].(map[string]any)
	sum := sha256.Sum256(image)
	require.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), env["imageArtifactHash"])
	require.Equal(t, im.ID, env["imageHash"])
}

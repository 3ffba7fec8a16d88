//go:build linux || darwin

package integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/worker"
)

// proxyGet is a bash script that sends GET $1 to the taskcluster proxy
// (bash's /dev/tcp: nothing to install) and prints the raw answer.
const proxyGet = `hostport=${TASKCLUSTER_PROXY_URL#http://}
exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"
printf 'GET %s HTTP/1.0\r\nHost: taskcluster\r\n\r\n' "$1" >&3
cat <&3`

// TestTaskclusterProxy: a task with features.taskclusterProxy reaches the
// Queue through TASKCLUSTER_PROXY_URL with its own scopes. The task
// holding queue:get-artifact:private/secret.txt is redirected to the
// private artifact; the one without is refused by the Queue.
func TestTaskclusterProxy(t *testing.T) {
	e := newEnv(t, time.Minute)
	producer := e.task(map[string]any{"command": sh("echo s3cret > secret.txt"), "maxRunTime": 30,
		"artifacts": []any{map[string]any{"type": "file", "path": "secret.txt", "name": "private/secret.txt"}}}, 0)
	cmd, out := e.start(map[string]any{"numberOfTasksToRun": 1})
	e.wait(cmd, out)
	require.Equal(t, "completed", e.runState(producer, 0), "worker output:\n%s", out)

	consumer := func(scopes []string) string {
		id := worker.NewSlugID()
		now := time.Now().UTC()
		_, err := e.queue.CreateTaskJSON(context.Background(), id, map[string]any{
			"taskQueueId": pool, "schedulerId": "it", "taskGroupId": id, "scopes": scopes,
			"created": now, "deadline": now.Add(time.Hour), "expires": now.Add(24 * time.Hour),
			"payload": map[string]any{
				"command":    []any{[]any{"/bin/bash", "-c", proxyGet, "get", "/api/queue/v1/task/" + producer + "/runs/0/artifacts/private/secret.txt"}},
				"maxRunTime": 30,
				"features":   map[string]any{"taskclusterProxy": true},
			},
			"metadata": map[string]string{"name": "proxy", "description": "d", "owner": "it@example.com", "source": "https://example.com/it"},
		})
		require.NoError(t, err)
		return id
	}
	allowed := consumer([]string{"queue:get-artifact:private/secret.txt"})
	refused := consumer(nil)
	cmd, out = e.start(map[string]any{"numberOfTasksToRun": 2})
	e.wait(cmd, out)

	require.Equal(t, "completed", e.runState(allowed, 0), "worker output:\n%s", out)
	log := e.artifact(allowed, 0, "public/logs/live_backing.log")
	assert.Contains(t, log, "[taskcluster-proxy] serving at http://127.0.0.1:")
	assert.Regexp(t, `HTTP/1\.[01] 303 See Other`, log)
	assert.Contains(t, log, "X-Taskcluster-Proxy-Temp-Clientid: ")
	assert.Contains(t, log, "X-Taskcluster-Endpoint: "+e.srv.URL+"/api/queue/v1/task/"+producer)

	log = e.artifact(refused, 0, "public/logs/live_backing.log")
	assert.Regexp(t, `HTTP/1\.[01] 403 Forbidden`, log)
	assert.Contains(t, log, "InsufficientScopes")
}

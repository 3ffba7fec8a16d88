package taskclusterproxy

import (
	"net/http"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/workergen/workergen/task"
)

// A multiuser run's proxy answers only its task user's connections: this
// test process (uid os.Getuid()) is refused by the proxy of a run whose
// task user has another uid, and served by one whose user it is.
func TestProxyAnswersOnlyItsTaskUser(t *testing.T) {
	d := newDeployment(t)
	other := startRunAs(t, d.srv.URL, proxyOn, &task.User{Name: "task_other", UID: os.Getuid() + 4242})
	resp, body := other.do("GET", "/api/queue/v1/ping", "", nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, body, "only the processes of task user task_other")
	assert.Empty(t, d.seen, "refused request reached the deployment")

	own := startRunAs(t, d.srv.URL, proxyOn, &task.User{Name: "task_me", UID: os.Getuid()})
	resp, body = own.do("GET", "/api/queue/v1/ping", "", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)

	// runTaskAsCurrentUser: the commands are the worker's, no check.
	cur := startRunAs(t, d.srv.URL, proxyOn, &task.User{Name: "task_cur", UID: os.Getuid() + 1, CurrentUser: true})
	resp, body = cur.do("GET", "/api/queue/v1/ping", "", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
}

package localqueue

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// LogArtifactName is the task log's backing artifact as Taskcluster workers
// publish it; LiveLogArtifactName is the live log (a reference while the
// task runs, then a link to the backing log).
const (
	LogArtifactName     = "public/logs/live_backing.log"
	LiveLogArtifactName = "public/logs/live.log"
)

// WorkerClient returns a static client for a worker claiming from
// taskQueueID: a random accessToken and the scopes claimWork needs
// (queue:claim-work:<taskQueueId>, queue:worker-id:*), plus
// auth:expand-scopes, with which workers expand tasks' roles. Put it in
// Options.Clients and give the same credentials to the worker.
func WorkerClient(clientID, taskQueueID string) Client {
	return Client{
		ClientID:    clientID,
		AccessToken: RandomAccessToken(),
		Scopes:      []string{"queue:claim-work:" + taskQueueID, "queue:worker-id:*", "auth:expand-scopes"},
	}
}

// RandomAccessToken returns a fresh random accessToken (44 URL-safe
// characters, like Taskcluster's).
func RandomAccessToken() string {
	b := make([]byte, 33)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Resolution summarises a task for people: its state, the reason of its
// last run, and where its log and file artifacts are on disk.
type Resolution struct {
	TaskID string
	Name   string // metadata.name
	State  string // task state
	Reason string // reasonResolved of the latest run, "" while unresolved
	Runs   int
	// Log is the path of the latest run's task log (LogArtifactName, or
	// what LiveLogArtifactName links to), "" if none was uploaded.
	Log string
	// Artifacts maps artifact names of the latest run to the paths of
	// their uploaded bytes (s3 and object artifacts), or to "error:
	// <reason>" for error artifacts; the log is not repeated.
	Artifacts map[string]string
}

// Resolutions summarises the given tasks (all tasks, sorted by id, when
// taskIDs is empty).
func (s *Server) Resolutions(taskIDs ...string) ([]Resolution, error) {
	if len(taskIDs) == 0 {
		taskIDs = s.TaskIDs()
	}
	out := make([]Resolution, 0, len(taskIDs))
	for _, id := range taskIDs {
		st, err := s.Status(id)
		if err != nil {
			return nil, err
		}
		def, err := s.Task(id)
		if err != nil {
			return nil, err
		}
		r := Resolution{TaskID: id, Name: def.Metadata.Name, State: st.State, Runs: len(st.Runs), Artifacts: map[string]string{}}
		if len(st.Runs) == 0 {
			out = append(out, r)
			continue
		}
		last := st.Runs[len(st.Runs)-1]
		r.Reason = last.ReasonResolved
		arts, err := s.artifactMeta(id, last.RunID)
		if err != nil {
			return nil, err
		}
		logName := LogArtifactName
		for _, a := range arts {
			if a.Name == LiveLogArtifactName && a.StorageType == "link" {
				logName = a.Link
			}
		}
		for _, a := range arts {
			switch a.StorageType {
			case "s3", "object":
				p, err := s.ArtifactPath(id, last.RunID, a.Name)
				if err != nil {
					if errors.Is(err, ErrNotFound) {
						continue // created but never uploaded
					}
					return nil, err
				}
				if a.Name == logName {
					r.Log = p
				} else {
					r.Artifacts[a.Name] = p
				}
			case "error":
				r.Artifacts[a.Name] = "error: " + a.Reason
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// artifactMeta lists a run's artifacts without their content.
func (s *Server) artifactMeta(taskID string, runID int) ([]Artifact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, _, err := s.runLocked(taskID, runID); err != nil {
		return nil, err
	}
	var out []Artifact
	for _, a := range s.runArtifactsLocked(taskID, runID) {
		out = append(out, Artifact{Name: a.Name, StorageType: a.StorageType, ContentType: a.ContentType,
			Expires: a.Expires, Present: a.Present, URL: a.URL, Link: a.Link, Reason: a.Reason, Message: a.Message})
	}
	return out, nil
}

// WriteTable prints resolutions as a table: one line per task (task name,
// taskId, state/reason, runs, log path), then one indented line per
// artifact.
func WriteTable(w io.Writer, rs []Resolution) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tTASK ID\tRESOLUTION\tRUNS\tLOG")
	for _, r := range rs {
		res := r.State
		if r.Reason != "" && r.Reason != r.State {
			res += "/" + r.Reason
		}
		logPath := r.Log
		if logPath == "" {
			logPath = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.Name, r.TaskID, res, r.Runs, logPath)
		names := make([]string, 0, len(r.Artifacts))
		for n := range r.Artifacts {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(tw, "  %s\t\t\t\t%s\n", n, r.Artifacts[n])
		}
	}
	return tw.Flush()
}

// WaitResolved waits until every given task is resolved (completed,
// failed or exception with no retry pending) and returns their statuses,
// in the order given. It wakes when a task resolves, and at least every
// interval (100 ms when not positive), and then looks only at the tasks
// still waiting, so waiting costs next to nothing while tasks run. It
// returns ctx's error if ctx ends first, and an error for an unknown
// taskId.
func (s *Server) WaitResolved(ctx context.Context, interval time.Duration, taskIDs ...string) ([]TaskStatus, error) {
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	out := make([]TaskStatus, len(taskIDs))
	waiting := make([]int, len(taskIDs)) // indexes into taskIDs
	for i := range waiting {
		waiting[i] = i
	}
	for {
		changed, err := s.collectResolved(taskIDs, out, &waiting)
		if err != nil {
			return nil, err
		}
		if len(waiting) == 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			ids := make([]string, len(waiting))
			for i, w := range waiting {
				ids[i] = taskIDs[w]
			}
			return out, fmt.Errorf("waiting for tasks %s: %w", strings.Join(ids, ", "), ctx.Err())
		case <-changed:
		case <-t.C:
		}
	}
}

// collectResolved updates out for the tasks in *waiting, keeps in *waiting
// those not resolved yet, and returns a channel closed by the next
// resolution of any task (nil when none is waiting).
func (s *Server) collectResolved(taskIDs []string, out []TaskStatus, waiting *[]int) (<-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	still := (*waiting)[:0]
	for _, i := range *waiting {
		t, err := s.taskLocked(taskIDs[i])
		if err != nil {
			return nil, err
		}
		out[i] = t.status()
		if !t.resolved() {
			still = append(still, i)
		}
	}
	*waiting = still
	if len(still) == 0 {
		return nil, nil
	}
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed, nil
}

// Package localqueue is an embedded Taskcluster Queue: the subset of the
// Queue API (and of the object service) a worker uses, served over HTTP at
// <base>/api/queue/v1/... and <base>/api/object/v1/..., so a worker whose
// rootUrl is the server's URL works unchanged. It is for one machine and
// for tests; upstream references: references/queue/v1/api.json and
// references/object/v1/api.json, schemas in schemas/queue/v1 and
// schemas/object/v1 (Taskcluster v106).
//
// # Endpoints
//
// Queue: createTask, task, status, cancelTask, listDependentTasks,
// claimWork, reclaimTask,
// reportCompleted, reportFailed, reportException, createArtifact,
// finishArtifact, getArtifact, getLatestArtifact, artifact,
// latestArtifact, listArtifacts, listLatestArtifacts, artifactInfo,
// latestArtifactInfo, ping. Object
// service: createUpload, finishUpload, startDownload, object (metadata),
// download, ping. Worker-manager, for static worker pools made with
// CreateWorkerPool and CreateStaticWorker (state in memory only):
// registerWorker, reregisterWorker, shouldWorkerTerminate, removeWorker,
// reportWorkerError, listWorkerPoolErrors, ping. Routes, methods and scope
// expressions are those of the API references (a test compares them).
//
// # Semantics (as Taskcluster documents them)
//
// A task gets run 0 (pending, reasonCreated scheduled) when created, or
// stays unscheduled until its dependencies are resolved (requires
// all-completed or all-resolved). claimWork long-polls up to
// Options.LongPoll (default 20 s) and answers as soon as a task of the
// queue is pending, highest priority first, then oldest. A claim lasts
// Options.ClaimTimeout (default 20 min): takenUntil. reclaimTask extends
// it and issues fresh credentials; it answers 409 when the deadline passed
// or the run is not the latest or not running (cancelled, resolved, claim
// expired). A run not reclaimed by takenUntil is resolved
// exception/claim-expired and, while retries remain and the deadline is
// ahead, a new run is created (reasonCreated retry). reportException with
// worker-shutdown or intermittent-task also creates a new run while
// retries remain (reasonCreated retry and task-retry). Repeating a
// resolution is idempotent; resolving a run that is not running is 409. At
// the deadline, a pending or running run (or an unscheduled task, with a
// new run) is resolved exception/deadline-exceeded. cancelTask resolves
// exception/canceled.
//
// createArtifact needs the run running, or resolved exception less than
// 25 minutes ago; the artifact must not expire after the task. Repeating
// the same request is idempotent (a later expiry is accepted, a reference
// may change its url); a different one is 409. Storage types:
//
//   - s3: the response's putUrl is a URL of this server, signed like an S3
//     pre-signed URL (no Hawk), which stores the PUT body on disk. It
//     requires Content-Length (411 otherwise, also for an empty body) and
//     the Content-Type given to createArtifact (403 otherwise).
//   - object: the response names an object-service object and gives
//     temporary credentials with object:upload:<projectId>:<name>; the
//     worker calls createUpload (putUrl or dataInline), uploads,
//     finishUpload (hashes are checked against the stored bytes: a mismatch
//     is 400, unlike the real service), then finishArtifact. A run cannot
//     be reported completed while an object artifact is unfinished.
//   - reference, link, error.
//
// getArtifact answers 303 to a signed download URL of this server (s3,
// object), to the reference's url, or follows a link within the run; error
// artifacts answer 424 with {reason, message}. Downloads support Range.
//
// # Authentication
//
// Every request's Hawk header (or bewit) is verified with
// taskcluster/hawk: static clients from Options.Clients, and temporary
// credentials issued by the server itself (clientId IssuerClientID, scope
// `*`): claimWork and reclaimTask hand out named credentials
// task-client/<taskId>/<runId>/on/<workerGroup>/<workerId>/until/<seconds>
// valid until takenUntil with queue:reclaim-task:<taskId>/<runId>,
// queue:resolve-task:<taskId>/<runId>, queue:create-artifact:<taskId>/<runId>
// plus the task's scopes. Scopes match exactly or by a trailing `*`; roles
// are not expanded. Requests without credentials get
// Options.AnonymousScopes (default DefaultAnonymousScopes: public
// artifacts, task definitions, statuses), and authenticated callers get
// them too, like Taskcluster's implicit `anonymous` role. Bad signatures are 401
// AuthenticationFailed, missing scopes 403 InsufficientScopes. Hawk
// timestamps and certificate validity are checked against Options.Clock,
// so clients of a server with a FakeClock sign with that clock.
//
// # Differences from Taskcluster
//
// Deliberately stricter, to catch worker bugs: finishUpload checks hashes, a
// run with an unfinished object artifact cannot be reported completed, and
// signed PUT URLs require Content-Length. More lenient: repeating
// createArtifact for an unfinished object artifact returns the same upload
// (Taskcluster answers 409). Roles (roles.go) live in memory only. Not
// implemented: updateRole and role listing, nonce replay detection,
// task groups (beyond the schedulerId rule), rerunTask, scheduleTask,
// priorities changes, worker and queue metadata endpoints.
//
// # State
//
// Tasks, runs, artifacts and objects live in a bbolt database
// (Dir/queue.db), uploads of up to 64 KiB too, and larger artifact bytes
// in files in Dir/blobs/; a Server started again
// on the same Dir loses nothing. Tasks past their expires and artifacts
// past theirs are purged with their bytes (PurgeExpired, every 10 minutes
// of clock time). Options.NoSync trades fsync per commit (about 5 ms here)
// for speed. Time comes from Options.Clock: tests use
// a FakeClock, advance it and call CheckExpiry (every request also applies
// expiry), never sleep.
//
// # Use
//
// In-process (tests):
//
//	s, err := localqueue.New(localqueue.Options{Dir: t.TempDir(), Clients: []localqueue.Client{{
//		ClientID: "worker", AccessToken: "secret", Scopes: []string{"queue:claim-work:*", "queue:worker-id:*"},
//	}}})
//	srv := httptest.NewServer(s.Handler()) // rootUrl = srv.URL
//	s.CreateTask(ctx, localqueue.NewTaskID(), &def) // def a TaskDefinition; CreateTaskJSON takes JSON
//	... run a worker against srv.URL ...
//	st, _ := s.Status(taskID)          // runs, states, reasons
//	arts, _ := s.Artifacts(taskID, 0) // with content
//	s.Cancel(taskID)                  // makes the next reclaim 409
//	s.Close()
//
// On a TCP address: Start(addr, opts) returns a Running server (its URL is
// the rootUrl; Stop ends it, and a new Start on the same address and Dir
// resumes, which is how tests take the Queue down for a while), and
// ListenAndServe(ctx, addr, opts, ready) serves until ctx ends, calling
// ready (if not nil) with the Server and its URL once it listens.
//
// Command (Main with its defaults) is the command line for people, run by
// `go tool mage queue` / `queue:create` and by cmd/localqueue, which pass
// it the worker's task-file parser. `serve` serves, keeps a static
// client's credentials in <dir>/credentials.json and a worker config in
// <dir>/worker.json, creates the tasks of -tasks files, and with -wait
// exits once they are resolved, printing WriteTable's table of resolutions
// with the paths of each task's log and artifacts (files under
// <dir>/blobs/<taskId>/<random>-<runId>~<artifact name, "/" as "~">, the
// bytes of small uploads written out from queue.db when asked for).
// `create` adds tasks from files to a running server through the Queue API
// with the credentials in <dir>/credentials.json. WorkerClient makes a
// static client with the scopes a worker needs; Resolutions and
// WaitResolved serve tests and reports.
package localqueue

package localqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

// createFlags are create's command line.
type createFlags struct {
	dir, rootURL, clientID, token, queueID string
}

// Create adds tasks from task files to a running Queue through its API
// (queue.createTask over HTTP, signed with Hawk), one fresh taskId per
// file, and prints "created task <taskId> from <file> on <taskQueueId>
// (<state>)" for each:
//
//	-dir DIR             state directory of the running Queue: DIR/credentials.json gives rootUrl and credentials (Command.DefaultDir)
//	-root-url URL        the Queue's rootUrl instead (with -client-id and -access-token)
//	-client-id ID        clientId instead of the one in DIR/credentials.json
//	-access-token TOKEN  accessToken instead of the one in DIR/credentials.json
//	-task-queue-id ID    taskQueueId for every task (default: each file's own)
//
// Arguments are task files (JSON or YAML task definitions as Parse reads
// them), directories (their *.json, *.yml and *.yaml) or globs. Every file
// is read and checked as createTask checks a definition before any task is
// created; a bad file is a *UsageError naming the file and the field. An
// error of the Queue names the file whose task it refused; tasks created
// before it stay.
func (c *Command) Create(ctx context.Context, args []string) error {
	fs := c.flagSet("create")
	var f createFlags
	fs.StringVar(&f.dir, "dir", "", "state directory of the running Queue, whose credentials.json gives rootUrl and credentials (default "+c.defaultDirText()+")")
	fs.StringVar(&f.rootURL, "root-url", "", "the Queue's rootUrl (default: from DIR/credentials.json)")
	fs.StringVar(&f.clientID, "client-id", "", "clientId (default: from DIR/credentials.json)")
	fs.StringVar(&f.token, "access-token", "", "accessToken (default: from DIR/credentials.json)")
	fs.StringVar(&f.queueID, "task-queue-id", "", "taskQueueId for every task (default: each file's own)")
	if done, err := parseFlags(fs, args); done {
		return err
	}
	if fs.NArg() == 0 {
		return usageErrorf("create: no task files given: put task files, directories or globs after the flags")
	}
	if c.Parse == nil {
		return errors.New("localqueue: create needs a task parser")
	}
	files, err := taskFiles(fs.Args())
	if err != nil {
		return err
	}
	creds, from, err := c.createCredentials(f)
	if err != nil {
		return err
	}
	defs, err := checkTaskFiles(files, f.queueID, c.Parse)
	if err != nil {
		return err
	}
	q := (&taskcluster.Client{
		RootURL:        creds.RootURL,
		Credentials:    taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: creds.ClientID, AccessToken: creds.AccessToken}),
		MaxElapsedTime: 5 * time.Second,
		UserAgent:      "workergen-localqueue-create",
	}).Queue()
	if err := dialQueue(ctx, creds.RootURL); err != nil {
		return fmt.Errorf("no Queue answers at %s (rootUrl from %s): is it serving? %w", creds.RootURL, from, err)
	}
	for i, file := range files {
		id := NewTaskID()
		st, err := q.CreateTask(ctx, id, &defs[i])
		if err != nil {
			return fmt.Errorf("%s: createTask: %w", file, err)
		}
		fmt.Fprintf(c.stdout(), "created task %s from %s on %s (%s)\n", id, file, st.Status.TaskQueueID, st.Status.State)
	}
	return nil
}

// dialQueue connects to rootURL's host once (within 5 s), so a Queue that
// is not there fails at once rather than after the client's retries.
func dialQueue(ctx context.Context, rootURL string) error {
	u, err := url.Parse(rootURL)
	if err != nil || u.Host == "" {
		return usageErrorf("rootUrl %q is not a URL", rootURL)
	}
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	return conn.Close()
}

// createCredentials returns the rootUrl and credentials create uses and
// where they come from: the flags, completed from DIR/credentials.json.
func (c *Command) createCredentials(f createFlags) (StandaloneCredentials, string, error) {
	creds := StandaloneCredentials{RootURL: f.rootURL, ClientID: f.clientID, AccessToken: f.token}
	from := "the command line"
	if creds.RootURL == "" || creds.ClientID == "" || creds.AccessToken == "" {
		dir, err := c.stateDir(f.dir)
		if err != nil {
			return creds, "", err
		}
		path := filepath.Join(dir, CredentialsFileName)
		data, err := os.ReadFile(path)
		if err != nil {
			return creds, "", usageErrorf("credentials: %w: start the Queue (%s) with this state directory first", err, c.name())
		}
		var kept StandaloneCredentials
		if err := json.Unmarshal(data, &kept); err != nil {
			return creds, "", usageErrorf("credentials: %s: %w", path, err)
		}
		from = path
		if creds.RootURL == "" {
			creds.RootURL = kept.RootURL
		}
		if creds.ClientID == "" {
			creds.ClientID = kept.ClientID
		}
		if creds.AccessToken == "" {
			creds.AccessToken = kept.AccessToken
		}
	}
	for field, v := range map[string]string{"rootUrl": creds.RootURL, "clientId": creds.ClientID, "accessToken": creds.AccessToken} {
		if v == "" {
			return creds, "", usageErrorf("credentials: %s is empty in %s", field, from)
		}
	}
	return creds, from, nil
}

// checkTaskFiles reads every file and checks its definition as createTask
// would (the Queue's own validation, minus scopes and dependencies), so a
// bad file creates nothing. The error names every bad file.
func checkTaskFiles(files []string, queueID string, parse TaskParser) ([]TaskDefinition, error) {
	now := time.Now()
	defs := make([]TaskDefinition, len(files))
	var errs []error
	for i, file := range files {
		def, err := readTaskFile(file, now, queueID, parse)
		if err == nil {
			body, _ := json.Marshal(&def)
			_, err = parseTaskDefinition(NewTaskID(), body, now)
			var ae *apiError
			if errors.As(err, &ae) {
				err = fmt.Errorf("%s: %s", file, strings.ReplaceAll(ae.msg, "\n", "\n  "))
			} else if err != nil {
				err = fmt.Errorf("%s: %w", file, err)
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		defs[i] = def
	}
	if len(errs) > 0 {
		return nil, &UsageError{Err: fmt.Errorf("no task created:\n%w", errors.Join(errs...))}
	}
	return defs, nil
}

// readTaskFile reads and parses one task file, with taskQueueID (if not
// empty) replacing its task queue. Errors name the file (and the field,
// as parse names it).
func readTaskFile(path string, now time.Time, taskQueueID string, parse TaskParser) (TaskDefinition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return TaskDefinition{}, &UsageError{Err: err}
	}
	def, err := parse(data, now)
	if err != nil {
		return TaskDefinition{}, &UsageError{Err: fmt.Errorf("%s: %w", path, err)}
	}
	if taskQueueID != "" {
		def.TaskQueueID, def.ProvisionerID, def.WorkerType = taskQueueID, "", ""
	}
	if def.TaskQueueID == "" && (def.ProvisionerID == "" || def.WorkerType == "") {
		return TaskDefinition{}, usageErrorf("%s: taskQueueId: missing: add taskQueueId: <provisionerId>/<workerType> to the task definition (or give -task-queue-id); a task file for create is a whole task definition with payload and metadata, not a bare payload", path)
	}
	if def.Metadata == (tcwire.TaskMetadata{}) {
		return TaskDefinition{}, usageErrorf("%s: metadata: missing: a task definition needs metadata: {name, description, owner, source} (source an https:// URL)", path)
	}
	return def, nil
}

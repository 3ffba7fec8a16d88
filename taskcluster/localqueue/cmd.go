package localqueue

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// TaskParser turns the bytes of a task file (JSON or YAML, possibly with
// `{{now}}`-style placeholders) into a task definition CreateTask accepts.
// The worker package's ParseTaskFile fits; localqueue does not import the
// worker runtime itself.
type TaskParser func(data []byte, now time.Time) (TaskDefinition, error)

// StandaloneCredentials is the file Main keeps in its state directory so a
// worker config can point at it across restarts: the rootUrl and the
// static client's credentials.
type StandaloneCredentials struct {
	RootURL     string `json:"rootUrl"`
	ClientID    string `json:"clientId"`
	AccessToken string `json:"accessToken"`
}

// CredentialsFileName is the name of the StandaloneCredentials file in the
// state directory.
const CredentialsFileName = "credentials.json"

// Main runs the embedded Queue as a command for people, until ctx ends
// (or, with -wait, until the tasks it loaded are resolved):
//
//	-addr ADDR           listen address (default 127.0.0.1:8080; port 0 picks one)
//	-dir DIR             state directory (default <user cache dir>/workergen/localqueue)
//	-client-id ID        the static client (default "local"); it has scope `*`
//	-access-token TOKEN  its accessToken (default: generated once, kept in DIR/credentials.json)
//	-tasks PATHS         comma-separated task files or directories (*.json, *.yml, *.yaml) to create at start
//	-task-queue-id ID    override the taskQueueId of loaded tasks
//	-claim-timeout D     claim duration (default 20m)
//	-long-poll D         claimWork long poll (default 20s)
//	-wait                exit once every loaded task is resolved
//
// It prints the rootUrl and credentials a worker needs, the taskIds it
// created, and at the end a table of every task's resolution with the
// paths of its log and artifacts (WriteTable). parse is needed for -tasks.
func Main(ctx context.Context, args []string, stdout io.Writer, parse TaskParser) error {
	fs := flag.NewFlagSet("localqueue", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	dir := fs.String("dir", "", "state directory")
	clientID := fs.String("client-id", "local", "static client id (scope *)")
	token := fs.String("access-token", "", "static client accessToken (default generated and kept in the state directory)")
	tasks := fs.String("tasks", "", "comma-separated task files or directories to create at start")
	queueID := fs.String("task-queue-id", "", "taskQueueId for loaded tasks")
	claimTimeout := fs.Duration("claim-timeout", DefaultClaimTimeout, "claim duration")
	longPoll := fs.Duration("long-poll", DefaultLongPoll, "claimWork long poll")
	wait := fs.Bool("wait", false, "exit once every loaded task is resolved")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("localqueue: unexpected arguments %q", fs.Args())
	}
	if *dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("localqueue: no -dir and no user cache directory: %w", err)
		}
		*dir = filepath.Join(cache, "workergen", "localqueue")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return fmt.Errorf("localqueue: %w", err)
	}
	credsPath := filepath.Join(*dir, CredentialsFileName)
	creds := StandaloneCredentials{ClientID: *clientID, AccessToken: *token}
	if creds.AccessToken == "" {
		var old StandaloneCredentials
		if data, err := os.ReadFile(credsPath); err == nil && json.Unmarshal(data, &old) == nil && old.ClientID == *clientID {
			creds.AccessToken = old.AccessToken
		}
		if creds.AccessToken == "" {
			creds.AccessToken = RandomAccessToken()
		}
	}
	files, err := taskFiles(*tasks)
	if err != nil {
		return err
	}
	if len(files) > 0 && parse == nil {
		return errors.New("localqueue: -tasks needs a task parser")
	}
	opts := Options{
		Dir:          *dir,
		Clients:      []Client{{ClientID: creds.ClientID, AccessToken: creds.AccessToken, Scopes: []string{"*"}}},
		ClaimTimeout: *claimTimeout,
		LongPoll:     *longPoll,
	}
	r, err := Start(*addr, opts)
	if err != nil {
		return err
	}
	stop := func(err error) error {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return errors.Join(err, r.Stop(stopCtx))
	}
	creds.RootURL = r.URL
	data, _ := json.MarshalIndent(creds, "", "  ")
	if err := os.WriteFile(credsPath, append(data, '\n'), 0o600); err != nil {
		return stop(fmt.Errorf("localqueue: writing %s: %w", credsPath, err))
	}
	fmt.Fprintf(stdout, "localqueue serving\n  rootUrl:     %s\n  clientId:    %s\n  accessToken: %s\n  credentials: %s\n  state:       %s\n",
		r.URL, creds.ClientID, creds.AccessToken, credsPath, *dir)
	var created []string
	for _, f := range files {
		id, err := r.loadTaskFile(ctx, f, *queueID, parse)
		if err != nil {
			return stop(err)
		}
		created = append(created, id)
		fmt.Fprintf(stdout, "  created task %s from %s\n", id, f)
	}
	if *wait {
		if _, err := r.WaitResolved(ctx, 200*time.Millisecond, created...); err != nil {
			return stop(err)
		}
	} else {
		<-ctx.Done()
	}
	printResolutions(stdout, r.Server)
	return stop(nil)
}

func printResolutions(w io.Writer, s *Server) {
	rs, err := s.Resolutions()
	if err != nil {
		fmt.Fprintf(w, "localqueue: %v\n", err)
		return
	}
	fmt.Fprintln(w)
	_ = WriteTable(w, rs)
}

// taskFiles expands comma-separated files and directories into task files
// (directories contribute their *.json, *.yml and *.yaml files, sorted).
func taskFiles(list string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("localqueue: task files: %w", err)
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("localqueue: task files: %w", err)
		}
		var names []string
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".json", ".yml", ".yaml":
				if !e.IsDir() {
					names = append(names, filepath.Join(p, e.Name()))
				}
			}
		}
		sort.Strings(names)
		out = append(out, names...)
	}
	return out, nil
}

// loadTaskFile parses a task file and creates it with a fresh taskId,
// optionally on another task queue.
func (s *Server) loadTaskFile(ctx context.Context, path, taskQueueID string, parse TaskParser) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("loading task %s: %w", path, err)
	}
	def, err := parse(data, s.clock.Now())
	if err != nil {
		return "", fmt.Errorf("loading task %s: %w", path, err)
	}
	if taskQueueID != "" {
		def.TaskQueueID, def.ProvisionerID, def.WorkerType = taskQueueID, "", ""
	}
	id := NewTaskID()
	if _, err := s.CreateTask(ctx, id, &def); err != nil {
		return "", fmt.Errorf("loading task %s: %w", path, err)
	}
	return id, nil
}

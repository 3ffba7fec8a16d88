package localqueue

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// TaskParser turns the bytes of a task file (JSON or YAML, possibly with
// `{{now}}`-style placeholders) into a task definition CreateTask accepts.
// The worker package's ParseTaskFile fits; localqueue does not import the
// worker runtime itself.
type TaskParser func(data []byte, now time.Time) (TaskDefinition, error)

// StandaloneCredentials is the file `serve` keeps in its state directory
// so `create` and a worker config can find the Queue across restarts: the
// rootUrl and the static client's credentials.
type StandaloneCredentials struct {
	RootURL     string `json:"rootUrl"`
	ClientID    string `json:"clientId"`
	AccessToken string `json:"accessToken"`
}

// CredentialsFileName is the name of the StandaloneCredentials file in the
// state directory; WorkerConfigFileName is the worker config `serve`
// writes beside it (rootUrl, credentials, workerPoolId, workerGroup,
// workerId), for `work --config <dir>/worker.json`.
const (
	CredentialsFileName  = "credentials.json"
	WorkerConfigFileName = "worker.json"
)

// DefaultTaskQueueID is the taskQueueId of the worker config `serve`
// writes when no -task-queue-id is given: the one examples/*.yml use.
const DefaultTaskQueueID = "workergen/local"

// UsageError is a bad command line or a bad task file: Main's callers exit
// 64 for it (as the worker does for a bad command line or task file).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ExitCode is the process exit status for a Command's error: 0 for nil,
// 64 for a *UsageError (a bad command line or task file), 1 otherwise.
func ExitCode(err error) int {
	var usage *UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usage):
		return 64
	}
	return 1
}

func usageErrorf(format string, a ...any) error {
	return &UsageError{Err: fmt.Errorf(format, a...)}
}

// Command is the embedded Queue's command line: `serve` runs a Queue until
// its context ends, `create` adds tasks from files to a running one over
// the Queue API. Main runs it with the defaults; `go tool mage queue` and
// the localqueue binary (cmd/localqueue) set the fields.
type Command struct {
	// Parse reads task files (needed by create and serve -tasks).
	Parse TaskParser
	// Stdout receives what a person reads: the rootUrl, credentials and
	// hints at start, created taskIds, the resolution table at the end.
	Stdout io.Writer
	// Log receives the server's log (text slog); nil discards it.
	Log io.Writer
	// Name is how a person runs the serve command (usage text); default
	// "localqueue".
	Name string
	// CreateHint returns the command line that adds tasks to the Queue
	// serving from state directory dir, printed at start; default
	// "<Name> create -dir <dir> FILE...".
	CreateHint func(dir string) string
	// DefaultDir is the state directory without -dir; "" means
	// <user cache dir>/workergen/localqueue.
	DefaultDir string
	// StopWithParent stops serve when the process's parent exits, whatever
	// it is (the compiled magefile sets it: it runs under mage's launcher).
	// Without it serve still stops when a launcher above it exits: a `go`
	// (go tool, go run) or `mage` parent, and such a launcher's own
	// launcher, found in /proc on Linux. Those wait for their child but
	// die of SIGTERM (and SIGKILL) without passing it on, which would leave
	// the server running, holding its port.
	StopWithParent bool
}

// Main runs Command{Parse: parse, Stdout: stdout}.Run: the embedded Queue's
// command line with its defaults.
func Main(ctx context.Context, args []string, stdout io.Writer, parse TaskParser) error {
	return (&Command{Parse: parse, Stdout: stdout}).Run(ctx, args)
}

// Run dispatches args: "serve [flags]" (also with no subcommand) or
// "create [flags] FILE...". Errors of the command line and of task files
// are *UsageError.
func (c *Command) Run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return c.Serve(ctx, args[1:])
		case "create":
			return c.Create(ctx, args[1:])
		case "help", "-h", "-help", "--help":
			fmt.Fprintf(c.stdout(), "usage:\n  %s [serve] [flags]       run the embedded Queue until SIGINT/SIGTERM\n  %s create [flags] FILE...  create tasks from task files in a running one\n%s serve -h or %s create -h for the flags\n",
				c.name(), c.name(), c.name(), c.name())
			return nil
		}
		if !strings.HasPrefix(args[0], "-") {
			return usageErrorf("%s: unknown command %q: use serve or create", c.name(), args[0])
		}
	}
	return c.Serve(ctx, args)
}

func (c *Command) name() string {
	if c.Name == "" {
		return "localqueue"
	}
	return c.Name
}

func (c *Command) stdout() io.Writer {
	if c.Stdout == nil {
		return io.Discard
	}
	return c.Stdout
}

func (c *Command) flagSet(sub string) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name()+" "+sub, flag.ContinueOnError)
	fs.SetOutput(c.stdout())
	return fs
}

// parseFlags is fs.Parse with errors as *UsageError (and -h as nil with
// done set).
func parseFlags(fs *flag.FlagSet, args []string) (done bool, err error) {
	err = fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return true, nil
	}
	if err != nil {
		return true, &UsageError{Err: err}
	}
	return false, nil
}

// stateDir returns dir, or the command's default state directory.
func (c *Command) stateDir(dir string) (string, error) {
	if dir == "" {
		dir = c.DefaultDir
	}
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", usageErrorf("no -dir and no user cache directory: %w", err)
		}
		dir = filepath.Join(cache, "workergen", "localqueue")
	}
	return filepath.Abs(dir)
}

// listenAddr accepts a bare port ("8080" means 127.0.0.1:8080).
func listenAddr(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err != nil && !strings.Contains(addr, ":") {
		return net.JoinHostPort("127.0.0.1", addr)
	}
	return addr
}

// serveFlags are serve's command line.
type serveFlags struct {
	addr, dir, clientID, token, tasks, queueID string
	claimTimeout, longPoll                     time.Duration
	wait                                       bool
}

// Serve runs the embedded Queue until ctx ends (or, with -wait, until the
// tasks it loaded are resolved):
//
//	-addr ADDR           listen address (default 127.0.0.1:8080; a bare port is on 127.0.0.1; port 0 picks one)
//	-dir DIR             state directory (Command.DefaultDir)
//	-client-id ID        the static client (default "local"); it has scope `*`
//	-access-token TOKEN  its accessToken (default: generated once, kept in DIR/credentials.json)
//	-tasks PATHS         comma-separated task files, directories (*.json, *.yml, *.yaml) or globs to create at start
//	-task-queue-id ID    taskQueueId of loaded tasks and of DIR/worker.json (default: the files' own; workergen/local)
//	-claim-timeout D     claim duration (default 20m)
//	-long-poll D         claimWork long poll (default 20s)
//	-wait                exit once every loaded task is resolved
//
// At start it writes DIR/credentials.json and DIR/worker.json and prints
// the rootUrl, the credentials' location, the state directory, how to
// create tasks and a one-line worker config; then the taskIds it created;
// at the end a table of every task's resolution with the paths of its log
// and artifacts (WriteTable).
func (c *Command) Serve(ctx context.Context, args []string) error {
	fs := c.flagSet("serve")
	var f serveFlags
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "listen address host:port, or a port on 127.0.0.1; port 0 picks a free one")
	fs.StringVar(&f.dir, "dir", "", "state directory (default "+c.defaultDirText()+")")
	fs.StringVar(&f.clientID, "client-id", "local", "static client id (scope *)")
	fs.StringVar(&f.token, "access-token", "", "static client accessToken (default generated and kept in the state directory)")
	fs.StringVar(&f.tasks, "tasks", "", "comma-separated task files, directories or globs to create at start")
	fs.StringVar(&f.queueID, "task-queue-id", "", "taskQueueId for loaded tasks and the printed worker config (default: the files' own; "+DefaultTaskQueueID+")")
	fs.DurationVar(&f.claimTimeout, "claim-timeout", DefaultClaimTimeout, "claim duration")
	fs.DurationVar(&f.longPoll, "long-poll", DefaultLongPoll, "claimWork long poll")
	fs.BoolVar(&f.wait, "wait", false, "exit once every loaded task is resolved")
	if done, err := parseFlags(fs, args); done {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("%s serve: unexpected arguments %q (task files go in -tasks, or to create)", c.name(), fs.Args())
	}
	dir, err := c.stateDir(f.dir)
	if err != nil {
		return err
	}
	files, err := taskFiles(splitList(f.tasks))
	if err != nil {
		return err
	}
	if len(files) > 0 && c.Parse == nil {
		return errors.New("localqueue: -tasks needs a task parser")
	}
	defs, err := checkTaskFiles(files, f.queueID, c.Parse)
	if err != nil {
		return err
	}
	ctx, cancel := stopWithLaunchers(ctx, watchLaunchers(c.StopWithParent))
	defer cancel()
	return c.serve(ctx, f, dir, files, defs)
}

func (c *Command) defaultDirText() string {
	if c.DefaultDir != "" {
		return c.DefaultDir
	}
	return "<user cache dir>/workergen/localqueue"
}

// serve runs the Queue for Serve with its command line checked and the
// definitions of the -tasks files read.
func (c *Command) serve(ctx context.Context, f serveFlags, dir string, files []string, defs []TaskDefinition) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("localqueue: state directory: %w", err)
	}
	creds := StandaloneCredentials{ClientID: f.clientID, AccessToken: f.token}
	if creds.AccessToken == "" {
		creds.AccessToken = keptAccessToken(filepath.Join(dir, CredentialsFileName), f.clientID)
	}
	logw := c.Log
	if logw == nil {
		logw = io.Discard
	}
	r, err := Start(listenAddr(f.addr), Options{
		Dir:          dir,
		Clients:      []Client{{ClientID: creds.ClientID, AccessToken: creds.AccessToken, Scopes: []string{"*"}}},
		ClaimTimeout: f.claimTimeout,
		LongPoll:     f.longPoll,
		Logger:       slog.New(slog.NewTextHandler(logw, nil)),
	})
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w: is a Queue already serving there? -addr gives another address (port 0 picks a free one)", err)
	}
	if err != nil {
		return err
	}
	stop := func(err error) error {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return errors.Join(err, r.Stop(stopCtx))
	}
	creds.RootURL = r.URL
	if err := c.writeStateFiles(dir, creds, f.queueID); err != nil {
		return stop(err)
	}
	out := c.stdout()
	var created []string
	for i, file := range files {
		id := NewTaskID()
		if _, err := r.CreateTask(ctx, id, &defs[i]); err != nil {
			return stop(fmt.Errorf("%s: createTask: %w", file, err))
		}
		created = append(created, id)
		fmt.Fprintf(out, "created task %s from %s\n", id, file)
	}
	if f.wait {
		if _, err := r.WaitResolved(ctx, 200*time.Millisecond, created...); err != nil {
			return stop(err)
		}
	} else {
		<-ctx.Done()
		fmt.Fprintf(out, "stopping: %v\n", context.Cause(ctx))
	}
	printResolutions(out, r.Server)
	return stop(nil)
}

// keptAccessToken is the accessToken of clientID kept in the credentials
// file at path, or a fresh one.
func keptAccessToken(path, clientID string) string {
	var old StandaloneCredentials
	if data, err := os.ReadFile(path); err == nil && json.Unmarshal(data, &old) == nil && old.ClientID == clientID && old.AccessToken != "" {
		return old.AccessToken
	}
	return RandomAccessToken()
}

// writeStateFiles writes DIR/credentials.json and DIR/worker.json and
// prints where they are and how to use them.
func (c *Command) writeStateFiles(dir string, creds StandaloneCredentials, queueID string) error {
	credsPath := filepath.Join(dir, CredentialsFileName)
	data, _ := json.MarshalIndent(creds, "", "  ")
	if err := os.WriteFile(credsPath, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("localqueue: writing %s: %w", credsPath, err)
	}
	if queueID == "" {
		queueID = DefaultTaskQueueID
	}
	cfg, _ := json.Marshal(struct {
		RootURL     string            `json:"rootUrl"`
		Credentials map[string]string `json:"credentials"`
		Pool        string            `json:"workerPoolId"`
		Group       string            `json:"workerGroup"`
		ID          string            `json:"workerId"`
	}{creds.RootURL, map[string]string{"clientId": creds.ClientID, "accessToken": creds.AccessToken}, queueID, "local", "local-1"})
	cfgPath := filepath.Join(dir, WorkerConfigFileName)
	if err := os.WriteFile(cfgPath, append(cfg, '\n'), 0o600); err != nil {
		return fmt.Errorf("localqueue: writing %s: %w", cfgPath, err)
	}
	hint := fmt.Sprintf("%s create -dir %s FILE...", c.name(), dir)
	if c.CreateHint != nil {
		hint = c.CreateHint(dir)
	}
	fmt.Fprintf(c.stdout(), "embedded Queue serving (SIGINT or SIGTERM stops it)\n"+
		"  rootUrl:      %s\n  credentials:  %s (clientId %s, scope *)\n  state:        %s\n"+
		"  create tasks: %s\n  worker:       <worker binary> work --config %s\n  worker.json:  %s\n",
		creds.RootURL, credsPath, creds.ClientID, dir, hint, cfgPath, cfg)
	return nil
}

// printResolutions prints the table of every task's resolution (a line
// saying there were none when the Queue has no task).
func printResolutions(w io.Writer, s *Server) {
	rs, err := s.Resolutions()
	if err != nil {
		fmt.Fprintf(w, "localqueue: %v\n", err)
		return
	}
	fmt.Fprintln(w)
	if len(rs) == 0 {
		fmt.Fprintln(w, "no tasks were created in this Queue")
		return
	}
	_ = WriteTable(w, rs)
}

// splitList splits a comma-separated list, dropping empty entries.
func splitList(list string) []string {
	var out []string
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// taskFiles expands paths into task files: a file is itself, a directory
// contributes its *.json, *.yml and *.yaml files (sorted), a glob (with *,
// ? or [) its matches. A path that does not exist or a glob without a
// match is a *UsageError naming it.
func taskFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if strings.ContainsAny(p, "*?[") {
			if _, err := os.Stat(p); err != nil {
				matches, err := filepath.Glob(p)
				if err != nil {
					return nil, usageErrorf("task files: %q: %w", p, err)
				}
				if len(matches) == 0 {
					return nil, usageErrorf("task files: no file matches %q", p)
				}
				out = append(out, matches...)
				continue
			}
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, &UsageError{Err: fmt.Errorf("task files: %w", err)}
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("task files: %w", err)
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
		if len(names) == 0 {
			return nil, usageErrorf("task files: directory %s has no *.json, *.yml or *.yaml file", p)
		}
		sort.Strings(names)
		out = append(out, names...)
	}
	return out, nil
}

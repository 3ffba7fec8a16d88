package localqueue

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/workergen/workergen/taskcluster"
)

// testParser is a small stand-in for the worker's task file parser: YAML
// or JSON with {{now}} and {{now+<N>h|d}} placeholders.
func testParser(data []byte, now time.Time) (TaskDefinition, error) {
	re := regexp.MustCompile(`\{\{\s*now\s*(?:\+\s*(\d+)([hd]))?\s*\}\}`)
	data = re.ReplaceAllFunc(data, func(m []byte) []byte {
		sub := re.FindSubmatch(m)
		t := now
		if len(sub[1]) > 0 {
			n := 0
			for _, c := range sub[1] {
				n = n*10 + int(c-'0')
			}
			unit := time.Hour
			if string(sub[2]) == "d" {
				unit = 24 * time.Hour
			}
			t = t.Add(time.Duration(n) * unit)
		}
		return []byte(t.UTC().Format(time.RFC3339))
	})
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return TaskDefinition{}, err
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		return TaskDefinition{}, err
	}
	for k := range m {
		if strings.HasPrefix(k, "x-") {
			delete(m, k)
		}
	}
	js, err = json.Marshal(m)
	if err != nil {
		return TaskDefinition{}, err
	}
	var def TaskDefinition
	return def, json.Unmarshal(js, &def)
}

func TestMainStandalone(t *testing.T) {
	dir := t.TempDir()
	tasksDir := t.TempDir()
	for name, body := range map[string]string{
		"a.yml": "taskQueueId: p/w\ncreated: '{{now}}'\ndeadline: '{{now+1h}}'\nexpires: '{{now+1d}}'\n" +
			"metadata: {name: first, description: d, owner: o@example.com, source: 'https://example.com'}\npayload: {command: [[true]]}\nx-note: dropped\n",
		"b.json": `{"provisionerId": "p", "workerType": "w", "created": "{{now}}", "deadline": "{{now+2h}}",
			"metadata": {"name": "second", "description": "d", "owner": "o@example.com", "source": "https://example.com"}, "payload": {}}`,
		"README.md": "not a task",
	} {
		if err := os.WriteFile(filepath.Join(tasksDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := Main(context.Background(), []string{"-addr", "127.0.0.1:0", "-dir", dir, "-tasks", tasksDir, "-task-queue-id", "local/queue", "-wait", "-long-poll", "100ms"}, pw, testParser)
		_ = pw.CloseWithError(err)
		errc <- err
	}()
	sc := bufio.NewScanner(pr)
	var ids []string
	var out strings.Builder
	for len(ids) < 2 && sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "created task "); ok {
			ids = append(ids, strings.Fields(rest)[0])
		}
	}
	if len(ids) != 2 {
		t.Fatalf("output:\n%s", out.String())
	}
	data, err := os.ReadFile(filepath.Join(dir, CredentialsFileName))
	if err != nil {
		t.Fatal(err)
	}
	var creds StandaloneCredentials
	if err := json.Unmarshal(data, &creds); err != nil || creds.RootURL == "" || creds.AccessToken == "" {
		t.Fatalf("credentials file: %s", data)
	}
	// A worker with those credentials completes one task and fails the other.
	c := &taskcluster.Client{RootURL: creds.RootURL, Credentials: taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: creds.ClientID, AccessToken: creds.AccessToken})}
	ctx := context.Background()
	for i := 0; i < 2; {
		res, err := c.Queue().ClaimWork(ctx, "local/queue", &taskcluster.ClaimWorkRequest{WorkerGroup: "g", WorkerID: "w", Tasks: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, cl := range res.Tasks {
			tq := (&taskcluster.Client{RootURL: creds.RootURL, Credentials: taskcluster.StaticCredentials(cl.Credentials)}).Queue()
			if cl.Task.Metadata.Name == "first" {
				_, err = tq.ReportCompleted(ctx, cl.Status.TaskID, cl.RunID)
			} else {
				_, err = tq.ReportFailed(ctx, cl.Status.TaskID, cl.RunID)
			}
			if err != nil {
				t.Fatal(err)
			}
			i++
		}
	}
	rest, _ := io.ReadAll(pr)
	out.Write(rest)
	if err := <-errc; err != nil {
		t.Fatalf("Main: %v\n%s", err, out.String())
	}
	for _, want := range []string{"first", "completed", "second", "failed", "rootUrl:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("\n%s", out.String())

	// The generated accessToken is kept for the next start.
	s, err := New(Options{Dir: dir, ExpireInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.TaskIDs()); n != 2 {
		t.Fatalf("tasks after Main: %d", n)
	}
	_ = s.Close()
}

// TestCommandCreate adds tasks through the Queue API with credentials
// from the command line, from a directory and a glob; wrong credentials
// and a Queue that is not there are errors naming the file.
func TestCommandCreate(t *testing.T) {
	client := Client{ClientID: "creator", AccessToken: RandomAccessToken(), Scopes: []string{"*"}}
	r, err := Start("127.0.0.1:0", Options{Dir: t.TempDir(), Clients: []Client{client}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	tasks := t.TempDir()
	task := "taskQueueId: p/w\ncreated: '{{now}}'\ndeadline: '{{now+1h}}'\n" +
		"metadata: {name: %s, description: d, owner: o@example.com, source: 'https://example.com'}\npayload: {}\n"
	for _, name := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(tasks, name+".yml"), []byte(fmt.Sprintf(task, name)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	cmd := &Command{Parse: testParser, Stdout: &out}
	creds := []string{"-root-url", r.URL, "-client-id", client.ClientID, "-access-token", client.AccessToken}
	if err := cmd.Run(context.Background(), append(append([]string{"create"}, creds...), tasks, filepath.Join(tasks, "a.*"))); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], filepath.Join(tasks, "a.yml")+" on p/w (pending)") || !strings.Contains(lines[1], "b.yml") {
		t.Fatalf("output:\n%s", out.String())
	}
	for _, l := range lines {
		id := strings.Fields(l)[2]
		if st, err := r.Status(id); err != nil || st.State != "pending" {
			t.Fatalf("%s: %+v %v", id, st, err)
		}
	}

	err = cmd.Run(context.Background(), []string{"create", "-root-url", r.URL, "-client-id", client.ClientID, "-access-token", "wrong", tasks})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(tasks, "a.yml")+": createTask:") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong accessToken: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "http://" + ln.Addr().String()
	_ = ln.Close()
	err = cmd.Run(context.Background(), []string{"create", "-root-url", gone, "-client-id", "c", "-access-token", "t", tasks})
	if err == nil || !strings.Contains(err.Error(), "no Queue answers at "+gone) {
		t.Fatalf("no Queue: %v", err)
	}
	var usage *UsageError
	if err := cmd.Run(context.Background(), []string{"create", filepath.Join(tasks, "*.json")}); !errors.As(err, &usage) || !strings.Contains(err.Error(), "no file matches") {
		t.Fatalf("glob without a match: %v", err)
	}
}

// TestServeCommandLine: a bare port listens on 127.0.0.1, a taken port
// says what to do, stray arguments are usage errors, a bad -tasks file is
// one naming the file and the field before anything is served.
func TestServeCommandLine(t *testing.T) {
	for in, want := range map[string]string{"8080": "127.0.0.1:8080", "0": "127.0.0.1:0", ":9000": ":9000", "0.0.0.0:1": "0.0.0.0:1", "[::1]:2": "[::1]:2"} {
		if got := listenAddr(in); got != want {
			t.Errorf("listenAddr(%q) = %q, want %q", in, got, want)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := &Command{Parse: testParser}
	err = cmd.Run(context.Background(), []string{"-addr", ln.Addr().String(), "-dir", t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "is a Queue already serving there?") {
		t.Fatalf("taken port: %v", err)
	}
	var usage *UsageError
	if err := cmd.Run(context.Background(), []string{"serve", "-dir", t.TempDir(), "a.yml"}); !errors.As(err, &usage) || !strings.Contains(err.Error(), "-tasks") {
		t.Fatalf("stray argument: %v", err)
	}
	if err := cmd.Run(context.Background(), []string{"sevre"}); !errors.As(err, &usage) {
		t.Fatalf("unknown command: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("taskQueueId: p/w\ndeadline: '{{now+1h}}'\npayload: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	err = cmd.Run(context.Background(), []string{"-addr", "127.0.0.1:0", "-dir", dir, "-tasks", bad})
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), bad+": metadata: missing") {
		t.Fatalf("bad -tasks file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, CredentialsFileName)); !os.IsNotExist(err) {
		t.Fatalf("served despite a bad -tasks file: %v", err)
	}
}

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{usageErrorf("bad flag"), 64},
		{fmt.Errorf("reading tasks: %w", usageErrorf("bad.yml: metadata: missing")), 64},
		{errors.New("port taken"), 1},
	} {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

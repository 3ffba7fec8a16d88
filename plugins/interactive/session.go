package interactive

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// Message types a client sends (the first byte of each binary message).
const (
	MsgStdin  = 1
	MsgResize = 2
)

// defaultSize is the terminal size until the client sends its own.
var defaultSize = engines.TermSize{Rows: 24, Cols: 80}

// taskPlugin is one run that asked for an interactive shell.
type taskPlugin struct {
	plugins.Base
	p          *Plugin
	tc         *task.Context
	artifact   string
	maxRunTime int

	secret  string
	sandbox engines.ShellSandbox

	mu       sync.Mutex
	ended    bool
	sessions map[*websocket.Conn]context.CancelFunc
	wg       sync.WaitGroup
}

// Started makes the run's socket reachable and publishes the shell
// artifact. An engine without the interactive-shell ability is refused by
// the generator; a sandbox without it here is an internal error.
func (t *taskPlugin) Started(ctx context.Context, s engines.Sandbox) error {
	ss, ok := s.(engines.ShellSandbox)
	if !ok {
		return task.InternalError(errors.New("interactive: the engine's sandbox has no interactive shell (engines.ShellSandbox)"))
	}
	t.sandbox = ss
	t.secret = newSecret()
	t.sessions = map[*websocket.Conn]context.CancelFunc{}
	t.p.register(t)
	expires := time.Now().Add(time.Duration(t.maxRunTime)*time.Second + 15*time.Minute)
	if te := t.tc.Definition.Expires; !te.IsZero() && te.Before(expires) {
		expires = te
	}
	err := t.tc.Artifacts.Publish(ctx, task.Artifact{
		Name: t.artifact, Kind: task.ArtifactReference, Expires: expires,
		ContentType: "text/html; charset=utf-8", URL: t.p.shellPageURL(t.tc, t.p.socketURL(t.secret)),
	})
	if err != nil {
		return err
	}
	t.tc.Logf("interactive: shell available while the task runs (artifact %s)", t.artifact)
	return nil
}

// Stopped ends the run's sessions: the task has ended.
func (t *taskPlugin) Stopped(context.Context, engines.ResultSet) (bool, error) {
	t.end()
	return true, nil
}

// Exception ends the run's sessions.
func (t *taskPlugin) Exception(context.Context, task.Resolution) error {
	t.end()
	return nil
}

// Dispose ends the run's sessions (if a stage before did not).
func (t *taskPlugin) Dispose(context.Context) error {
	t.end()
	return nil
}

// end unregisters the secret, closes every open socket and waits for
// their handlers.
func (t *taskPlugin) end() {
	if t.secret == "" {
		return
	}
	t.p.unregister(t)
	t.mu.Lock()
	t.ended = true
	for _, cancel := range t.sessions {
		cancel()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// serveShell serves GET /shell/<secret>: a websocket to a new shell in the
// run's sandbox.
func (p *Plugin) serveShell(w http.ResponseWriter, r *http.Request) {
	secret := strings.TrimPrefix(r.URL.Path, "/shell/")
	p.mu.Lock()
	t := p.runs[secretKey(secret)]
	p.mu.Unlock()
	if t == nil || secret == "" {
		http.Error(w, "Access denied", http.StatusUnauthorized)
		return
	}
	// The UI's page is served from the deployment's origin, not ours: any
	// origin may connect (the secret is the credential), as upstream.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept answered the request
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		cancel()
		conn.Close(websocket.StatusGoingAway, "the task has ended")
		return
	}
	t.sessions[conn] = cancel
	t.wg.Add(1)
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.sessions, conn)
		t.mu.Unlock()
		cancel()
		t.wg.Done()
	}()
	t.session(ctx, conn, r.RemoteAddr)
}

// session runs one shell for conn until the shell exits, the client goes
// away or ctx ends (the task ended).
func (t *taskPlugin) session(ctx context.Context, conn *websocket.Conn, remote string) {
	conn.SetReadLimit(1 << 20)
	sh, err := t.sandbox.Shell(ctx, defaultSize)
	if err != nil {
		msg := fmt.Sprintf("Error while spawning command: %v\r\n", err)
		_ = conn.Write(ctx, websocket.MessageBinary, []byte(msg))
		conn.Close(websocket.StatusInternalError, "no shell")
		return
	}
	defer sh.Close()
	t.tc.Logf("interactive: shell session opened from %s", remote)
	go t.readInput(ctx, conn, sh)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := sh.Read(buf)
		if n > 0 {
			if err := conn.Write(ctx, websocket.MessageBinary, buf[:n]); err != nil {
				break
			}
		}
		if rerr != nil {
			break
		}
	}
	conn.Close(websocket.StatusNormalClosure, "shell ended")
	t.tc.Logf("interactive: shell session closed")
}

// readInput applies the client's messages to the shell until the socket
// fails; then it closes the shell, which ends the session.
func (t *taskPlugin) readInput(ctx context.Context, conn *websocket.Conn, sh engines.Shell) {
	defer sh.Close()
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if len(msg) == 0 {
			continue
		}
		switch msg[0] {
		case MsgStdin:
			if _, err := sh.Write(msg[1:]); err != nil {
				return
			}
		case MsgResize:
			if len(msg) < 5 {
				continue
			}
			size := engines.TermSize{Rows: binary.LittleEndian.Uint16(msg[1:3]), Cols: binary.LittleEndian.Uint16(msg[3:5])}
			if err := sh.Resize(size); err != nil {
				t.p.logger.Debug("interactive: resize failed", "taskId", t.tc.TaskID, "error", err)
			}
		}
	}
}

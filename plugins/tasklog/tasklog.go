// Package tasklog is the plugin that publishes a run's task log (upstream:
// schemas/generic-worker/insecure_posix.json, properties `logs` and
// `features.backingLog` / `features.liveLog`).
//
// At the end of every run — in Finished, in Exception, and through
// plugins.UnstartedRunHandler.RunEndedEarly for runs that ended before task
// plugins existed (e.g. a payload the schema rejected) — it publishes:
//
//   - the backing log, the complete file at task.Context.LogPath, as a file
//     artifact named `logs.backing` (default "public/logs/live_backing.log"),
//     content type "text/plain; charset=utf-8", gzip encoding, expiring with
//     the task; unless `features.backingLog` is false;
//   - the live log `logs.live` (default "public/logs/live.log") as a link
//     artifact to the backing log, when `features.liveLog` is not false and
//     the backing log was published.
//
// When the worker config enables live logs (`liveLog.listenAddress`, see
// LiveConfig), `logs.live` is first published in the Started stage as a
// `reference` artifact to a stream of the log served by the worker while
// the task runs; at the end it is replaced by the link, as generic-worker
// does.
//
// For a run that ended early the payload may be invalid: the names and flags
// are taken from it when they decode, else the defaults apply.
//
// The plugin must come last in the profile's plugin order so that the log it
// publishes holds what the other plugins wrote in their Finished stage.
package tasklog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/artifacts"
	"github.com/workergen/workergen/task"
)

// Default artifact names (upstream `logs` defaults).
const (
	DefaultLiveName    = "public/logs/live.log"
	DefaultBackingName = "public/logs/live_backing.log"
)

// ContentType is the content type of the backing log.
const ContentType = "text/plain; charset=utf-8"

// Config is the plugin's worker config section (`plugins.tasklog`).
type Config struct {
	// LiveLog enables streaming the log of running tasks; nil disables it.
	LiveLog *LiveConfig `json:"liveLog,omitempty"`
}

// Logs is upstream's `logs` object.
type Logs struct {
	Live    string `json:"live,omitempty"`
	Backing string `json:"backing,omitempty"`
}

// Features is the part of upstream's `features` object this plugin reads.
type Features struct {
	BackingLog *bool `json:"backingLog,omitempty"`
	LiveLog    *bool `json:"liveLog,omitempty"`
}

// settings are a run's resolved log settings.
type settings struct {
	live, backing     string
	liveOn, backingOn bool
}

func defaults() settings {
	return settings{live: DefaultLiveName, backing: DefaultBackingName, liveOn: true, backingOn: true}
}

type plugin struct {
	live *liveServer // nil when live logs are disabled
}

var (
	_ plugins.Plugin              = (*plugin)(nil)
	_ plugins.UnstartedRunHandler = (*plugin)(nil)
)

// New returns the tasklog plugin. With `liveLog.listenAddress` set it
// starts the live log server; an address that cannot be listened on is an
// error naming the field.
func New(opts plugins.Options) (plugins.Plugin, error) {
	var c Config
	if err := plugins.DecodeConfig(opts.Config, &c); err != nil {
		return nil, fmt.Errorf("plugins.tasklog: %w", err)
	}
	p := &plugin{}
	if c.LiveLog != nil && c.LiveLog.ListenAddress != "" {
		log := opts.Logger
		if log == nil {
			log = slog.Default()
		}
		ls, err := startLiveServer(*c.LiveLog, log)
		if err != nil {
			return nil, fmt.Errorf("plugins.tasklog.%w", err)
		}
		p.live = ls
	}
	return p, nil
}

// Close stops the live log server, if any.
func (p *plugin) Close() error {
	if p.live != nil {
		return p.live.close()
	}
	return nil
}

// NewTaskPlugin decodes `payload.logs` and the log feature flags.
func (p *plugin) NewTaskPlugin(_ context.Context, tc *task.Context) (plugins.TaskPlugin, error) {
	s, err := decodeSettings(tc.Definition.Payload)
	if err != nil {
		return nil, err
	}
	return &taskPlugin{tc: tc, s: s, live: p.live}, nil
}

// RunEndedEarly publishes the log of a run that ended before NewTaskPlugin
// was called or succeeded.
func (*plugin) RunEndedEarly(ctx context.Context, tc *task.Context, _ task.Resolution) error {
	s, err := decodeSettings(tc.Definition.Payload)
	if err != nil {
		s = defaults()
	}
	return publish(ctx, tc, s)
}

func decodeSettings(payload json.RawMessage) (settings, error) {
	s := defaults()
	var p struct {
		Logs     *json.RawMessage `json:"logs"`
		Features *json.RawMessage `json:"features"`
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return s, task.MalformedPayloadf("payload: not a JSON object: %v", err)
	}
	var reasons []string
	if p.Logs != nil && !bytes.Equal(bytes.TrimSpace(*p.Logs), []byte("null")) {
		var l Logs
		if err := json.Unmarshal(*p.Logs, &l); err != nil {
			reasons = append(reasons, fmt.Sprintf("payload.logs: %v", err))
		}
		if l.Live != "" {
			s.live = l.Live
		}
		if l.Backing != "" {
			s.backing = l.Backing
		}
	}
	if p.Features != nil && !bytes.Equal(bytes.TrimSpace(*p.Features), []byte("null")) {
		var f Features
		if err := json.Unmarshal(*p.Features, &f); err != nil {
			reasons = append(reasons, fmt.Sprintf("payload.features: %v", err))
		}
		if f.BackingLog != nil {
			s.backingOn = *f.BackingLog
		}
		if f.LiveLog != nil {
			s.liveOn = *f.LiveLog
		}
	}
	if s.backingOn {
		if err := artifacts.ValidateName(s.backing); err != nil {
			reasons = append(reasons, fmt.Sprintf("payload.logs.backing: %v", err))
		}
		if s.liveOn {
			if err := artifacts.ValidateName(s.live); err != nil {
				reasons = append(reasons, fmt.Sprintf("payload.logs.live: %v", err))
			} else if s.live == s.backing {
				reasons = append(reasons, fmt.Sprintf("payload.logs.live: %q is also the backing log's name", s.live))
			}
		}
	}
	if len(reasons) > 0 {
		return defaults(), task.MalformedPayload(reasons...)
	}
	return s, nil
}

type taskPlugin struct {
	plugins.Base
	tc   *task.Context
	s    settings
	live *liveServer

	stop func() // ends the live stream and unregisters it
}

// Started publishes `logs.live` as a reference to the live stream when live
// logs are enabled.
func (p *taskPlugin) Started(ctx context.Context, _ engines.Sandbox) error {
	if p.live == nil || !p.s.liveOn || p.tc.LogPath == "" {
		return nil
	}
	url, st, remove := p.live.open(p.tc.LogPath)
	detach := p.tc.Log.Tee(st)
	p.stop = func() { detach(); remove() }
	err := p.tc.Artifacts.Publish(ctx, task.Artifact{
		Name:        p.s.live,
		Kind:        task.ArtifactReference,
		Expires:     p.tc.Definition.Expires,
		ContentType: ContentType,
		URL:         url,
	})
	return publishErr(p.s.live, err)
}

// Finished publishes the log.
func (p *taskPlugin) Finished(ctx context.Context, _ task.Resolution) error {
	p.endStream()
	return publish(ctx, p.tc, p.s)
}

// Exception publishes the log.
func (p *taskPlugin) Exception(ctx context.Context, _ task.Resolution) error {
	p.endStream()
	return publish(ctx, p.tc, p.s)
}

// Dispose ends the live stream if a stage before Finished failed.
func (p *taskPlugin) Dispose(context.Context) error {
	p.endStream()
	return nil
}

// endStream tells live readers the log is complete (it is: the worker
// wrote the footer before Finished/Exception) and unregisters the stream.
func (p *taskPlugin) endStream() {
	if p.stop != nil {
		p.stop()
		p.stop = nil
	}
}

// publish publishes the backing log and the live log link.
func publish(ctx context.Context, tc *task.Context, s settings) error {
	if !s.backingOn {
		return nil
	}
	if tc.LogPath == "" {
		return errors.New("publishing the task log: the run has no log file")
	}
	fi, err := os.Stat(tc.LogPath)
	if err != nil {
		return fmt.Errorf("publishing the task log: %w", err)
	}
	logPath := tc.LogPath
	err = tc.Artifacts.Publish(ctx, task.Artifact{
		Name:            s.backing,
		Kind:            task.ArtifactFile,
		Expires:         tc.Definition.Expires,
		ContentType:     ContentType,
		ContentEncoding: artifacts.EncodingGzip,
		Size:            fi.Size(),
		Path:            logPath,
		Open:            func() (io.ReadCloser, error) { return os.Open(logPath) },
	})
	if err != nil {
		return publishErr(s.backing, err)
	}
	if !s.liveOn {
		return nil
	}
	err = tc.Artifacts.Publish(ctx, task.Artifact{
		Name:        s.live,
		Kind:        task.ArtifactLink,
		Expires:     tc.Definition.Expires,
		ContentType: ContentType,
		LinkTo:      s.backing,
	})
	return publishErr(s.live, err)
}

func publishErr(name string, err error) error {
	if err == nil {
		return nil
	}
	var ee *task.ExceptionError
	if errors.As(err, &ee) {
		return ee
	}
	return fmt.Errorf("publishing log artifact %q: %w", name, err)
}

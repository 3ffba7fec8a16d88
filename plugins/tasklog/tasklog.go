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
// The backing log's artifact is created in the Prepare stage, before the
// task starts, when the run's artifact sink can do that in the background
// (task.ArtifactPreparer: the worker's Queue sink); publishing it at the
// end then only uploads the log.
//
// For a run that ended early the payload may be invalid: the names and flags
// are taken from it when they decode, else the defaults apply.
//
// # docker-worker payloads
//
// When the profile's dialect is docker-worker (Options.Dialect; the
// linux-docker and linux-podman profiles) the names and switches are
// docker-worker's (schemas/docker-worker/v1/payload.json; behaviour from
// docker-worker's features/local_live_log.js, bulk_log.js and
// logs_location.js):
//
//   - `log` names the live log (default "public/logs/live.log"); the backing
//     log's name is derived from it by inserting "_backing" before the
//     extension: "apple/banana.log.txt" -> "apple/banana.log_backing.txt",
//     default "public/logs/live_backing.log". (For a name without "/",
//     docker-worker's derivation would start with "/", which the Queue
//     refuses; the backing name then has no leading slash.)
//   - `features.localLiveLog` (default true) publishes the live and backing
//     logs as above; the live log is streamed while the task runs when the
//     worker config enables live logs, else it is only the link published
//     at the end, and a task that sets the feature explicitly is told so in
//     its log. False publishes neither.
//   - `features.bulkLog` (default false, as docker-worker's features.js has
//     it; the upstream schema says true) also publishes the complete log as
//     "public/logs/terminal_bulk.log.gz" (gzip content encoding).
//
// The generic-worker fields (`logs`, `features.backingLog`,
// `features.liveLog`) are not read for docker-worker payloads.
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
	"strings"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
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

// BulkLogName is the artifact docker-worker's features.bulkLog publishes.
const BulkLogName = "public/logs/terminal_bulk.log.gz"

// DockerWorkerFeatures is the part of docker-worker's `features` object
// this plugin reads.
type DockerWorkerFeatures struct {
	LocalLiveLog *bool `json:"localLiveLog,omitempty"`
	BulkLog      *bool `json:"bulkLog,omitempty"`
}

// BackingName returns docker-worker's backing log name for live log name
// live: "_backing" inserted before the extension of the last path segment
// (Node's path.parse rules: a leading dot does not start an extension).
func BackingName(live string) string {
	dir, base := "", live
	if i := strings.LastIndexByte(live, '/'); i >= 0 {
		dir, base = live[:i+1], live[i+1:]
	}
	stem, ext := base, ""
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		stem, ext = base[:i], base[i:]
	}
	return dir + stem + "_backing" + ext
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
	bulkOn            bool // docker-worker features.bulkLog
	// liveAsked: the payload set docker-worker's features.localLiveLog true.
	liveAsked bool
}

func defaults() settings {
	return settings{live: DefaultLiveName, backing: DefaultBackingName, liveOn: true, backingOn: true}
}

type plugin struct {
	live    *liveServer // nil when live logs are disabled
	dialect task.Dialect
}

var (
	_ plugins.Plugin              = (*plugin)(nil)
	_ plugins.UnstartedRunHandler = (*plugin)(nil)
)

// New returns the tasklog plugin for opts.Dialect (docker-worker's log
// fields, or else generic-worker's). With `liveLog.listenAddress` set it
// starts the live log server; an address that cannot be listened on is an
// error naming the field.
func New(opts plugins.Options) (plugins.Plugin, error) {
	var c Config
	if err := plugins.DecodeConfig(opts.Config, &c); err != nil {
		return nil, fmt.Errorf("plugins.tasklog: %w", err)
	}
	p := &plugin{dialect: opts.Dialect}
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

// NewTaskPlugin decodes `payload.logs` and the log feature flags
// (docker-worker: `payload.log` and its log features).
func (p *plugin) NewTaskPlugin(_ context.Context, tc *task.Context) (plugins.TaskPlugin, error) {
	s, err := p.decodeSettings(tc.Definition.Payload)
	if err != nil {
		return nil, err
	}
	// Claim the log names so that no task artifact can replace the log.
	liveField, backingField := "payload.logs.live", "payload.logs.backing"
	if p.dialect.IsDockerWorker() {
		liveField, backingField = "payload.log", "the backing log named after payload.log"
	}
	var clashes []string
	reserve := func(on bool, name, owner string) {
		if on {
			if err := tc.ReserveArtifactName(name, owner); err != nil {
				clashes = append(clashes, err.Error())
			}
		}
	}
	reserve(s.backingOn, s.backing, backingField+" (the task log)")
	reserve(s.backingOn && s.liveOn, s.live, liveField+" (the live log)")
	reserve(s.bulkOn, BulkLogName, "payload.features.bulkLog (the bulk log)")
	if len(clashes) > 0 {
		return nil, task.MalformedPayload(clashes...)
	}
	return &taskPlugin{tc: tc, s: s, live: p.live, dialect: p.dialect}, nil
}

// RunEndedEarly publishes the log of a run that ended before NewTaskPlugin
// was called or succeeded.
func (p *plugin) RunEndedEarly(ctx context.Context, tc *task.Context, _ task.Resolution) error {
	s, err := p.decodeSettings(tc.Definition.Payload)
	if err != nil {
		s = defaults()
	}
	return publish(ctx, tc, s)
}

func (p *plugin) decodeSettings(payload json.RawMessage) (settings, error) {
	if p.dialect.IsDockerWorker() {
		return decodeDockerWorkerSettings(payload)
	}
	return decodeSettings(payload)
}

// decodeDockerWorkerSettings reads docker-worker's `log` and log features.
func decodeDockerWorkerSettings(payload json.RawMessage) (settings, error) {
	s := defaults()
	var reasons []string
	var live string
	if err := plugins.DecodePayloadField(payload, "log", &live); err != nil {
		reasons = append(reasons, err.Error())
	}
	if live != "" {
		s.live, s.backing = live, BackingName(live)
	}
	var f DockerWorkerFeatures
	if err := plugins.DecodePayloadField(payload, "features", &f); err != nil {
		reasons = append(reasons, err.Error())
	}
	if f.LocalLiveLog != nil {
		s.liveOn, s.backingOn = *f.LocalLiveLog, *f.LocalLiveLog
		s.liveAsked = *f.LocalLiveLog
	}
	s.bulkOn = f.BulkLog != nil && *f.BulkLog
	if s.liveOn {
		if err := task.ValidateArtifactName(s.live); err != nil {
			reasons = append(reasons, fmt.Sprintf("payload.log: %v", err))
		} else if err := task.ValidateArtifactName(s.backing); err != nil {
			reasons = append(reasons, fmt.Sprintf("payload.log: the backing log name derived from it: %v", err))
		} else if s.live == BulkLogName || s.backing == BulkLogName {
			reasons = append(reasons, fmt.Sprintf("payload.log: %q is the name of the bulk log", s.live))
		}
	}
	if len(reasons) > 0 {
		return defaults(), task.MalformedPayload(reasons...)
	}
	return s, nil
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
		if err := task.ValidateArtifactName(s.backing); err != nil {
			reasons = append(reasons, fmt.Sprintf("payload.logs.backing: %v", err))
		}
		if s.liveOn {
			if err := task.ValidateArtifactName(s.live); err != nil {
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
	tc      *task.Context
	s       settings
	live    *liveServer
	dialect task.Dialect

	stop func() // ends the live stream and unregisters it
}

// Started publishes `logs.live` as a reference to the live stream when live
// logs are enabled.
func (p *taskPlugin) Started(ctx context.Context, _ engines.Sandbox) error {
	switch {
	case p.s.liveAsked && p.live == nil:
		p.tc.Logf("features.localLiveLog: this worker does not stream live logs (plugins.tasklog.liveLog is not configured); %s will link to the complete log %s once the task ends", p.s.live, p.s.backing)
	case p.dialect.IsDockerWorker() && !p.s.backingOn && !p.s.bulkOn:
		p.tc.Logf("features.localLiveLog and features.bulkLog are false: no task log artifact will be published")
	}
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

// Prepare has the run's artifact sink create the backing log's artifact
// now, in the background (task.ArtifactPreparer: the Queue's
// createArtifact), so that publishing it when the task ends only uploads
// the log.
func (p *taskPlugin) Prepare(context.Context) error {
	if p.s.backingOn && p.tc.LogPath != "" {
		task.PrepareArtifact(p.tc.Artifacts, backingArtifact(p.tc, p.s.backing, -1))
	}
	return nil
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

// publish publishes the backing log and the live log link (and
// docker-worker's bulk log).
func publish(ctx context.Context, tc *task.Context, s settings) error {
	if !s.backingOn && !s.bulkOn {
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
	if s.bulkOn {
		err := tc.Artifacts.Publish(ctx, task.Artifact{
			Name:            BulkLogName,
			Kind:            task.ArtifactFile,
			Expires:         tc.Definition.Expires,
			ContentType:     ContentType,
			ContentEncoding: task.EncodingGzip,
			Size:            fi.Size(),
			Path:            logPath,
			Open:            func() (io.ReadCloser, error) { return os.Open(logPath) },
		})
		if err != nil {
			return publishErr(BulkLogName, err)
		}
	}
	if !s.backingOn {
		return nil
	}
	err = tc.Artifacts.Publish(ctx, backingArtifact(tc, s.backing, fi.Size()))
	if err != nil {
		return publishErr(s.backing, err)
	}
	if !s.liveOn {
		return nil
	}
	// The link comes after its target's content, so a reader who follows
	// the live log to it when its stream ends finds the whole log.
	err = tc.Artifacts.Publish(ctx, task.Artifact{
		Name:        s.live,
		Kind:        task.ArtifactLink,
		Expires:     tc.Definition.Expires,
		ContentType: ContentType,
		LinkTo:      s.backing,
	})
	return publishErr(s.live, err)
}

// backingArtifact is the backing log, the file at tc.LogPath, as artifact
// name; size is its length in bytes, -1 when not known yet.
func backingArtifact(tc *task.Context, name string, size int64) task.Artifact {
	logPath := tc.LogPath
	return task.Artifact{
		Name:            name,
		Kind:            task.ArtifactFile,
		Expires:         tc.Definition.Expires,
		ContentType:     ContentType,
		ContentEncoding: task.EncodingGzip,
		Size:            size,
		Path:            logPath,
		Open:            func() (io.ReadCloser, error) { return os.Open(logPath) },
	}
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

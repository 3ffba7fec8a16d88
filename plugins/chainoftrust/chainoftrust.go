// Package chainoftrust is the Chain of Trust plugin (payload
// `features.chainOfTrust`, in generic-worker's and docker-worker's payload
// formats): at the end of a run it publishes, in this order,
//
//	public/logs/certified.log       a frozen copy of the task log
//	public/chain-of-trust.json      the Chain of Trust artifact (v1)
//	public/chain-of-trust.json.sig  the detached ed25519 signature of
//	                                exactly the bytes of the .json
//
// as generic-worker and docker-worker do and as scriptworker verifies them
// (the facts are in ../shared/taskcluster/references/chain-of-trust/ and
// scriptworker's cot_v1_schema.json). The .json holds chainOfTrustVersion
// 1, `artifacts` (the sha256 of every file artifact the run published
// before it, certified.log included; the live logs are published after it
// and so are not listed), `task` (the task definition), taskId, runId,
// workerGroup, workerId and `environment`: the worker's location from the
// config (publicIpAddress, privateIpAddress, instanceId, instanceType,
// region, availabilityZone) and, for container tasks, imageHash (the
// image's ID, "sha256:...") and imageArtifactHash ("sha256:..." of the
// artifact a task image was loaded from). The operator's additional data
// file and, for generic-worker payloads, the task's own
// chain-of-trust-additional-data.json (in the task directory, as upstream)
// are merged under it: on a clash the worker's values win.
//
// The signing key is the file at plugins.chainoftrust.ed25519SigningKeyLocation
// (see internal/ed25519key; made with `<binary> new-ed25519-keypair --file
// PATH`). It must not be readable by group or others; native tasks that run
// as the worker's own user can still read it: only a multiuser engine keeps
// it from the task. Without a key, tasks asking for the feature are
// malformed-payload.
package chainoftrust

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/internal/ed25519key"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// Artifact names, as upstream publishes them.
const (
	CertifiedLogName = "public/logs/certified.log"
	CertName         = "public/chain-of-trust.json"
	SignatureName    = "public/chain-of-trust.json.sig"
	// TaskAdditionalDataFile is the file in the task directory whose JSON
	// object a generic-worker task may have merged into its certificate.
	TaskAdditionalDataFile = "chain-of-trust-additional-data.json"
	// maxAdditionalData bounds the task's additional data file, in bytes.
	maxAdditionalData = 1 << 20
)

// Config is the plugin's config section (`plugins.chainoftrust`).
type Config struct {
	// Ed25519SigningKeyLocation is the path of the private key file
	// (generic-worker's ed25519SigningKeyLocation).
	Ed25519SigningKeyLocation string `json:"ed25519SigningKeyLocation"`
	// AdditionalDataFile is a JSON object file merged into every
	// certificate (the worker's values win on a clash).
	AdditionalDataFile string `json:"additionalDataFile"`
	// Environment is the worker's location, copied into each certificate's
	// `environment`.
	Environment Environment `json:"environment"`
}

// Environment is the worker's location as Chain of Trust records it; empty
// fields are left out.
type Environment struct {
	PublicIPAddress  string `json:"publicIpAddress,omitempty"`
	PrivateIPAddress string `json:"privateIpAddress,omitempty"`
	InstanceID       string `json:"instanceId,omitempty"`
	InstanceType     string `json:"instanceType,omitempty"`
	Region           string `json:"region,omitempty"`
	AvailabilityZone string `json:"availabilityZone,omitempty"`
}

// Plugin is the chainoftrust plugin.
type Plugin struct {
	key        ed25519.PrivateKey // nil: no key configured
	additional map[string]any     // the operator's additional data, or nil
	env        Environment
	dialect    task.Dialect
	worker     task.WorkerInfo
}

var _ plugins.Plugin = (*Plugin)(nil)

// New reads the config and the signing key. A configured key or additional
// data file that cannot be used is an error naming the config field.
func New(opts plugins.Options) (plugins.Plugin, error) {
	var cfg Config
	if err := plugins.DecodeConfig(opts.Config, &cfg); err != nil {
		return nil, fmt.Errorf("plugins.chainoftrust: %w", err)
	}
	p := &Plugin{env: cfg.Environment, dialect: opts.Dialect, worker: opts.Worker.WorkerInfo}
	if cfg.Ed25519SigningKeyLocation != "" {
		k, err := ed25519key.Read(cfg.Ed25519SigningKeyLocation)
		if err != nil {
			return nil, fmt.Errorf("plugins.chainoftrust.ed25519SigningKeyLocation: %w", err)
		}
		p.key = k
	} else if opts.Logger != nil {
		opts.Logger.Info("chain of trust: no signing key configured (plugins.chainoftrust.ed25519SigningKeyLocation); tasks with features.chainOfTrust will be refused")
	}
	if cfg.AdditionalDataFile != "" {
		data, err := os.ReadFile(cfg.AdditionalDataFile)
		if err != nil {
			return nil, fmt.Errorf("plugins.chainoftrust.additionalDataFile: %w", err)
		}
		if err := json.Unmarshal(data, &p.additional); err != nil || p.additional == nil {
			return nil, fmt.Errorf("plugins.chainoftrust.additionalDataFile: %s: not a JSON object: %v", cfg.AdditionalDataFile, err)
		}
	}
	return p, nil
}

// PublicKey returns the public half of the signing key, or nil.
func (p *Plugin) PublicKey() ed25519.PublicKey {
	if p.key == nil {
		return nil
	}
	return p.key.Public().(ed25519.PublicKey)
}

// Close does nothing.
func (p *Plugin) Close() error { return nil }

// NewTaskPlugin reads payload.features.chainOfTrust; when it is true it
// reserves the three artifact names and starts recording the sha256 of
// every file artifact the run publishes.
func (p *Plugin) NewTaskPlugin(_ context.Context, tc *task.Context) (plugins.TaskPlugin, error) {
	var features struct {
		ChainOfTrust bool `json:"chainOfTrust"`
	}
	if err := plugins.DecodePayloadField(tc.Definition.Payload, "features", &features); err != nil {
		return nil, err
	}
	if !features.ChainOfTrust {
		return plugins.Base{}, nil
	}
	if p.key == nil {
		return nil, task.MalformedPayloadf("payload.features.chainOfTrust: this worker has no Chain of Trust signing key (its operator sets plugins.chainoftrust.ed25519SigningKeyLocation, made with `new-ed25519-keypair`)")
	}
	for _, name := range []string{CertifiedLogName, CertName, SignatureName} {
		if err := tc.ReserveArtifactName(name, "payload.features.chainOfTrust"); err != nil {
			return nil, task.MalformedPayload(err.Error())
		}
	}
	rec := &recorder{hashes: map[string]string{}}
	tc.WrapArtifacts(func(inner task.ArtifactSink) task.ArtifactSink {
		rec.inner = inner
		return rec
	})
	return &taskPlugin{p: p, tc: tc, rec: rec}, nil
}

// taskPlugin is one run that asked for Chain of Trust.
type taskPlugin struct {
	plugins.Base
	p   *Plugin
	tc  *task.Context
	rec *recorder

	image      *engines.ImageInfo
	additional map[string]any // the task's additional data, or nil
}

// Started records the task's image (engines with the image-info ability).
func (t *taskPlugin) Started(ctx context.Context, s engines.Sandbox) error {
	is, ok := s.(engines.ImageSandbox)
	if !ok {
		return nil
	}
	info, err := is.Image(ctx)
	if err != nil {
		return task.ResourceUnavailable(fmt.Errorf("chain of trust: describing the task's image: %w", err))
	}
	t.image = &info
	return nil
}

// Stopped reads the task's chain-of-trust-additional-data.json
// (generic-worker payloads). A file that is not a JSON object fails the
// task.
func (t *taskPlugin) Stopped(ctx context.Context, r engines.ResultSet) (bool, error) {
	if t.p.dialect.IsDockerWorker() {
		return true, nil
	}
	f, err := r.ExtractFile(ctx, TaskAdditionalDataFile)
	if errors.Is(err, engines.ErrNotFound) {
		return true, nil
	}
	if err == nil {
		var data []byte
		data, err = readLimited(f, maxAdditionalData)
		if err == nil {
			err = json.Unmarshal(data, &t.additional)
			if err == nil && t.additional == nil {
				err = errors.New("null is not a JSON object")
			}
		}
	}
	if err != nil {
		msg := fmt.Sprintf("chain of trust: %s: %v", TaskAdditionalDataFile, err)
		t.tc.Logf("%s", msg)
		t.tc.Explain(msg)
		return false, nil
	}
	return true, nil
}

func readLimited(f engines.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// Finished publishes certified.log, chain-of-trust.json and its signature,
// in that order, for completed and failed runs.
func (t *taskPlugin) Finished(ctx context.Context, res task.Resolution) error {
	if res.State == task.Exception {
		return nil
	}
	if err := t.publishCertifiedLog(ctx); err != nil {
		return err
	}
	cert, err := t.certificate()
	if err != nil {
		return task.InternalError(fmt.Errorf("chain of trust: %w", err))
	}
	if err := t.publishBytes(ctx, CertName, "text/plain; charset=utf-8", "gzip", cert); err != nil {
		return err
	}
	sig := ed25519.Sign(t.p.key, cert)
	if err := t.publishBytes(ctx, SignatureName, "application/octet-stream", "identity", sig); err != nil {
		return err
	}
	t.tc.Logf("chain of trust: published %s (%d artifacts certified) and its signature", CertName, t.rec.count())
	return nil
}

// publishCertifiedLog copies the task log as it is now into a file of the
// worker's (next to the log, not in the task directory) and publishes it.
func (t *taskPlugin) publishCertifiedLog(ctx context.Context) error {
	src, err := os.Open(t.tc.LogPath)
	if err != nil {
		return task.InternalError(fmt.Errorf("chain of trust: opening the task log: %w", err))
	}
	defer src.Close()
	dir := ""
	if t.tc.LogPath != "" {
		dir = dirOf(t.tc.LogPath)
	}
	f, err := os.CreateTemp(dir, "certified-*.log")
	if err != nil {
		return task.InternalError(fmt.Errorf("chain of trust: copying the task log: %w", err))
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return task.InternalError(fmt.Errorf("chain of trust: copying the task log: %w", err))
	}
	path := f.Name()
	return t.tc.Artifacts.Publish(ctx, task.Artifact{
		Name: CertifiedLogName, Kind: task.ArtifactFile, Expires: t.tc.Definition.Expires,
		ContentType: "text/plain; charset=utf-8", ContentEncoding: "gzip", Size: n, Path: path,
		Open: func() (io.ReadCloser, error) { return os.Open(path) },
	})
}

func (t *taskPlugin) publishBytes(ctx context.Context, name, contentType, encoding string, data []byte) error {
	return t.tc.Artifacts.Publish(ctx, task.Artifact{
		Name: name, Kind: task.ArtifactFile, Expires: t.tc.Definition.Expires,
		ContentType: contentType, ContentEncoding: encoding, Size: int64(len(data)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
	})
}

package chainoftrust

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// ArtifactHash is one entry of a certificate's `artifacts`.
type ArtifactHash struct {
	SHA256 string `json:"sha256"`
}

// Certificate is the Chain of Trust artifact, version 1 (the fields
// scriptworker's cot_v1_schema.json requires), before additional data is
// merged in.
type Certificate struct {
	ChainOfTrustVersion int                     `json:"chainOfTrustVersion"`
	Artifacts           map[string]ArtifactHash `json:"artifacts"`
	Task                map[string]any          `json:"task"`
	TaskID              string                  `json:"taskId"`
	RunID               int                     `json:"runId"`
	WorkerGroup         string                  `json:"workerGroup"`
	WorkerID            string                  `json:"workerId"`
	Environment         map[string]any          `json:"environment"`
}

// certificate returns the bytes of chain-of-trust.json: the certificate
// merged over the additional data (operator's, then task's), indented with
// two spaces as upstream writes it (keys sorted).
func (t *taskPlugin) certificate() ([]byte, error) {
	taskDef, err := taskObject(t)
	if err != nil {
		return nil, err
	}
	env := map[string]any{}
	if err := remarshal(t.p.env, &env); err != nil {
		return nil, err
	}
	if t.image != nil {
		env["imageHash"] = t.image.Hash
		if t.image.ArtifactHash != "" {
			env["imageArtifactHash"] = t.image.ArtifactHash
		}
	}
	c := Certificate{
		ChainOfTrustVersion: 1,
		Artifacts:           t.rec.snapshot(),
		Task:                taskDef,
		TaskID:              t.tc.TaskID,
		RunID:               t.tc.RunID,
		WorkerGroup:         t.tc.Worker.WorkerGroup,
		WorkerID:            t.tc.Worker.WorkerID,
		Environment:         env,
	}
	var doc map[string]any
	if err := remarshal(c, &doc); err != nil {
		return nil, err
	}
	merged := map[string]any{}
	merged = merge(merged, t.p.additional)
	merged = merge(merged, t.additional)
	merged = merge(merged, doc)
	return json.MarshalIndent(merged, "", "  ")
}

// taskObject is the task definition as the Queue serves it, with the
// fields scriptworker requires present even when empty (dependencies,
// scopes) and provisionerId/workerType derived from taskQueueId when the
// definition has only the latter.
func taskObject(t *taskPlugin) (map[string]any, error) {
	var def map[string]any
	if err := remarshal(t.tc.Definition, &def); err != nil {
		return nil, err
	}
	for _, k := range []string{"dependencies", "scopes", "routes"} {
		if _, ok := def[k]; !ok {
			def[k] = []any{}
		}
	}
	if q, ok := def["taskQueueId"].(string); ok {
		if prov, wt, ok := strings.Cut(q, "/"); ok {
			if _, has := def["provisionerId"]; !has {
				def["provisionerId"] = prov
			}
			if _, has := def["workerType"]; !has {
				def["workerType"] = wt
			}
		}
	}
	return def, nil
}

func remarshal(in, out any) error {
	data, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding certificate: %w", err)
	}
	return json.Unmarshal(data, out)
}

// merge deep-merges src into dst (objects merge key by key; any other
// value of src replaces dst's) and returns dst.
func merge(dst, src map[string]any) map[string]any {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				dst[k] = merge(dv, sv)
				continue
			}
			dst[k] = merge(map[string]any{}, sv)
			continue
		}
		dst[k] = v
	}
	return dst
}

func dirOf(path string) string { return filepath.Dir(path) }

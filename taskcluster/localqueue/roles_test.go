package localqueue

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/workergen/workergen/taskcluster"
)

// TestRoleExpansion checks expandScopes against the examples of
// Taskcluster's "Roles and Role Expansion" reference: recursive roles, a
// role ending in `*`, an assume: scope ending in `*`, and `<..>`
// parameters (cut at a `*` in the parameter).
func TestRoleExpansion(t *testing.T) {
	h := newHarness(t)
	for _, r := range []struct {
		id     string
		scopes []string
	}{
		{"group:admins", []string{"admin-scope-1", "admin-scope-2", "assume:group:devs"}},
		{"group:devs", []string{"dev-scope"}},
		{"repo:github.com/taskcluster/taskcluster-auth", []string{"secrets:get:auth-tests"}},
		{"hook-id:taskcluster/*", []string{"queue:create-task:aws-provisioner/taskcluster-hooks"}},
		{"project-admin:*", []string{"auth:create-role:project-<..>/*", "secrets:get:project/<..>/*"}},
	} {
		resp := h.admin.call("PUT", "auth", "/roles/"+escapeName(r.id), map[string]any{"description": "d", "scopes": r.scopes}, "", "", http.StatusOK)
		var got struct {
			RoleID         string   `json:"roleId"`
			ExpandedScopes []string `json:"expandedScopes"`
		}
		resp.decode(t, &got)
		if got.RoleID != r.id || !slices.Contains(got.ExpandedScopes, "assume:"+r.id) {
			t.Errorf("createRole %s: %s", r.id, resp.body)
		}
	}
	for _, c := range []struct {
		in, want []string
	}{
		{[]string{"assume:group:admins", "my-scope"}, []string{"admin-scope-1", "admin-scope-2", "assume:group:admins", "assume:group:devs", "dev-scope", "my-scope"}},
		{[]string{"assume:repo:github.com/taskcluster/*"}, []string{"assume:repo:github.com/taskcluster/*", "secrets:get:auth-tests"}},
		{[]string{"assume:hook-id:taskcluster/nightly-diagnostics"}, []string{"assume:hook-id:taskcluster/nightly-diagnostics", "queue:create-task:aws-provisioner/taskcluster-hooks"}},
		{[]string{"assume:project-admin:zap"}, []string{"assume:project-admin:zap", "auth:create-role:project-zap/*", "secrets:get:project/zap/*"}},
		{[]string{"assume:project-admin:ops*"}, []string{"assume:project-admin:ops*", "auth:create-role:project-ops*", "secrets:get:project/ops*"}},
		{[]string{"other", "other"}, []string{"other"}},
	} {
		resp := h.admin.call("POST", "auth", "/scopes/expand", map[string]any{"scopes": c.in}, "", "", http.StatusOK)
		var got struct{ Scopes []string }
		resp.decode(t, &got)
		if !slices.Equal(got.Scopes, c.want) {
			t.Errorf("expandScopes(%q) = %q, want %q", c.in, got.Scopes, c.want)
		}
	}

	// getRole and deleteRole; a caller without the scopes is refused.
	h.admin.call("GET", "auth", "/roles/group:devs", nil, "", "", http.StatusOK)
	h.worker.call("POST", "auth", "/scopes/expand", map[string]any{"scopes": []string{}}, "", "", http.StatusForbidden)
	h.worker.call("PUT", "auth", "/roles/x", map[string]any{"description": "d", "scopes": []string{}}, "", "", http.StatusForbidden)
	h.admin.call("PUT", "auth", "/roles/group:devs", map[string]any{"description": "d", "scopes": []string{"other"}}, "", "", http.StatusConflict)
	h.admin.call("PUT", "auth", "/roles/plain", map[string]any{"description": "d", "scopes": []string{"a:<..>"}}, "", "", http.StatusBadRequest)
	h.admin.call("DELETE", "auth", "/roles/group:devs", nil, "", "", http.StatusNoContent)
	h.admin.call("GET", "auth", "/roles/group:devs", nil, "", "", http.StatusNotFound)

	// Endless expansion is refused when the role is created.
	if err := h.s.CreateRole("loop:*", "d", []string{"assume:loop:x<..>"}); !errors.Is(err, ErrInput) {
		t.Errorf("cyclic parameterized role: %v, want ErrInput", err)
	}
}

// TestCallerRolesExpanded: as in Taskcluster, a client's scopes are
// expanded with the roles before a route's scopes are checked, and the
// project's client expands scopes with auth.expandScopes.
func TestCallerRolesExpanded(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Clients = append(o.Clients, Client{ClientID: "roled", AccessToken: "roled-token", Scopes: []string{"assume:worker-pool:" + testQueue}})
	})
	if err := h.s.CreateRole("worker-pool:*", "workers of a pool", []string{"queue:claim-work:<..>", "queue:worker-id:*", "auth:expand-scopes"}); err != nil {
		t.Fatal(err)
	}
	c := h.client("roled", "roled-token", "")
	h.createTask(nil)
	r := c.call("POST", "queue", "/claim-work/"+testQueue, map[string]any{"tasks": 1, "workerGroup": testWorkerGroup, "workerId": testWorkerID}, "", "", http.StatusOK)
	var claim struct{ Tasks []any }
	r.decode(t, &claim)
	if len(claim.Tasks) != 1 {
		t.Errorf("claimWork through a role: %s", r.body)
	}

	auth := h.tcClient(taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: "roled", AccessToken: "roled-token"})).Auth()
	got, err := auth.ExpandScopes(context.Background(), []string{"assume:worker-pool:a/b"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"assume:worker-pool:a/b", "auth:expand-scopes", "queue:claim-work:a/b", "queue:worker-id:*"}
	if !slices.Equal(got, want) {
		t.Errorf("Auth.ExpandScopes = %q, want %q", got, want)
	}
}

package localqueue

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/workergen/workergen/taskcluster/tcwire"
)

// Roles as the Auth service defines them (references/auth/v1/api.json,
// category "Roles"; expansion rules from Taskcluster's "Roles and Role
// Expansion" reference): a role roleId gives whoever has scope
// `assume:<roleId>` the role's scopes, recursively. A roleId ending in `*`
// applies to every `assume:` scope it prefixes, and `<..>` in its scopes is
// replaced by the part of the assumed roleId that the `*` matched (cut at
// the first `*` of that part, with nothing after `<..>` kept). An `assume:`
// scope ending in `*` (or a scope such as `*` or `assu*` that satisfies
// every `assume:` scope) gets the scopes of every role it prefixes.
//
// The server expands the scopes of every caller with its roles before
// checking a route's scopes, as Taskcluster does, and serves createRole,
// role, deleteRole and expandScopes. Roles live in memory: a Server started
// again on the same Dir has none.

// maxExpandedScopes bounds an expansion; roles with a parameter can
// otherwise grow without end (Taskcluster refuses such roles at creation).
const maxExpandedScopes = 10000

// role is one stored role (get-role-response.json without expandedScopes).
type role struct {
	RoleID       string   `json:"roleId"`
	Scopes       []string `json:"scopes"`
	Description  string   `json:"description"`
	Created      string   `json:"created"`
	LastModified string   `json:"lastModified"`
}

// roleState holds the server's roles; safe for concurrent use.
type roleState struct {
	mu    sync.RWMutex
	roles map[string]role
}

// expand returns scopes with every scope implied by the roles added,
// normalized as the Auth service answers expandScopes: sorted, without
// duplicates and without scopes another scope of the set satisfies.
func (r *roleState) expand(scopes []string) ([]string, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.roles) == 0 {
		return normalizeScopes(scopes), nil
	}
	seen := map[string]bool{}
	queue := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if !seen[s] {
			seen[s] = true
			queue = append(queue, s)
		}
	}
	for i := 0; i < len(queue); i++ {
		for _, s := range r.implied(queue[i]) {
			if seen[s] {
				continue
			}
			if len(seen) >= maxExpandedScopes {
				return nil, fmt.Errorf("role expansion exceeds %d scopes (cyclic roles?)", maxExpandedScopes)
			}
			seen[s] = true
			queue = append(queue, s)
		}
	}
	return normalizeScopes(queue), nil
}

// implied returns the scopes the roles give to a holder of scope s
// (one step, not recursive).
func (r *roleState) implied(s string) []string {
	const assume = "assume:"
	var out []string
	if p, ok := strings.CutSuffix(s, "*"); ok && len(p) < len(assume) && strings.HasPrefix(assume, p) {
		for _, rl := range r.roles { // s satisfies every assume: scope
			out = append(out, substitute(rl, "*")...)
		}
		return out
	}
	id, ok := strings.CutPrefix(s, assume)
	if !ok {
		return nil
	}
	for _, rl := range r.roles {
		if q, pattern := strings.CutSuffix(rl.RoleID, "*"); pattern && strings.HasPrefix(id, q) {
			out = append(out, substitute(rl, id[len(q):])...) // role expansion
			continue
		}
		if rl.RoleID == id {
			out = append(out, rl.Scopes...)
			continue
		}
		if p, star := strings.CutSuffix(id, "*"); star && strings.HasPrefix(rl.RoleID, p) {
			param := ""
			if strings.HasSuffix(rl.RoleID, "*") {
				param = "*"
			}
			out = append(out, substitute(rl, param)...) // scope expansion
		}
	}
	return out
}

// substitute returns rl's scopes with `<..>` replaced by param; a param
// holding `*` ends the scope at that `*`.
func substitute(rl role, param string) []string {
	out := make([]string, 0, len(rl.Scopes))
	for _, s := range rl.Scopes {
		i := strings.Index(s, "<..>")
		switch {
		case i < 0:
		case strings.Contains(param, "*"):
			s = s[:i] + param[:strings.Index(param, "*")+1]
		default:
			s = s[:i] + param + s[i+len("<..>"):]
		}
		out = append(out, s)
	}
	return out
}

// normalizeScopes sorts scopes and drops duplicates and scopes satisfied by
// another scope of the set.
func normalizeScopes(scopes []string) []string {
	var out []string
	for i, s := range scopes {
		covered := false
		for j, t := range scopes {
			if i != j && t != s && strings.HasSuffix(t, "*") && tcwire.ScopeSatisfied([]string{t}, s) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// checkRoleScopes applies the Auth service's limits on a role's scopes:
// `<..>` only in roles ending in `*`, at most once per scope, never right
// after a `*`, and no scope ending in `**`.
func checkRoleScopes(roleID string, scopes []string) error {
	for i, s := range scopes {
		n := strings.Count(s, "<..>")
		switch {
		case n > 0 && !strings.HasSuffix(roleID, "*"):
			return errInput("scopes[%d] %q: <..> is only allowed in roles whose roleId ends with *", i, s)
		case n > 1:
			return errInput("scopes[%d] %q: <..> may appear only once", i, s)
		case n == 1 && strings.Contains(s[:strings.Index(s, "<..>")], "*"):
			return errInput("scopes[%d] %q: a * before <..> is ambiguous", i, s)
		case strings.HasSuffix(s, "**"):
			return errInput("scopes[%d] %q: scopes must not end with **", i, s)
		}
	}
	return nil
}

// authRoutes are the Auth service's role endpoints (scopes as in
// references/auth/v1/api.json).
func (s *Server) authRoutes() []*route {
	auth := func(name, method, path string, scopes any, h func(c *call) error) *route {
		return &route{service: "auth", name: name, method: method, path: path, scopes: scopes, handle: h}
	}
	return []*route{
		auth("ping", "get", "/ping", nil, handlePing),
		auth("createRole", "put", "/roles/<roleId>", allOf{"auth:create-role:<roleId>", each{For: "scope", In: "scopes", Each: "<scope>"}}, handleCreateRole),
		auth("role", "get", "/roles/<roleId>", "auth:get-role:<roleId>", handleRole),
		auth("deleteRole", "delete", "/roles/<roleId>", "auth:delete-role:<roleId>", handleDeleteRole),
		auth("expandScopes", "post", "/scopes/expand", "auth:expand-scopes", handleExpandScopes),
	}
}

// CreateRole creates (or, unchanged, confirms) a role, as the Auth API's
// createRole does without the caller's scope check: tests use it to set up
// a deployment's roles. Errors wrap ErrInput (limits of checkRoleScopes,
// a role making expansion endless) or ErrConflict (the role exists with
// other scopes).
func (s *Server) CreateRole(roleID, description string, scopes []string) error {
	_, err := s.createRole(roleID, description, scopes)
	return err
}

func (s *Server) createRole(roleID, description string, scopes []string) (role, error) {
	if roleID == "" {
		return role{}, errInput("roleId must not be empty")
	}
	if err := checkRoleScopes(roleID, scopes); err != nil {
		return role{}, err
	}
	rs := &s.roles
	rs.mu.Lock()
	if old, ok := rs.roles[roleID]; ok {
		rs.mu.Unlock()
		if old.Description == description && slices.Equal(old.Scopes, scopes) {
			return old, nil
		}
		return role{}, errConflict("role %q already exists with other scopes or description; use updateRole", roleID)
	}
	now := s.now().Format(time.RFC3339Nano)
	rl := role{RoleID: roleID, Scopes: append([]string{}, scopes...), Description: description, Created: now, LastModified: now}
	if rs.roles == nil {
		rs.roles = map[string]role{}
	}
	rs.roles[roleID] = rl
	rs.mu.Unlock()
	if _, err := rs.expand([]string{"assume:" + roleID}); err != nil {
		rs.mu.Lock()
		delete(rs.roles, roleID)
		rs.mu.Unlock()
		return role{}, errInput("role %q: %v", roleID, err)
	}
	return rl, nil
}

// roleResponse is get-role-response.json.
func (s *Server) roleResponse(rl role) (map[string]any, error) {
	expanded, err := s.roles.expand([]string{"assume:" + rl.RoleID})
	if err != nil {
		return nil, err
	}
	return map[string]any{"roleId": rl.RoleID, "scopes": rl.Scopes, "description": rl.Description,
		"created": rl.Created, "lastModified": rl.LastModified, "expandedScopes": expanded}, nil
}

func handleCreateRole(c *call) error {
	var req struct {
		Description string   `json:"description"`
		Scopes      []string `json:"scopes"`
	}
	if err := c.decode(&req); err != nil {
		return err
	}
	if req.Scopes == nil {
		return errInput("request body: scopes is required")
	}
	if err := c.authorize(scopeParams{"scopes": req.Scopes}); err != nil {
		return err
	}
	rl, err := c.s.createRole(c.param("roleId"), req.Description, req.Scopes)
	if err != nil {
		return err
	}
	resp, err := c.s.roleResponse(rl)
	if err != nil {
		return err
	}
	return c.reply(resp)
}

func handleRole(c *call) error {
	if err := c.authorize(nil); err != nil {
		return err
	}
	c.s.roles.mu.RLock()
	rl, ok := c.s.roles.roles[c.param("roleId")]
	c.s.roles.mu.RUnlock()
	if !ok {
		return errNotFound("role %q not found", c.param("roleId"))
	}
	resp, err := c.s.roleResponse(rl)
	if err != nil {
		return err
	}
	return c.reply(resp)
}

func handleDeleteRole(c *call) error {
	if err := c.authorize(nil); err != nil {
		return err
	}
	c.s.roles.mu.Lock()
	delete(c.s.roles.roles, c.param("roleId"))
	c.s.roles.mu.Unlock()
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func handleExpandScopes(c *call) error {
	if err := c.authorize(nil); err != nil {
		return err
	}
	var req struct {
		Scopes []string `json:"scopes"`
	}
	if err := c.decode(&req); err != nil {
		return err
	}
	if req.Scopes == nil {
		return errInput("request body: scopes is required")
	}
	expanded, err := c.s.roles.expand(req.Scopes)
	if err != nil {
		return errInput("%v", err)
	}
	return c.reply(map[string][]string{"scopes": expanded})
}

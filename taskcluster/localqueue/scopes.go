package localqueue

import (
	"fmt"
	"strings"

	"github.com/workergen/workergen/taskcluster/tcwire"
)

// A scope expression in the form of the API references' `scopes` field
// (references/queue/v1/api.json): a string template such as
// "queue:claim-work:<taskQueueId>", {"AllOf": [...]}, {"AnyOf": [...]} or
// {"for": "x", "in": "xs", "each": "template:<x>"}. Templates name request
// parameters in angle brackets.
type (
	allOf []any
	anyOf []any
	each  struct{ For, In, Each string }
	// literal is a scope already filled in (an `each` element): it is not
	// a template, so `<..>` in a role's scopes stays as it is.
	literal string
)

// MarshalJSON renders expressions in the references' syntax.
func (a allOf) MarshalJSON() ([]byte, error) { return marshalExpr("AllOf", []any(a)) }

// MarshalJSON renders expressions in the references' syntax.
func (a anyOf) MarshalJSON() ([]byte, error) { return marshalExpr("AnyOf", []any(a)) }

// MarshalJSON renders expressions in the references' syntax.
func (e each) MarshalJSON() ([]byte, error) {
	return jsonMarshal(map[string]string{"for": e.For, "in": e.In, "each": e.Each})
}

func marshalExpr(key string, items []any) ([]byte, error) {
	if items == nil {
		items = []any{}
	}
	return jsonMarshal(map[string][]any{key: items})
}

// scopeParams are the values templates refer to: strings, or string lists
// for `each`.
type scopeParams map[string]any

// evalScopes decides whether have satisfies expr with params. An `each`
// inside AllOf adds one required scope per list element; inside AnyOf one
// alternative per element; on its own it requires them all. A template
// naming a missing parameter is an error (a bug in the route table).
func evalScopes(expr any, params scopeParams, have []string) (bool, error) {
	switch e := expr.(type) {
	case nil:
		return true, nil
	case string:
		s, err := fillTemplate(e, params)
		if err != nil {
			return false, err
		}
		return tcwire.ScopeSatisfied(have, s), nil
	case literal:
		return tcwire.ScopeSatisfied(have, string(e)), nil
	case each:
		return evalScopes(allOf{e}, params, have)
	case allOf:
		items, err := spliceEach(e, params)
		if err != nil {
			return false, err
		}
		for _, sub := range items {
			ok, err := evalScopes(sub, params, have)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case anyOf:
		items, err := spliceEach(e, params)
		if err != nil {
			return false, err
		}
		for _, sub := range items {
			ok, err := evalScopes(sub, params, have)
			if err != nil {
				return false, err
			}
			if ok {
				return true, nil
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("scope expression: unexpected %T", expr)
}

// spliceEach replaces each `each` in items by its filled-in scopes.
func spliceEach(items []any, params scopeParams) ([]any, error) {
	out := make([]any, 0, len(items))
	for _, it := range items {
		e, ok := it.(each)
		if !ok {
			out = append(out, it)
			continue
		}
		list, ok := params[e.In].([]string)
		if !ok {
			return nil, fmt.Errorf("scope expression: parameter %q is not a list", e.In)
		}
		for _, v := range list {
			p := make(scopeParams, len(params)+1)
			for k, pv := range params {
				p[k] = pv
			}
			p[e.For] = v
			s, err := fillTemplate(e.Each, p)
			if err != nil {
				return nil, err
			}
			out = append(out, literal(s))
		}
	}
	return out, nil
}

// requiredScopes renders expr with params as text for error messages.
func requiredScopes(expr any, params scopeParams) string {
	join := func(kind string, items []any) string {
		items, err := spliceEach(items, params)
		if err != nil {
			return kind + " [?]"
		}
		parts := make([]string, 0, len(items))
		for _, sub := range items {
			parts = append(parts, requiredScopes(sub, params))
		}
		return kind + " [" + strings.Join(parts, ", ") + "]"
	}
	switch e := expr.(type) {
	case literal:
		return string(e)
	case string:
		s, err := fillTemplate(e, params)
		if err != nil {
			return e
		}
		return s
	case each:
		return join("all of", []any{e})
	case allOf:
		return join("all of", e)
	case anyOf:
		return join("any of", e)
	}
	return ""
}

func fillTemplate(t string, params scopeParams) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(t, '<')
		if i < 0 {
			b.WriteString(t)
			return b.String(), nil
		}
		j := strings.IndexByte(t[i:], '>')
		if j < 0 {
			b.WriteString(t)
			return b.String(), nil
		}
		name := t[i+1 : i+j]
		v, ok := params[name].(string)
		if !ok {
			return "", fmt.Errorf("scope template %q: parameter %q missing", t, name)
		}
		b.WriteString(t[:i])
		b.WriteString(v)
		t = t[i+j+1:]
	}
}

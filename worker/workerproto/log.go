package workerproto

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// LogHandler returns a slog.Handler that sends each record as a `log`
// message while the run has CapLog, and hands it to fallback otherwise
// (before the handshake, or when the runner does not take logs). The
// message body holds "textPayload" (the record's message), "level"
// (slog's level name, e.g. "INFO"), "time" (RFC 3339 with nanoseconds, when
// the record has one) and every attribute as a body field; groups become
// nested objects. Errors are written as their text, durations as Go
// duration strings, values JSON cannot encode with fmt's %v. A record that cannot be sent goes to fallback. Enabled is
// fallback's: records fallback would drop are not sent either.
func (c *Conn) LogHandler(fallback slog.Handler) slog.Handler {
	return &logHandler{c: c, fallback: fallback}
}

type logHandler struct {
	c        *Conn
	fallback slog.Handler
	// attrs are the handler's WithAttrs attributes, each under the groups
	// open when it was added (groups[:len]).
	attrs  []groupedAttr
	groups []string
}

type groupedAttr struct {
	groups []string
	attr   slog.Attr
}

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.fallback.Enabled(ctx, l)
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.fallback = h.fallback.WithAttrs(as)
	n.attrs = append([]groupedAttr(nil), h.attrs...)
	for _, a := range as {
		n.attrs = append(n.attrs, groupedAttr{groups: h.groups, attr: a})
	}
	return &n
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.fallback = h.fallback.WithGroup(name)
	n.groups = append(append([]string(nil), h.groups...), name)
	return &n
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.c.Capable(CapLog) {
		return h.fallback.Handle(ctx, r)
	}
	body := map[string]any{"textPayload": r.Message, "level": r.Level.String()}
	if !r.Time.IsZero() {
		body["time"] = r.Time.Format(time.RFC3339Nano)
	}
	for _, ga := range h.attrs {
		addAttr(groupMap(body, ga.groups), ga.attr)
	}
	target := groupMap(body, h.groups)
	r.Attrs(func(a slog.Attr) bool {
		addAttr(target, a)
		return true
	})
	pruneEmpty(body, h.groups)
	if err := h.c.Send(Log{Body: body}); err != nil {
		return h.fallback.Handle(ctx, r)
	}
	return nil
}

// groupMap returns the object at path in m, creating it.
func groupMap(m map[string]any, path []string) map[string]any {
	for _, g := range path {
		sub, ok := m[g].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[g] = sub
		}
		m = sub
	}
	return m
}

// pruneEmpty removes the group objects along path that stayed empty, as
// slog's handlers omit empty groups.
func pruneEmpty(m map[string]any, path []string) {
	if len(path) == 0 {
		return
	}
	sub, ok := m[path[0]].(map[string]any)
	if !ok {
		return
	}
	pruneEmpty(sub, path[1:])
	if len(sub) == 0 {
		delete(m, path[0])
	}
}

func addAttr(m map[string]any, a slog.Attr) {
	v := a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if v.Kind() == slog.KindGroup {
		as := v.Group()
		if len(as) == 0 {
			return
		}
		target := m
		if a.Key != "" {
			target = groupMap(m, []string{a.Key})
		}
		for _, sub := range as {
			addAttr(target, sub)
		}
		return
	}
	m[a.Key] = jsonValue(v)
}

func jsonValue(v slog.Value) any {
	switch v.Kind() {
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindAny:
		x := v.Any()
		if err, ok := x.(error); ok {
			if _, isMarshaler := x.(json.Marshaler); !isMarshaler {
				return err.Error()
			}
		}
		if _, err := json.Marshal(x); err != nil {
			return fmt.Sprintf("%+v", x)
		}
		return x
	default:
		return v.Any()
	}
}

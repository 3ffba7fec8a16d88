package workerproto

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Capabilities of the protocol, each naming the messages it allows.
const (
	// CapGracefulTermination: the runner sends GracefulTermination.
	CapGracefulTermination = "graceful-termination"
	// CapNewCredentials: the runner sends NewCredentials.
	CapNewCredentials = "new-credentials"
	// CapErrorReport: the worker sends ErrorReport.
	CapErrorReport = "error-report"
	// CapLog: the worker sends Log.
	CapLog = "log"
	// CapShutdown: the worker sends Shutdown.
	CapShutdown = "shutdown"
)

// AllCapabilities are the capabilities generic-worker has, in the order
// its `hello` lists them.
var AllCapabilities = []string{CapErrorReport, CapGracefulTermination, CapLog, CapNewCredentials, CapShutdown}

// Message types of the handshake, which belong to no capability.
const (
	TypeWelcome = "welcome"
	TypeHello   = "hello"
)

// Message is one protocol message; its Type is the "type" property and
// its capability is the capability that allows it ("" for the handshake).
type Message interface {
	Type() string
	Capability() string
}

// Welcome is the runner's first message: the capabilities it supports.
type Welcome struct {
	Capabilities []string `json:"capabilities"`
}

// Hello answers Welcome with the capabilities of this run, a subset of
// the Welcome's.
type Hello struct {
	Capabilities []string `json:"capabilities"`
}

// GracefulTermination asks the worker to stop claiming and exit:
// FinishTasks true lets running tasks finish; false means shutdown is
// imminent, so running tasks are resolved worker-shutdown at once.
type GracefulTermination struct {
	FinishTasks bool `json:"finish-tasks"`
}

// NewCredentials are the worker's renewed Taskcluster credentials, to be
// used for every later call not made for a task. Certificate is empty for
// permanent credentials.
type NewCredentials struct {
	ClientID    string `json:"client-id"`
	AccessToken string `json:"access-token"`
	Certificate string `json:"certificate,omitempty"`
}

// ErrorReport is an error for worker-manager's list of worker-pool errors
// (worker-manager.reportWorkerError): Kind, e.g. "worker-error", a short
// Title, a longer Description, and Extra, any JSON object (nil is sent as
// {}).
type ErrorReport struct {
	Kind        string         `json:"kind"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Extra       map[string]any `json:"extra"`
}

// Log is one structured log entry; Body's "textPayload" is the primary
// text for destinations that are not structured.
type Log struct {
	Body map[string]any `json:"body"`
}

// Shutdown tells the runner the worker is exiting, so that it removes the
// worker (worker-manager.removeWorker). It has no properties.
type Shutdown struct{}

func (Welcome) Type() string             { return TypeWelcome }
func (Hello) Type() string               { return TypeHello }
func (GracefulTermination) Type() string { return CapGracefulTermination }
func (NewCredentials) Type() string      { return CapNewCredentials }
func (ErrorReport) Type() string         { return CapErrorReport }
func (Log) Type() string                 { return CapLog }
func (Shutdown) Type() string            { return CapShutdown }

func (Welcome) Capability() string             { return "" }
func (Hello) Capability() string               { return "" }
func (GracefulTermination) Capability() string { return CapGracefulTermination }
func (NewCredentials) Capability() string      { return CapNewCredentials }
func (ErrorReport) Capability() string         { return CapErrorReport }
func (Log) Capability() string                 { return CapLog }
func (Shutdown) Capability() string            { return CapShutdown }

// Encode returns m as one protocol line, `~{"type":...}` and a newline,
// with m's properties beside "type". Nil capability lists are written [],
// a nil ErrorReport.Extra or Log.Body {}.
func Encode(m Message) ([]byte, error) {
	switch v := m.(type) {
	case Welcome:
		v.Capabilities = nonNil(v.Capabilities)
		m = v
	case Hello:
		v.Capabilities = nonNil(v.Capabilities)
		m = v
	case ErrorReport:
		if v.Extra == nil {
			v.Extra = map[string]any{}
		}
		m = v
	case Log:
		if v.Body == nil {
			v.Body = map[string]any{}
		}
		m = v
	}
	props, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding %s message: %w", m.Type(), err)
	}
	typ, _ := json.Marshal(m.Type())
	line := []byte(`~{"type":`)
	line = append(line, typ...)
	if rest := props[1 : len(props)-1]; len(rest) > 0 {
		line = append(line, ',')
		line = append(line, rest...)
	}
	return append(line, '}', '\n'), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Unknown is a well-formed message of a type this package does not know;
// Raw is its JSON object.
type Unknown struct {
	MessageType string
	Raw         json.RawMessage
}

func (u Unknown) Type() string     { return u.MessageType }
func (Unknown) Capability() string { return "" }

// Decode parses one line (with or without its line ending). ok is false
// when the line is not a protocol message: it does not have the form
// `~{...}`, its JSON does not decode, it has no string "type", or a
// property of a known type has the wrong JSON type. A message of a type
// this package does not know decodes to Unknown.
func Decode(line []byte) (m Message, ok bool) {
	s := strings.TrimRight(string(line), "\r\n")
	if !strings.HasPrefix(s, "~{") || !strings.HasSuffix(s, "}") {
		return nil, false
	}
	raw := []byte(s[1:])
	var head struct {
		Type *string `json:"type"`
	}
	if json.Unmarshal(raw, &head) != nil || head.Type == nil {
		return nil, false
	}
	var err error
	switch *head.Type {
	case TypeWelcome:
		m, err = decodeAs[Welcome](raw)
	case TypeHello:
		m, err = decodeAs[Hello](raw)
	case CapGracefulTermination:
		m, err = decodeAs[GracefulTermination](raw)
	case CapNewCredentials:
		m, err = decodeAs[NewCredentials](raw)
	case CapErrorReport:
		m, err = decodeAs[ErrorReport](raw)
	case CapLog:
		m, err = decodeAs[Log](raw)
	case CapShutdown:
		m = Shutdown{}
	default:
		m = Unknown{MessageType: *head.Type, Raw: raw}
	}
	if err != nil {
		return nil, false
	}
	return m, true
}

func decodeAs[T Message](raw []byte) (Message, error) {
	var v T
	err := json.Unmarshal(raw, &v)
	return v, err
}

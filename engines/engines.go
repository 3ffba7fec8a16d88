// Package engines defines the engine contract: how a worker runs one task in
// a sandbox. A worker links exactly one engine, chosen by its profile.
//
// # Life cycle
//
// For each task run the worker calls, in this order:
//
//  1. Engine.NewSandboxBuilder, once, after the payload has been validated
//     against the profile's composed payload schema. The engine decodes the
//     payload fields it owns (for example `command`) and checks what the
//     schema cannot; payload problems are returned as
//     *task.ExceptionError with task.ReasonMalformedPayload.
//  2. SandboxBuilder.SetEnv (and the methods of optional builder abilities
//     such as HostNameBuilder) from the plugins' BuildSandbox stage, any
//     number of times, possibly concurrently.
//  3. SandboxBuilder.Start, once, which starts the task and returns its
//     Sandbox; or SandboxBuilder.Discard if the run is abandoned before that.
//  4. Sandbox.Wait until the task ends, which returns the ResultSet. Kill and
//     Abort may be called from other goroutines at any time, also more than
//     once and after Wait returned (then they are no-ops that keep the
//     result).
//  5. Plugins read the ResultSet (ExtractFile, ExtractFolder) and finally the
//     worker calls ResultSet.Dispose once.
//
// An engine must stop every process it started for the run when Wait
// returns, when Kill or Abort is called, and when Dispose is called: a task
// never outlives its run.
//
// Optional abilities (Ability: HostNameBuilder, HostAddresser,
// AddressedSandbox, VolumeBuilder, ShellSandbox, ImageSandbox) are small interfaces next to the main
// ones; components detect them with a type assertion. An engine's CUE
// metadata lists the abilities it implements and a plugin's those it needs,
// so that the generator refuses a profile whose engine lacks one. Every
// engine runs the conformance suite in engines/enginetest, which also
// checks the engine's declared abilities against its types.
//
// # Shared pieces
//
// Engines share the Wait/Kill/Abort state machine of a Sandbox
// (engines/sandboxstate) and, for tasks that run on the host, the reading of
// the task directory (engines/internal/hostdir). An engine that reads other
// tasks' artifacts does so through the run's task.Context Queue, never with
// a Taskcluster client of its own.
package engines

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/workergen/workergen/task"
)

// Options are what the generated main passes to an engine's constructor.
// Each engine package exports `func New(Options) (Engine, error)`.
type Options struct {
	// Config is the engine's section of the worker config (`engine` key),
	// validated against the profile's config schema and with the profile's
	// defaults applied. Engines decode it into their own struct.
	Config json.RawMessage
	// Logger is the worker's structured log.
	Logger *slog.Logger
	// Worker identifies the worker.
	Worker task.WorkerInfo
	// Dialect is the payload format of the worker's profile (its
	// `dialect:` field); the zero value is treated as generic-worker.
	Dialect task.Dialect
}

// Constructor builds an engine. It returns an error naming the config field
// when the config is unusable.
type Constructor func(Options) (Engine, error)

// Engine creates sandboxes. One value serves every task of a worker and must
// be safe for concurrent use (a worker with capacity > 1 runs tasks in
// parallel).
type Engine interface {
	// NewSandboxBuilder prepares a sandbox for the run described by tc,
	// whose payload has already passed the schema. It returns a
	// *task.ExceptionError (malformed-payload, resource-unavailable) for
	// problems the task is at fault for or that are transient; any other
	// error is treated as internal-error.
	NewSandboxBuilder(ctx context.Context, tc *task.Context) (SandboxBuilder, error)

	// Close releases engine-wide resources when the worker stops. It is
	// called once, after every run has been disposed.
	Close() error
}

// SandboxBuilder collects what plugins contribute before the task starts.
type SandboxBuilder interface {
	// SetEnv sets an environment variable for the task. It returns an error
	// wrapping ErrInvalidEnvName if name is not a valid variable name (empty,
	// contains '=' or NUL; engines may be stricter), and ErrEnvConflict if
	// name was already set by another call. Values are passed unchanged,
	// whatever their size or content (NUL excepted, which returns
	// ErrInvalidEnvValue). Safe for concurrent use.
	SetEnv(name, value string) error

	// Start starts the task and returns its sandbox. Called at most once.
	// Errors follow NewSandboxBuilder's rules.
	Start(ctx context.Context) (Sandbox, error)

	// Discard releases what the builder holds when the run is abandoned
	// before Start. Called at most once, never after Start.
	Discard() error
}

// Sandbox is a running task.
type Sandbox interface {
	// Wait blocks until the task has ended and returns its result. Wait may
	// be called several times and returns the same values. If the sandbox
	// was aborted it returns ErrAborted and no result. ctx only bounds the
	// waiting, it does not stop the task.
	Wait(ctx context.Context) (ResultSet, error)

	// Kill stops the task (every process of it) and keeps its results: Wait
	// then returns a ResultSet with Killed() true, and files can still be
	// extracted. Idempotent; a no-op once the task has ended or was
	// aborted.
	Kill() error

	// Abort stops the task and discards its results: Wait returns
	// ErrAborted. Idempotent; it also aborts a task that was killed but has
	// not ended yet. Once the task has ended it is a no-op that keeps the
	// result (a run whose Wait returned an error has no result: Abort then
	// releases what the run holds, and Wait returns ErrAborted). Used when
	// the run was cancelled by the Queue and nothing will be reported, and
	// by the worker at the end of every run.
	Abort() error
}

// ResultSet is the outcome of a finished task and the way to read files
// it left behind.
type ResultSet interface {
	// Success reports whether the task's command succeeded (every command
	// exited 0 and it was not killed).
	Success() bool
	// ExitCode is the exit code of the command that ended the task, or -1
	// when it was killed by a signal or by the worker.
	ExitCode() int
	// Killed reports whether the worker stopped the task with Kill.
	Killed() bool
	// OOM reports whether the task was killed for running out of memory
	// (engines that can tell; others return false).
	OOM() bool
	// Duration is the time between start and end of the task.
	Duration() time.Duration

	// ExtractFile opens the file at path (relative paths are relative to
	// the task's working directory). It returns an error wrapping
	// ErrNotFound if there is no such file, and ErrNotAFile for a directory
	// or other non-regular file.
	ExtractFile(ctx context.Context, path string) (File, error)

	// ExtractFolder calls fn for every regular file below the folder at
	// path, in lexical order, with the file's path relative to the folder
	// (slash-separated). An error returned by fn stops the walk and is
	// returned. It returns an error wrapping ErrNotFound if the folder does
	// not exist and ErrNotAFolder if path is not a directory. A file that
	// vanishes during the walk is passed to fn with a File whose Open
	// returns an error wrapping ErrNotFound.
	ExtractFolder(ctx context.Context, path string, fn func(rel string, f File) error) error

	// Dispose removes everything left of the run. Called once.
	Dispose() error
}

// File is a file extracted from a ResultSet.
type File interface {
	// Open returns the file's content. It may be called more than once;
	// each call starts from the beginning.
	Open() (io.ReadCloser, error)
	// Size is the file's size in bytes, or -1 when unknown.
	Size() int64
	// HostPath is the file's path on the worker host when it has one (host
	// engines), else "".
	HostPath() string
	// Mode is the file's mode bits.
	Mode() fs.FileMode
}

// Ability names an optional engine ability: a small interface that an
// engine's Engine, SandboxBuilder or Sandbox values implement or not,
// detected by type assertion. CUE metadata uses the same names (#Ability in
// schemas/profile.cue): an engine's `abilities` lists those it implements
// (engines/enginetest checks the list against its types), a plugin's
// `requires` those it type-asserts, and the generator refuses a profile
// whose engine lacks one its plugins require.
type Ability string

// The abilities. The SetEnv, ExtractFile and ExtractFolder methods every
// engine has are not abilities.
const (
	// AbilityHostName: the SandboxBuilder implements HostNameBuilder.
	AbilityHostName Ability = "hostname"
	// AbilityHostAddress: the Engine implements HostAddresser.
	AbilityHostAddress Ability = "host-address"
	// AbilitySandboxAddress: the Sandbox implements AddressedSandbox.
	AbilitySandboxAddress Ability = "sandbox-address"
	// AbilityVolumes: the SandboxBuilder implements VolumeBuilder.
	AbilityVolumes Ability = "volumes"
	// AbilityInteractiveShell: the Sandbox implements ShellSandbox.
	AbilityInteractiveShell Ability = "interactive-shell"
	// AbilityImageInfo: the Sandbox implements ImageSandbox.
	AbilityImageInfo Ability = "image-info"
)

// abilities describes each Ability: its interface's name and how to tell
// whether an engine's values implement it.
var abilities = []struct {
	ability Ability
	iface   string
	has     func(Engine, SandboxBuilder, Sandbox) bool
}{
	{AbilityHostAddress, "engines.HostAddresser", func(e Engine, _ SandboxBuilder, _ Sandbox) bool { _, ok := e.(HostAddresser); return ok }},
	{AbilityHostName, "engines.HostNameBuilder", func(_ Engine, b SandboxBuilder, _ Sandbox) bool { _, ok := b.(HostNameBuilder); return ok }},
	{AbilityImageInfo, "engines.ImageSandbox", func(_ Engine, _ SandboxBuilder, s Sandbox) bool { _, ok := s.(ImageSandbox); return ok }},
	{AbilityInteractiveShell, "engines.ShellSandbox", func(_ Engine, _ SandboxBuilder, s Sandbox) bool { _, ok := s.(ShellSandbox); return ok }},
	{AbilitySandboxAddress, "engines.AddressedSandbox", func(_ Engine, _ SandboxBuilder, s Sandbox) bool { _, ok := s.(AddressedSandbox); return ok }},
	{AbilityVolumes, "engines.VolumeBuilder", func(_ Engine, b SandboxBuilder, _ Sandbox) bool { _, ok := b.(VolumeBuilder); return ok }},
}

// Abilities returns every Ability, sorted.
func Abilities() []Ability {
	out := make([]Ability, len(abilities))
	for i, a := range abilities {
		out[i] = a.ability
	}
	return out
}

// Interface returns the Go name of the interface a stands for, e.g.
// "engines.HostNameBuilder", or "" when a is not one of Abilities.
func (a Ability) Interface() string {
	for _, d := range abilities {
		if d.ability == a {
			return d.iface
		}
	}
	return ""
}

// Implemented returns the abilities, sorted, that an engine implements,
// judged on e, one of its sandbox builders b and one of its sandboxes s
// (each ability is detected on the value its interface extends; a nil
// value implements none).
func Implemented(e Engine, b SandboxBuilder, s Sandbox) []Ability {
	var out []Ability
	for _, d := range abilities {
		if d.has(e, b, s) {
			out = append(out, d.ability)
		}
	}
	return out
}

// HostNameBuilder is an optional SandboxBuilder ability of engines whose
// tasks have a network of their own (containers). AddHostName makes name
// resolve, inside the sandbox, to an address of the worker host that the
// sandbox reaches (the gateway of its network; 127.0.0.1 when it shares
// the host's network), and returns that address, for a worker service to
// listen on. Errors wrap ErrNoHostNetwork when the sandbox cannot reach
// the host at all.
type HostNameBuilder interface {
	AddHostName(ctx context.Context, name string) (netip.Addr, error)
}

// HostAddresser is the Engine-level side of HostNameBuilder: HostAddress
// is the worker host's address that the engine's sandboxes reach (what
// AddHostName maps names to), so a worker service can listen there before
// any task runs. Errors wrap ErrNoHostNetwork when sandboxes cannot reach
// the host at all.
type HostAddresser interface {
	HostAddress(ctx context.Context) (netip.Addr, error)
}

// AddressedSandbox is an optional Sandbox ability that goes with
// HostNameBuilder: Address is the address the sandbox's connections to the
// worker host come from, so that a service shared by several runs can tell
// them apart.
type AddressedSandbox interface {
	Address(ctx context.Context) (netip.Addr, error)
}

// VolumeBuilder is an optional SandboxBuilder ability of engines that can
// give a task a cache: a named volume that outlives the run. AttachCache
// mounts cache name (any non-empty string) at mountPath (an absolute path
// in the sandbox). At most one running task uses a cache at a time; a
// second concurrent user gets a fresh instance. The cache is purged when
// the run was killed by the worker or when a plugin stored true under
// task.PurgeCachesKey. It returns an error for an empty name, a relative
// mountPath, or a mountPath already used. Call before Start; not safe for
// concurrent use with Start.
type VolumeBuilder interface {
	AttachCache(name, mountPath string) error
}

// ShellSandbox is an optional Sandbox ability: an interactive shell inside
// the running task's environment (same working directory, environment
// variables and, where the engine has them, user, cgroup and container), on
// a pseudo-terminal. Shell starts one; it returns an error wrapping
// ErrNotRunning once the task has ended or was stopped. The shell is
// stopped when the task ends, is killed or aborted, or when ctx ends.
// Several shells may run at once.
type ShellSandbox interface {
	Shell(ctx context.Context, size TermSize) (Shell, error)
}

// TermSize is a terminal's size in character cells.
type TermSize struct {
	Rows, Cols uint16
}

// Shell is a running interactive shell. Read returns what the terminal
// shows (the shell's output, with terminal line endings); Write types
// input. Read returns io.EOF (or an error) once the shell has exited.
// Close ends the shell (killing it if still running) and is idempotent.
type Shell interface {
	io.ReadWriteCloser
	// Resize changes the terminal size; the shell gets SIGWINCH.
	Resize(size TermSize) error
	// Done is closed when the shell process has exited.
	Done() <-chan struct{}
}

// ImageSandbox is an optional Sandbox ability of engines that run tasks
// from images (containers): Image describes the image the task runs in.
type ImageSandbox interface {
	Image(ctx context.Context) (ImageInfo, error)
}

// ImageInfo identifies a task's image for Chain of Trust.
type ImageInfo struct {
	// Hash is the image's content-addressable ID, "sha256:<64 hex>" (the
	// digest of its config, as `docker inspect --format '{{.Id}}'` shows).
	Hash string
	// ArtifactHash is "sha256:<64 hex>" of the artifact the image was
	// loaded from (docker-worker payload image types task-image and
	// indexed-image), or "" for registry images.
	ArtifactHash string
}

// Errors engines return; callers match them with errors.Is.
var (
	ErrInvalidEnvName  = errors.New("invalid environment variable name")
	ErrInvalidEnvValue = errors.New("invalid environment variable value")
	ErrEnvConflict     = errors.New("environment variable already set")
	ErrNotFound        = errors.New("not found")
	ErrNotAFile        = errors.New("not a regular file")
	ErrNotAFolder      = errors.New("not a directory")
	ErrOutsideTaskDir  = errors.New("path resolves outside the task directory")
	ErrAborted         = errors.New("sandbox aborted")
	ErrNoHostNetwork   = errors.New("the sandbox has no network to reach the worker host")
	ErrNotRunning      = errors.New("the task is not running")
	// ErrHostUnavailable wraps a New error that is the host's, not the
	// config's: a service the engine needs (a container daemon) does not
	// answer. The worker exits 69 for it rather than 73 (invalid config).
	ErrHostUnavailable = errors.New("the host cannot run tasks")
)

// CheckEnv applies the contract's minimum rules for SandboxBuilder.SetEnv:
// a name is non-empty and holds no '=' or NUL (generic-worker passes any
// other payload `env` key to the task unchanged, so shells may ignore names
// they cannot express but other programs read them), and a value holds no
// NUL. It returns an error wrapping ErrInvalidEnvName or ErrInvalidEnvValue
// that names the variable; engines add their own limits after it.
func CheckEnv(name, value string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name: %w", ErrInvalidEnvName)
	case strings.ContainsRune(name, '='):
		return fmt.Errorf("%q contains '=': %w", name, ErrInvalidEnvName)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("%q contains NUL: %w", name, ErrInvalidEnvName)
	case strings.ContainsRune(value, 0):
		return fmt.Errorf("%s: value contains NUL: %w", name, ErrInvalidEnvValue)
	}
	return nil
}

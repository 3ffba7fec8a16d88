// Package release builds the downloadable release of workergen: every
// shipped profile for every platform it declares, byte-for-byte
// reproducible. It is the logic behind `go tool mage release`
// (magefiles/release.go) and the release workflow
// (.github/workflows/release.yml).
//
// Run writes into the output directory (default dist/release):
//
//	<binary>-<version>-<os>-<arch>.tar.gz   linux, darwin, freebsd, ...
//	<binary>-<version>-<os>-<arch>.zip      windows
//	<binary>-<version>-<os>-<arch>.cdx.json CycloneDX SBOM of the binary
//	manifest.json                           see Manifest
//	SHA256SUMS                              every other file, `sha256sum -c` format
//
// Each archive holds one top directory named like the archive, with the
// worker binary (named <binary>, plus .exe on windows), LICENSE, README.md
// (an operator's guide filled in for the profile and platform),
// profile.json, payload.schema.json, config.schema.json,
// config.defaults.json and payload.md (the task payload reference page)
// from dist/<profile>/.
//
// Reproducibility: binaries are built by gen/build (CGO_ENABLED=0,
// -trimpath, -buildvcs=false, -ldflags "-s -w -buildid= ..."); archive
// entries are sorted, owned by 0:0 with no owner names, mode 0755 (binary,
// directory) or 0644, and dated with the commit time, as are the SBOMs and
// the manifest; gzip headers carry no name or time. The same commit built
// with the same Go toolchain therefore gives the same bytes anywhere.
package release

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/gen/build"
	"github.com/workergen/workergen/internal/progress"
)

// DefaultOutDir is the release directory below the repository root.
const DefaultOutDir = "dist/release"

// LicenseFile is the license file at the repository root that every
// archive carries.
const LicenseFile = "LICENSE"

// Errors callers branch on.
var (
	// ErrTargetsFailed is wrapped by Run's error when one or more
	// profile x target builds failed; the others were still released.
	ErrTargetsFailed = errors.New("release targets failed")
	// ErrNoTargets means the profile and platform selection is empty.
	ErrNoTargets = errors.New("no targets to release")
	// ErrBadPlatform is wrapped by ParsePlatforms errors.
	ErrBadPlatform = errors.New("bad platform")
	// ErrOutDir means the output directory holds files that are not a
	// release's, so Run refuses to clear it.
	ErrOutDir = errors.New("output directory is not a release directory")
)

// Options configure Run. Zero values get defaults.
type Options struct {
	// Root is the repository root (the directory holding go.mod); default ".".
	Root string
	// OutDir is the release directory; default Root/dist/release. Run
	// clears it first (it refuses if it holds anything but release files).
	OutDir string
	// Profiles to release; nil means every profile in profiles/.
	Profiles []string
	// Platforms narrows every profile's targets to these; nil keeps all
	// declared targets. A platform no selected profile declares is an
	// error (ErrBadPlatform), to catch typos.
	Platforms []gen.Target
	// Version and Commit are stamped into the binaries and recorded in the
	// manifest; empty means build.VersionInfo(Root).
	Version, Commit string
	// Epoch is the time given to every archive entry and SBOM; zero means
	// CommitTime(Root).
	Epoch time.Time
	// Jobs bounds targets built at once; default runtime.NumCPU().
	Jobs int
	// Go is the go command; default "go".
	Go string
	// Progress receives one line as each target starts and ends (a
	// "still" line every progress.DefaultEvery while it builds), and the
	// summary table; default discards.
	Progress io.Writer
	// DistDir is where the profiles' modules are generated
	// (DistDir/<profile>/); empty means Root/dist. Tests give a temporary
	// folder, so the checkout's dist/ stays as it is.
	DistDir string
}

// BuildEnv is added to the environment of every release `go build`: it
// pins what changes a binary's bytes and what a developer's environment may
// hold, so a release depends on the commit and the Go toolchain only: no
// go.work (the module's go.mod and go.sum alone), no GOFLAGS, no
// experiments, the default instruction-set levels.
var BuildEnv = []string{
	"GOWORK=off", "GOFLAGS=", "GOEXPERIMENT=",
	"GOAMD64=v1", "GOARM64=v8.0", "GOARM=7", "GO386=sse2",
}

// Target is the outcome of one profile x platform.
type Target struct {
	Profile string
	// Target is the platform; zero when the profile itself failed to
	// generate.
	Target gen.Target
	// Archive and SBOM are file names in the output directory (empty on
	// failure).
	Archive, SBOM string
	// ArchiveSize and BinarySize are in bytes; the digests are hex SHA-256.
	ArchiveSize, BinarySize     int64
	ArchiveSHA256, BinarySHA256 string
	// GoVersion is the toolchain recorded in the binary's build info.
	GoVersion string
	// Elapsed is the wall time of the target (build and packaging).
	Elapsed time.Duration
	// Err is nil when the target was released.
	Err error
}

// Result is what Run produced.
type Result struct {
	// OutDir is the release directory.
	OutDir string
	// Manifest is what manifest.json holds.
	Manifest *Manifest
	// Targets in matrix order (profiles by name, targets as declared).
	Targets []Target
	// Files maps every release file name but SHA256SUMS to its hex
	// SHA-256: what SHA256SUMS lists.
	Files map[string]string
	// Size is the total size in bytes of the release files, SHA256SUMS
	// included.
	Size int64
	// Elapsed is the wall time of the whole release.
	Elapsed time.Duration
}

// Failed returns the targets that failed.
func (r *Result) Failed() []Target {
	var out []Target
	for _, t := range r.Targets {
		if t.Err != nil {
			out = append(out, t)
		}
	}
	return out
}

// ParsePlatforms parses a comma-separated platform list such as
// "linux/amd64,windows/arm64" (the PLATFORMS variable). Blank entries are
// ignored; an empty list returns nil (no filter). Each entry is
// "<GOOS>/<GOARCH>"; anything else wraps ErrBadPlatform.
func ParsePlatforms(s string) ([]gen.Target, error) {
	var out []gen.Target
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		m := platformRE.FindStringSubmatch(f)
		if m == nil {
			return nil, fmt.Errorf("%w %q: want <os>/<arch>, e.g. linux/amd64", ErrBadPlatform, f)
		}
		t := gen.Target{OS: m[1], Arch: m[2]}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

var platformRE = regexp.MustCompile(`^([a-z0-9]+)/([a-z0-9]+)$`)

// CommitTime returns the time release files are dated with: the
// SOURCE_DATE_EPOCH environment variable (seconds since the Unix epoch)
// when set, else the commit time of HEAD (`git log -1 --format=%ct`), else
// 1980-01-01T00:00:00Z (the earliest time a zip entry can hold).
func CommitTime(ctx context.Context, root string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("parsing SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		return clampEpoch(time.Unix(sec, 0)), nil
	}
	cmd := exec.CommandContext(ctx, "git", "log", "-1", "--format=%ct")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return minEpoch, nil
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing commit time %q: %w", strings.TrimSpace(string(out)), err)
	}
	return clampEpoch(time.Unix(sec, 0)), nil
}

var minEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

func clampEpoch(t time.Time) time.Time {
	if t.Before(minEpoch) {
		return minEpoch
	}
	return t.UTC()
}

// Job is one profile x platform of a release plan.
type Job struct {
	Profile *gen.Profile
	Target  gen.Target
}

// Plan generates the selected profiles (writing distDir/<profile>/;
// distDir "" is root/dist) and returns the matrix to build, profiles by name and targets in declared
// order, narrowed to platforms when given. Profiles that fail to generate
// are returned as failed Targets; an unknown profile name, a platform no
// selected profile declares, or an empty matrix is an error.
func Plan(root, distDir string, profiles []string, platforms []gen.Target) ([]Job, []Target, error) {
	if profiles == nil {
		var err error
		if profiles, err = gen.KnownProfiles(root); err != nil {
			return nil, nil, err
		}
	} else {
		profiles = slices.Clone(profiles)
		slices.Sort(profiles)
		profiles = slices.Compact(profiles)
		for _, name := range profiles {
			if _, err := gen.ProfileFile(root, name); err != nil {
				return nil, nil, err
			}
		}
	}
	var jobs []Job
	var failed []Target
	matched := map[gen.Target]bool{}
	for _, name := range profiles {
		p, err := gen.GenerateIn(context.Background(), root, name, "", distDir)
		if err != nil {
			failed = append(failed, Target{Profile: name, Err: fmt.Errorf("generating profile %s: %w", name, err)})
			continue
		}
		for _, t := range p.Targets {
			if platforms != nil && !slices.Contains(platforms, t) {
				continue
			}
			matched[t] = true
			jobs = append(jobs, Job{Profile: p, Target: t})
		}
	}
	if len(failed) == 0 {
		for _, t := range platforms {
			if !matched[t] {
				return nil, nil, fmt.Errorf("%w %s: no selected profile (%s) declares it", ErrBadPlatform, t, strings.Join(profiles, ", "))
			}
		}
	}
	if len(jobs) == 0 && len(failed) == 0 {
		return nil, nil, ErrNoTargets
	}
	return jobs, failed, nil
}

// BaseName is the archive's name without extension, also its top
// directory and the stem of its SBOM: "<binary>-<version>-<os>-<arch>".
func BaseName(binary, version string, t gen.Target) string {
	return binary + "-" + version + "-" + t.OS + "-" + t.Arch
}

// Run builds and packages the release described by opts. Targets are built
// Jobs at a time; a failed target is reported (progress line and summary,
// naming profile and platform) and the others go on. The manifest and
// SHA256SUMS cover what was released. The error wraps ErrTargetsFailed
// (joined with each target's error) when any target failed; the Result is
// returned in that case too.
func Run(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	opts, license, err := withDefaults(ctx, opts)
	if err != nil {
		return nil, err
	}

	jobs, failed, err := Plan(opts.Root, opts.DistDir, opts.Profiles, opts.Platforms)
	if err != nil {
		return nil, err
	}
	if err := clearOutDir(opts.OutDir); err != nil {
		return nil, err
	}
	staging, err := os.MkdirTemp(opts.OutDir, stagingPrefix)
	if err != nil {
		return nil, fmt.Errorf("creating staging directory: %w", err)
	}
	defer os.RemoveAll(staging)

	r := &runner{opts: opts, license: license, staging: staging, total: len(jobs), progress: progress.New(opts.Progress)}
	fmt.Fprintf(opts.Progress, "release %s (commit %s, %s) of %d targets into %s, %d at a time\n",
		opts.Version, shortCommit(opts.Commit), opts.Epoch.Format(time.RFC3339), len(jobs), opts.OutDir, opts.Jobs)
	for _, f := range failed {
		fmt.Fprintf(opts.Progress, "FAILED %s: %s\n", f.Profile, strings.ReplaceAll(f.Err.Error(), "\n", "\n    "))
	}

	results := r.buildAll(ctx, jobs)

	res := &Result{OutDir: opts.OutDir, Targets: append(failed, results...), Files: map[string]string{}}
	slices.SortStableFunc(res.Targets, func(a, b Target) int { return strings.Compare(a.Profile, b.Profile) })
	res.Manifest = manifest(opts, jobs, results)
	for _, t := range results {
		if t.Err == nil {
			res.Files[t.Archive] = t.ArchiveSHA256
		}
	}
	if err := r.writeFinal(res); err != nil {
		return res, err
	}
	if err := os.RemoveAll(staging); err != nil {
		return res, fmt.Errorf("removing staging directory: %w", err)
	}
	res.Elapsed = time.Since(start)
	writeSummary(opts.Progress, res)

	return res, failures(res.Targets)
}

// withDefaults fills in opts' unset fields (root, output directory, jobs,
// go command, progress writer, version, commit and epoch from git) and
// reads the license file every archive carries.
func withDefaults(ctx context.Context, opts Options) (Options, []byte, error) {
	if opts.Root == "" {
		opts.Root = "."
	}
	if opts.OutDir == "" {
		opts.OutDir = filepath.Join(opts.Root, filepath.FromSlash(DefaultOutDir))
	}
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.NumCPU()
	}
	if opts.Go == "" {
		opts.Go = "go"
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.Version == "" || opts.Commit == "" {
		v, c := build.VersionInfo(ctx, opts.Root)
		opts.Version = cmp.Or(opts.Version, v)
		opts.Commit = cmp.Or(opts.Commit, c)
	}
	if opts.Epoch.IsZero() {
		t, err := CommitTime(ctx, opts.Root)
		if err != nil {
			return opts, nil, err
		}
		opts.Epoch = t
	}
	opts.Epoch = clampEpoch(opts.Epoch)
	license, err := os.ReadFile(filepath.Join(opts.Root, LicenseFile))
	if err != nil {
		return opts, nil, fmt.Errorf("reading %s: %w", LicenseFile, err)
	}
	return opts, license, nil
}

// buildAll builds and packages jobs, opts.Jobs at a time, started in matrix
// order; result i belongs to jobs[i]. Jobs not started before ctx ends get
// ctx's error.
func (r *runner) buildAll(ctx context.Context, jobs []Job) []Target {
	results := make([]Target, len(jobs))
	sem := make(chan struct{}, r.opts.Jobs)
	var wg sync.WaitGroup
	for i, j := range jobs {
		// Acquired here, not in the goroutine, so targets start in matrix
		// order.
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			results[i] = Target{Profile: j.Profile.Name, Target: j.Target, Err: fmt.Errorf("profile %s target %s: %w", j.Profile.Name, j.Target, ctx.Err())}
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i] = r.target(ctx, i+1, j)
		})
	}
	wg.Wait()
	return results
}

// failures joins the errors of the targets that failed under
// ErrTargetsFailed, or returns nil when none did.
func failures(targets []Target) error {
	var errs []error
	for _, t := range targets {
		if t.Err != nil {
			errs = append(errs, t.Err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w (%d of %d): %w", ErrTargetsFailed, len(errs), len(targets), errors.Join(errs...))
}

// stagingPrefix names the temporary directory binaries are built into,
// inside the output directory, removed at the end.
const stagingPrefix = ".staging-"

// releaseFile matches the files a release directory may hold.
var releaseFile = regexp.MustCompile(`(\.tar\.gz|\.zip|\.cdx\.json)$|^(` + regexp.QuoteMeta(ManifestFile) + `|` + ChecksumsFile + `)$|^` + regexp.QuoteMeta(stagingPrefix))

// clearOutDir empties dir (creating it if needed), refusing when it holds
// anything a release does not write.
func clearOutDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading output directory: %w", err)
	}
	for _, e := range entries {
		if !releaseFile.MatchString(e.Name()) {
			return fmt.Errorf("%w: %s holds %s", ErrOutDir, dir, e.Name())
		}
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("clearing output directory: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating output directory: %w", err)
	}
	return nil
}

type runner struct {
	opts     Options
	license  []byte
	staging  string
	total    int
	progress *progress.Printer
}

// target builds and packages one job; n is its 1-based position.
func (r *runner) target(ctx context.Context, n int, j Job) Target {
	p, t := j.Profile, j.Target
	res := Target{Profile: p.Name, Target: t}
	width := len(strconv.Itoa(r.total))
	tag := fmt.Sprintf("[%*d/%d]", width, n, r.total)
	step := r.progress.Start(tag, p.Name+" "+t.String(), "")
	res.Err = r.buildAndPackage(ctx, j, &res)
	if res.Err != nil {
		res.Err = fmt.Errorf("profile %s target %s: %w", p.Name, t, res.Err)
		// Compiler output spans lines: Fail indents it under the target's.
		res.Elapsed = step.Fail(res.Err)
		return res
	}
	res.Elapsed = step.Done(fmt.Sprintf("binary %s, %s %s", humanSize(res.BinarySize), res.Archive, humanSize(res.ArchiveSize)))
	return res
}

func (r *runner) buildAndPackage(ctx context.Context, j Job, res *Target) error {
	p, t := j.Profile, j.Target
	binDir := filepath.Join(r.staging, p.Name)
	built, err := build.Build(ctx, build.Options{
		Root:    r.opts.Root,
		DistDir: r.opts.DistDir,
		Profile: p.File,
		Targets: []gen.Target{t},
		Jobs:    1,
		Version: r.opts.Version,
		Commit:  r.opts.Commit,
		Go:      r.opts.Go,
		BinDir:  binDir,
		Env:     BuildEnv,
	})
	if err != nil {
		return err
	}
	binPath := built.Binaries[0].Path
	bin, err := os.ReadFile(binPath)
	if err != nil {
		return fmt.Errorf("reading binary: %w", err)
	}
	res.BinarySize = int64(len(bin))
	res.BinarySHA256 = sha256Hex(bin)
	bi, err := ReadBuildInfo(binPath)
	if err != nil {
		return err
	}
	res.GoVersion = bi.GoVersion

	base := BaseName(p.Binary, r.opts.Version, t)
	plugins := pluginNames(p)
	sbom, err := SBOM(SBOMInput{
		Name: p.Binary, Version: r.opts.Version, SHA256: res.BinarySHA256, Time: r.opts.Epoch,
		Profile: p.Name, Engine: p.Engine.Name, Plugins: plugins, Components: sbomComponents(p),
	}, bi)
	if err != nil {
		return err
	}
	res.SBOM = base + ".cdx.json"
	if err := os.WriteFile(filepath.Join(r.opts.OutDir, res.SBOM), sbom, 0o644); err != nil {
		return fmt.Errorf("writing sbom: %w", err)
	}

	readme, err := r.readme(p, t, plugins)
	if err != nil {
		return err
	}
	payloadDoc, err := p.PayloadDoc()
	if err != nil {
		return fmt.Errorf("payload reference page: %w", err)
	}
	exe := p.Binary
	if t.OS == "windows" {
		exe += ".exe"
	}
	entries := []entry{
		bytesEntry(exe, bin, true),
		bytesEntry(LicenseFile, r.license, false),
		bytesEntry("README.md", readme, false),
		bytesEntry(gen.ProfileFileName, p.ProfileJSON, false),
		bytesEntry(gen.PayloadSchemaFile, p.PayloadSchema, false),
		bytesEntry(gen.ConfigSchemaFile, p.ConfigSchema, false),
		bytesEntry(gen.DefaultConfigFile, p.DefaultConfig, false),
		bytesEntry(gen.PayloadDocFile, payloadDoc, false),
	}
	kind := KindFor(t.OS)
	var archive bytes.Buffer
	if err := writeArchive(&archive, kind, base, r.opts.Epoch, entries); err != nil {
		return err
	}
	res.Archive = base + "." + string(kind)
	res.ArchiveSize = int64(archive.Len())
	res.ArchiveSHA256 = sha256Hex(archive.Bytes())
	if err := os.WriteFile(filepath.Join(r.opts.OutDir, res.Archive), archive.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing archive: %w", err)
	}
	if err := os.Remove(binPath); err != nil {
		return fmt.Errorf("removing staged binary: %w", err)
	}
	return nil
}

func bytesEntry(name string, content []byte, exec bool) entry {
	return entry{
		Name: name, Exec: exec, Size: int64(len(content)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content)), nil },
	}
}

//go:embed README.operator.md.tmpl
var readmeTemplate string

var readmeTmpl = template.Must(template.New("README.md").
	Funcs(template.FuncMap{"join": strings.Join}).
	Option("missingkey=error").
	Parse(readmeTemplate))

// readme renders the operator README of one archive.
func (r *runner) readme(p *gen.Profile, t gen.Target, plugins []string) ([]byte, error) {
	file, command := p.Binary, "./"+p.Binary
	if t.OS == "windows" {
		file += ".exe"
		command = `.\` + file
	}
	var b bytes.Buffer
	err := readmeTmpl.Execute(&b, map[string]any{
		"Binary":      p.Binary,
		"File":        file,
		"Command":     command,
		"Version":     r.opts.Version,
		"Commit":      r.opts.Commit,
		"ShortCommit": shortCommit(r.opts.Commit),
		"Profile":     p.Name,
		"Description": strings.TrimSuffix(p.Description, "."),
		"Dialect":     p.Dialect,
		"Engine":      p.Engine.Name,
		"Plugins":     plugins,
		"OS":          t.OS,
		"Arch":        t.Arch,
	})
	if err != nil {
		return nil, fmt.Errorf("rendering README.md: %w", err)
	}
	return b.Bytes(), nil
}

// writeFinal writes manifest.json and SHA256SUMS, and fills res.Files and
// res.Size.
func (r *runner) writeFinal(res *Result) error {
	for _, t := range res.Targets {
		if t.Err != nil {
			continue
		}
		sbom, err := os.ReadFile(filepath.Join(r.opts.OutDir, t.SBOM))
		if err != nil {
			return fmt.Errorf("reading sbom: %w", err)
		}
		res.Files[t.SBOM] = sha256Hex(sbom)
	}
	m, err := res.Manifest.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.opts.OutDir, ManifestFile), m, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", ManifestFile, err)
	}
	res.Files[ManifestFile] = sha256Hex(m)
	sums := Checksums(res.Files)
	if err := os.WriteFile(filepath.Join(r.opts.OutDir, ChecksumsFile), sums, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", ChecksumsFile, err)
	}
	for name := range res.Files {
		fi, err := os.Stat(filepath.Join(r.opts.OutDir, name))
		if err != nil {
			return fmt.Errorf("sizing release: %w", err)
		}
		res.Size += fi.Size()
	}
	res.Size += int64(len(sums))
	return nil
}

// manifest assembles manifest.json from the built targets, grouped by
// profile in job order.
func manifest(opts Options, jobs []Job, results []Target) *Manifest {
	m := &Manifest{
		Version:    opts.Version,
		Commit:     opts.Commit,
		CommitTime: opts.Epoch.UTC().Format(time.RFC3339),
		Profiles:   []ManifestProfile{},
	}
	for i, j := range jobs {
		t := results[i]
		if t.Err != nil {
			continue
		}
		p := j.Profile
		if len(m.Profiles) == 0 || m.Profiles[len(m.Profiles)-1].Name != p.Name {
			m.Profiles = append(m.Profiles, ManifestProfile{
				Name: p.Name, Description: p.Description, Binary: p.Binary, Dialect: p.Dialect,
				Version: opts.Version, Commit: opts.Commit,
				Engine: p.Engine.Name, Plugins: pluginNames(p), Targets: []ManifestTarget{},
			})
		}
		mp := &m.Profiles[len(m.Profiles)-1]
		mp.Targets = append(mp.Targets, ManifestTarget{
			OS: t.Target.OS, Arch: t.Target.Arch,
			Archive: t.Archive, Size: t.ArchiveSize, SHA256: t.ArchiveSHA256,
			SBOM:       t.SBOM,
			BinarySize: t.BinarySize, BinarySHA256: t.BinarySHA256,
			GoVersion: t.GoVersion,
		})
	}
	return m
}

// sbomComponents lists the profile's engine and plugins for the SBOM.
func sbomComponents(p *gen.Profile) []SBOMComponent {
	var out []SBOMComponent
	for i, c := range append([]gen.Component{p.Engine}, p.Plugins...) {
		kind := "plugin"
		if i == 0 {
			kind = "engine"
		}
		out = append(out, SBOMComponent{Kind: kind, Name: c.Name, Import: c.GoImport, Module: c.Module, Version: c.Version})
	}
	return out
}

func pluginNames(p *gen.Profile) []string {
	names := make([]string, len(p.Plugins))
	for i, c := range p.Plugins {
		names[i] = c.Name
	}
	return names
}

// writeSummary prints the table of every target and the totals.
func writeSummary(w io.Writer, res *Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROFILE\tTARGET\tRESULT\tTIME\tBINARY\tARCHIVE\tFILE")
	ok := 0
	for _, t := range res.Targets {
		target := t.Target.String()
		if t.Target == (gen.Target{}) {
			target = "-"
		}
		if t.Err != nil {
			fmt.Fprintf(tw, "%s\t%s\tFAILED\t%s\t-\t-\t-\n", t.Profile, target, t.Elapsed.Round(100*time.Millisecond))
			continue
		}
		ok++
		fmt.Fprintf(tw, "%s\t%s\tok\t%s\t%s\t%s\t%s\n", t.Profile, target, t.Elapsed.Round(100*time.Millisecond),
			humanSize(t.BinarySize), humanSize(t.ArchiveSize), t.Archive)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d targets: %d released, %d failed; wall time %s; release %s (%d files) in %s\n",
		len(res.Targets), ok, len(res.Targets)-ok, res.Elapsed.Round(100*time.Millisecond),
		humanSize(res.Size), len(res.Files)+1, res.OutDir)
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

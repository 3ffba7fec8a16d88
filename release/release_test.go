package release_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/gen/build"
	"github.com/workergen/workergen/release"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "no go.mod above the test directory")
		dir = parent
	}
}

// stamp is the version, commit and time both release runs of a test use,
// fixed once so that commits landing in the work tree between two runs
// cannot change them.
type stamp struct {
	version, commit string
	epoch           time.Time
}

var (
	stampOnce sync.Once
	theStamp  stamp
)

func getStamp(t testing.TB) stamp {
	stampOnce.Do(func() {
		ctx := context.Background()
		root := repoRoot(t)
		theStamp.version, theStamp.commit = build.VersionInfo(ctx, root)
		e, err := release.CommitTime(ctx, root)
		if err == nil {
			theStamp.epoch = e
		}
	})
	require.False(t, theStamp.epoch.IsZero(), "commit time")
	return theStamp
}

func TestParsePlatforms(t *testing.T) {
	got, err := release.ParsePlatforms(" linux/amd64, windows/arm64,,linux/amd64 ")
	require.NoError(t, err)
	require.Equal(t, []gen.Target{{OS: "linux", Arch: "amd64"}, {OS: "windows", Arch: "arm64"}}, got)

	got, err = release.ParsePlatforms("")
	require.NoError(t, err)
	require.Nil(t, got)

	for _, bad := range []string{"linux", "linux/", "/amd64", "linux/amd64/v3", "Linux/AMD64", "linux amd64"} {
		_, err := release.ParsePlatforms(bad)
		require.ErrorIs(t, err, release.ErrBadPlatform, bad)
	}
}

func TestKindFor(t *testing.T) {
	require.Equal(t, release.Zip, release.KindFor("windows"))
	for _, goos := range []string{"linux", "darwin", "freebsd"} {
		require.Equal(t, release.TarGz, release.KindFor(goos))
	}
}

// TestPlanFullMatrix checks that a release with no selection covers every
// profile in profiles/ x every target it declares, in order.
func TestPlanFullMatrix(t *testing.T) {
	root := repoRoot(t)
	names, err := gen.KnownProfiles(root)
	require.NoError(t, err)
	var want []string
	for _, n := range names {
		p, err := gen.Resolve(root, n)
		require.NoError(t, err)
		for _, tg := range p.Targets {
			want = append(want, n+" "+tg.String())
		}
	}
	jobs, failed, err := release.Plan(root, t.TempDir(), nil, nil)
	require.NoError(t, err)
	require.Empty(t, failed)
	var got []string
	for _, j := range jobs {
		got = append(got, j.Profile.Name+" "+j.Target.String())
	}
	require.Equal(t, want, got)
	require.Contains(t, got, "linux-native linux/amd64")
	require.Contains(t, got, "windows-native windows/arm64")
}

func TestPlanSelection(t *testing.T) {
	root := repoRoot(t)
	jobs, _, err := release.Plan(root, t.TempDir(), []string{"hello"}, []gen.Target{{OS: "windows", Arch: "arm64"}, {OS: "linux", Arch: "amd64"}})
	require.NoError(t, err)
	var got []string
	for _, j := range jobs {
		got = append(got, j.Profile.Name+" "+j.Target.String())
	}
	require.Equal(t, []string{"hello linux/amd64", "hello windows/arm64"}, got, "declared order, not filter order")

	_, _, err = release.Plan(root, t.TempDir(), []string{"nope"}, nil)
	require.ErrorIs(t, err, gen.ErrUnknownProfile)

	_, _, err = release.Plan(root, t.TempDir(), []string{"hello"}, []gen.Target{{OS: "linux", Arch: "s390x"}})
	require.ErrorIs(t, err, release.ErrBadPlatform)
	require.ErrorContains(t, err, "linux/s390x")
}

func TestBaseName(t *testing.T) {
	require.Equal(t, "workergen-hello-1.2.3-windows-arm64",
		release.BaseName("workergen-hello", "1.2.3", gen.Target{OS: "windows", Arch: "arm64"}))
}

func TestCommitTimeSourceDateEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	got, err := release.CommitTime(context.Background(), repoRoot(t))
	require.NoError(t, err)
	require.Equal(t, time.Unix(1700000000, 0).UTC(), got)

	t.Setenv("SOURCE_DATE_EPOCH", "0")
	got, err = release.CommitTime(context.Background(), repoRoot(t))
	require.NoError(t, err)
	require.Equal(t, time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC), got, "zip cannot date before 1980")

	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	_, err = release.CommitTime(context.Background(), repoRoot(t))
	require.Error(t, err)
}

func TestChecksums(t *testing.T) {
	sums := map[string]string{
		"b.zip":    strings.Repeat("b", 64),
		"a.tar.gz": strings.Repeat("a", 64),
	}
	data := release.Checksums(sums)
	require.Equal(t, strings.Repeat("a", 64)+"  a.tar.gz\n"+strings.Repeat("b", 64)+"  b.zip\n", string(data))
	back, err := release.ParseChecksums(data)
	require.NoError(t, err)
	require.Equal(t, sums, back)
	_, err = release.ParseChecksums([]byte("nothex  file\n"))
	require.Error(t, err)
}

// TestOutDirRefusesForeignFiles: Run clears its output directory, so it
// must refuse one that holds anything but release files.
func TestOutDirRefusesForeignFiles(t *testing.T) {
	out := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644))
	_, err := release.Run(context.Background(), release.Options{
		Root: repoRoot(t), DistDir: t.TempDir(), OutDir: out, Profiles: []string{"hello"},
		Platforms: []gen.Target{{OS: "linux", Arch: "amd64"}},
	})
	require.ErrorIs(t, err, release.ErrOutDir)
	_, err = os.Stat(filepath.Join(out, "notes.txt"))
	require.NoError(t, err, "foreign file kept")
}

// releaseTargets is the matrix of TestRelease: both archive kinds (a linux
// tar.gz and a windows zip) of the small hello profile, plus the host
// archive of linux-native for the acceptance check.
var releaseTargets = []gen.Target{{OS: "linux", Arch: "amd64"}, {OS: "windows", Arch: "amd64"}}

func runRelease(t *testing.T, dist, out string) (*release.Result, string) {
	t.Helper()
	st := getStamp(t)
	var progress bytes.Buffer
	res, err := release.Run(context.Background(), release.Options{
		Root:      repoRoot(t),
		DistDir:   dist,
		OutDir:    out,
		Profiles:  []string{"hello", "linux-native"},
		Platforms: releaseTargets,
		Version:   st.version,
		Commit:    st.commit,
		Epoch:     st.epoch,
		Progress:  &progress,
	})
	require.NoError(t, err, progress.String())
	return res, progress.String()
}

// TestRelease builds the same release twice into two folders and checks
// that every file is byte-identical, then checks what the release holds:
// SHA256SUMS, the manifest, the archives' entries and headers, the SBOMs,
// and (on linux/amd64) that the unpacked linux-native worker reports the
// manifest's version and runs the README's example task.
func TestRelease(t *testing.T) {
	first, second := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	// One dist folder for both: the binaries record the path of the
	// module replacement from there to the repository.
	distDir := t.TempDir()
	res, progress := runRelease(t, distDir, first)
	if os.Getenv("WORKERGEN_RELEASE_COLD") != "" {
		// Also prove the binaries do not depend on the build cache: the
		// second release compiles everything from scratch (slow).
		t.Setenv("GOCACHE", t.TempDir())
	}
	res2, _ := runRelease(t, distDir, second)

	t.Run("progress", func(t *testing.T) {
		for _, want := range []string{"start hello linux/amd64", "done  hello windows/amd64", "done  linux-native linux/amd64",
			"PROFILE", "3 targets: 3 released, 0 failed"} {
			require.Contains(t, progress, want)
		}
	})

	t.Run("reproducible", func(t *testing.T) {
		a, b := readTree(t, first), readTree(t, second)
		require.Equal(t, slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b)))
		for name, content := range a {
			require.True(t, bytes.Equal(content, b[name]), "%s differs between two builds of the same commit", name)
		}
		require.Equal(t, res.Manifest, res2.Manifest)
	})

	st := getStamp(t)
	files := readTree(t, first)

	t.Run("files", func(t *testing.T) {
		var names []string
		for n := range files {
			names = append(names, n)
		}
		slices.Sort(names)
		want := []string{release.ChecksumsFile, release.ManifestFile}
		for _, p := range []string{"workergen-hello", "workergen-linux-native"} {
			for _, tg := range releaseTargets {
				if p == "workergen-linux-native" && tg.OS != "linux" {
					continue
				}
				base := release.BaseName(p, st.version, tg)
				want = append(want, base+"."+string(release.KindFor(tg.OS)), base+".cdx.json")
			}
		}
		slices.Sort(want)
		require.Equal(t, want, names, "staging directory removed, nothing else written")
	})

	t.Run("sha256sum", func(t *testing.T) {
		sums, err := release.ParseChecksums(files[release.ChecksumsFile])
		require.NoError(t, err)
		require.Len(t, sums, len(files)-1, "every file but SHA256SUMS")
		for name, sum := range sums {
			require.Equal(t, sha256Hex(files[name]), sum, name)
		}
		if _, err := exec.LookPath("sha256sum"); err != nil {
			t.Skip("sha256sum not installed")
		}
		cmd := exec.Command("sha256sum", "-c", "--strict", release.ChecksumsFile)
		cmd.Dir = first
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
	})

	var m release.Manifest
	require.NoError(t, json.Unmarshal(files[release.ManifestFile], &m))

	t.Run("manifest", func(t *testing.T) {
		require.Equal(t, st.version, m.Version)
		require.Equal(t, st.commit, m.Commit)
		require.Equal(t, st.epoch.UTC().Format(time.RFC3339), m.CommitTime)
		require.Len(t, m.Profiles, 2)
		hello, native := m.Profiles[0], m.Profiles[1]
		require.Equal(t, "hello", hello.Name)
		require.Equal(t, "hello", hello.Engine)
		require.Empty(t, hello.Plugins)
		require.Len(t, hello.Targets, 2)
		require.Equal(t, "linux-native", native.Name)
		require.Equal(t, "native", native.Engine)
		p, err := gen.Resolve(repoRoot(t), "linux-native")
		require.NoError(t, err)
		var plugins []string
		for _, c := range p.Plugins {
			plugins = append(plugins, c.Name)
		}
		require.Equal(t, plugins, native.Plugins)
		for _, mp := range m.Profiles {
			require.Equal(t, st.version, mp.Version)
			require.Equal(t, st.commit, mp.Commit)
			for _, mt := range mp.Targets {
				require.Equal(t, int64(len(files[mt.Archive])), mt.Size, mt.Archive)
				require.Equal(t, sha256Hex(files[mt.Archive]), mt.SHA256, mt.Archive)
				require.Contains(t, files, mt.SBOM)
				require.True(t, strings.HasPrefix(mt.GoVersion, "go1."), mt.GoVersion)
			}
		}
	})

	t.Run("archives", func(t *testing.T) {
		for _, mp := range m.Profiles {
			for _, mt := range mp.Targets {
				tg := gen.Target{OS: mt.OS, Arch: mt.Arch}
				entries := readArchive(t, mt.Archive, files[mt.Archive], st.epoch)
				base := release.BaseName(mp.Binary, st.version, tg)
				exe := mp.Binary
				if tg.OS == "windows" {
					exe += ".exe"
				}
				var names []string
				for _, e := range entries {
					names = append(names, e.name)
				}
				require.Equal(t, []string{
					base + "/", base + "/LICENSE", base + "/README.md",
					base + "/config.defaults.json", base + "/config.schema.json",
					base + "/payload.md", base + "/payload.schema.json", base + "/profile.json", base + "/" + exe,
				}, names, "sorted entries below one top directory")
				for _, e := range entries {
					switch {
					case strings.HasSuffix(e.name, "/"):
						require.Equal(t, fs.FileMode(0o755), e.mode.Perm(), e.name)
					case strings.HasSuffix(e.name, "/"+exe):
						require.Equal(t, fs.FileMode(0o755), e.mode.Perm(), e.name)
						require.Equal(t, int64(len(e.content)), mt.BinarySize)
						require.Equal(t, sha256Hex(e.content), mt.BinarySHA256)
					default:
						require.Equal(t, fs.FileMode(0o644), e.mode.Perm(), e.name)
					}
				}
				dist := filepath.Join(distDir, mp.Name)
				for _, f := range []string{gen.ProfileFileName, gen.PayloadSchemaFile, gen.ConfigSchemaFile, gen.DefaultConfigFile, gen.PayloadDocFile} {
					want, err := os.ReadFile(filepath.Join(dist, f))
					require.NoError(t, err)
					require.Equal(t, string(want), string(entryContent(entries, base+"/"+f)), f)
				}
				license, err := os.ReadFile(filepath.Join(repoRoot(t), release.LicenseFile))
				require.NoError(t, err)
				require.Equal(t, license, entryContent(entries, base+"/LICENSE"))
				readme := string(entryContent(entries, base+"/README.md"))
				for _, want := range []string{mp.Binary, st.version, st.commit, mp.Name, mp.Engine, tg.String()} {
					require.Contains(t, readme, want)
				}
			}
		}
	})

	t.Run("sboms", func(t *testing.T) {
		schema := cdxSchema(t)
		for _, mp := range m.Profiles {
			for _, mt := range mp.Targets {
				validateSBOM(t, schema, files[mt.SBOM])
				entries := readArchive(t, mt.Archive, files[mt.Archive], st.epoch)
				bin := entries[len(entries)-1]
				require.Contains(t, bin.name, mp.Binary)
				binPath := filepath.Join(t.TempDir(), "bin")
				require.NoError(t, os.WriteFile(binPath, bin.content, 0o644))
				bi, err := release.ReadBuildInfo(binPath)
				require.NoError(t, err)
				want := []string{"std"}
				for _, d := range bi.Deps {
					d = release.ModuleUsed(d)
					want = append(want, d.Path+"@"+d.Version)
				}
				var doc struct {
					Metadata struct {
						Component struct {
							Name   string
							Hashes []struct{ Content string }
						}
					}
					Components []struct{ Name, Version string }
				}
				require.NoError(t, json.Unmarshal(files[mt.SBOM], &doc))
				var got []string
				for _, c := range doc.Components {
					if c.Name == "std" {
						got = append(got, "std")
						continue
					}
					got = append(got, c.Name+"@"+c.Version)
				}
				slices.Sort(want)
				slices.Sort(got)
				require.Equal(t, want, got, "%s lists exactly the linked modules", mt.SBOM)
				require.Equal(t, mp.Binary, doc.Metadata.Component.Name)
				require.Equal(t, mt.BinarySHA256, doc.Metadata.Component.Hashes[0].Content)
				if mp.Engine == "hello" {
					require.NotContains(t, got, "cuelang.org/go@v0.17.1", "build-time dependencies are not linked")
				}
			}
		}
	})

	t.Run("acceptance", func(t *testing.T) {
		if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
			t.Skip("the linux-native linux/amd64 worker runs only on linux/amd64")
		}
		native := m.Profiles[1]
		mt := native.Targets[0]
		require.Equal(t, "linux", mt.OS)
		dir := t.TempDir()
		untar(t, files[mt.Archive], dir)
		bin := filepath.Join(dir, release.BaseName(native.Binary, st.version, gen.Target{OS: "linux", Arch: "amd64"}), native.Binary)

		out, err := exec.Command(bin, "--version").CombinedOutput()
		require.NoError(t, err, string(out))
		want := native.Binary + " " + m.Version + "\n" +
			"commit: " + m.Commit + "\n" +
			"profile: " + native.Name + "\n" +
			"engine: " + native.Engine + "\n" +
			"plugins: " + strings.Join(native.Plugins, ", ") + "\n" +
			"components:\n"
		require.True(t, strings.HasPrefix(string(out), want), "--version:\n%s\nwant it to start with:\n%s", out, want)
		up, err := filepath.Rel(filepath.Join(distDir, "linux-native"), repoRoot(t))
		require.NoError(t, err)
		require.Regexp(t, `(?m)^  engine native\s+github.com/workergen/workergen/engines/native\s+github.com/workergen/workergen v\S+ => `+
			regexp.QuoteMeta(filepath.ToSlash(up))+`\s+workergen$`, string(out))

		cmd := exec.Command(bin, "run", "--output", filepath.Join(dir, "out"), filepath.Join(repoRoot(t), "examples", "hello-world.yml"))
		cmd.Dir = dir
		out, err = cmd.CombinedOutput()
		require.NoError(t, err, "run examples/hello-world.yml:\n%s", out)
		logs, err := filepath.Glob(filepath.Join(dir, "out", "task.log"))
		require.NoError(t, err)
		if len(logs) == 0 {
			logs, err = filepath.Glob(filepath.Join(dir, "out", "*", "task.log"))
			require.NoError(t, err)
		}
		require.NotEmpty(t, logs, "task.log written:\n%s", out)
		log, err := os.ReadFile(logs[0])
		require.NoError(t, err)
		require.Contains(t, string(log), "Hello from a generic-worker task")
	})
}

// TestFailedTargetKeepsGoing: a target whose build fails is named (profile
// and platform) in its progress line, the summary and the error; the other
// targets are still released and listed in the manifest.
func TestFailedTargetKeepsGoing(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("uses a shell script as the go command")
	}
	realGo, err := exec.LookPath("go")
	require.NoError(t, err)
	fakeGo := filepath.Join(t.TempDir(), "go")
	require.NoError(t, os.WriteFile(fakeGo, []byte("#!/bin/sh\n"+
		"if [ \"$GOARCH\" = arm64 ]; then echo 'fake go: no arm64 today' >&2; exit 1; fi\n"+
		"exec '"+realGo+"' \"$@\"\n"), 0o755))

	st := getStamp(t)
	out := t.TempDir()
	var progress bytes.Buffer
	res, err := release.Run(context.Background(), release.Options{
		Root: repoRoot(t), DistDir: t.TempDir(), OutDir: out, Profiles: []string{"hello"},
		Platforms: []gen.Target{{OS: "linux", Arch: "arm64"}, {OS: "linux", Arch: "amd64"}},
		Version:   st.version, Commit: st.commit, Epoch: st.epoch,
		Go: fakeGo, Progress: &progress,
	})
	require.ErrorIs(t, err, release.ErrTargetsFailed)
	require.ErrorIs(t, err, build.ErrBuild)
	require.ErrorContains(t, err, "profile hello target linux/arm64")
	require.ErrorContains(t, err, "no arm64 today")
	require.NotNil(t, res)
	require.Len(t, res.Failed(), 1)
	require.Equal(t, gen.Target{OS: "linux", Arch: "arm64"}, res.Failed()[0].Target)

	require.Regexp(t, `(?s)FAILED hello linux/arm64 after .*\n    fake go: no arm64 today`, progress.String())
	require.Regexp(t, `hello\s+linux/arm64\s+FAILED`, progress.String())
	require.Regexp(t, `hello\s+linux/amd64\s+ok`, progress.String())
	require.Contains(t, progress.String(), "2 targets: 1 released, 1 failed")

	require.Len(t, res.Manifest.Profiles, 1)
	require.Len(t, res.Manifest.Profiles[0].Targets, 1)
	require.Equal(t, "amd64", res.Manifest.Profiles[0].Targets[0].Arch)
	sums, err := os.ReadFile(filepath.Join(out, release.ChecksumsFile))
	require.NoError(t, err)
	require.Contains(t, string(sums), "linux-amd64.tar.gz")
	require.NotContains(t, string(sums), "arm64")
	_, err = os.Stat(filepath.Join(out, release.ManifestFile))
	require.NoError(t, err)
}

// TestMageRelease runs the README's command line, `go tool mage release
// profile=hello` with PLATFORMS, as an operator would.
func TestMageRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the magefile")
	}
	root := repoRoot(t)
	out := filepath.Join(t.TempDir(), "release")
	cmd := exec.Command("go", "tool", "mage", "release", "profile=hello")
	cmd.Dir = root
	// DIST_DIR: the generated module too stays out of the checkout.
	cmd.Env = append(os.Environ(), "PLATFORMS=linux/amd64", "RELEASE_DIR="+out, "DIST_DIR="+t.TempDir())
	output, err := cmd.CombinedOutput()
	require.NoError(t, err, string(output))
	require.Contains(t, string(output), "1 targets: 1 released, 0 failed")
	matches, err := filepath.Glob(filepath.Join(out, "workergen-hello-*-linux-amd64.tar.gz"))
	require.NoError(t, err)
	require.Len(t, matches, 1)

	// A typo in PLATFORMS fails before building anything.
	cmd = exec.Command("go", "tool", "mage", "release", "hello")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PLATFORMS=linux-amd64", "RELEASE_DIR="+out, "DIST_DIR="+t.TempDir())
	output, err = cmd.CombinedOutput()
	var exitErr *exec.ExitError
	require.True(t, errors.As(err, &exitErr), "exit non-zero: %v\n%s", err, output)
	require.Contains(t, string(output), "bad platform")
}

type archiveEntry struct {
	name    string
	mode    fs.FileMode
	content []byte
}

func entryContent(entries []archiveEntry, name string) []byte {
	for _, e := range entries {
		if e.name == name {
			return e.content
		}
	}
	return nil
}

// readArchive reads a release archive, checking the reproducibility
// properties of its headers on the way.
func readArchive(t *testing.T, name string, data []byte, epoch time.Time) []archiveEntry {
	t.Helper()
	var out []archiveEntry
	switch {
	case strings.HasSuffix(name, ".tar.gz"):
		gz, err := gzip.NewReader(bytes.NewReader(data))
		require.NoError(t, err)
		require.Empty(t, gz.Name, "gzip header name")
		require.True(t, gz.ModTime.IsZero(), "gzip header mtime")
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			require.Zero(t, h.Uid, h.Name)
			require.Zero(t, h.Gid, h.Name)
			require.Empty(t, h.Uname, h.Name)
			require.Empty(t, h.Gname, h.Name)
			require.True(t, h.ModTime.Equal(epoch), "%s mtime %s, want %s", h.Name, h.ModTime, epoch)
			content, err := io.ReadAll(tr)
			require.NoError(t, err)
			out = append(out, archiveEntry{name: h.Name, mode: h.FileInfo().Mode(), content: content})
		}
		require.NoError(t, gz.Close())
	case strings.HasSuffix(name, ".zip"):
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		require.NoError(t, err)
		for _, f := range zr.File {
			require.True(t, f.Modified.Equal(epoch), "%s mtime %s, want %s", f.Name, f.Modified, epoch)
			rc, err := f.Open()
			require.NoError(t, err)
			content, err := io.ReadAll(rc)
			require.NoError(t, err)
			require.NoError(t, rc.Close())
			out = append(out, archiveEntry{name: f.Name, mode: f.Mode(), content: content})
		}
	default:
		t.Fatalf("unknown archive kind: %s", name)
	}
	return out
}

func untar(t *testing.T, data []byte, dir string) {
	t.Helper()
	if _, err := exec.LookPath("tar"); err == nil {
		cmd := exec.Command("tar", "-xzf", "-", "-C", dir)
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		return
	}
	gz, err := gzip.NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		require.NoError(t, err)
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			require.NoError(t, os.MkdirAll(p, 0o755))
			continue
		}
		content, err := io.ReadAll(tr)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, content, h.FileInfo().Mode().Perm()))
	}
}

// readTree reads every file below dir by slash-separated relative path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	}))
	return files
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestPlanBrokenProfile: a profile that fails to generate is reported as a
// failed target of that profile and the others are still planned.
func TestPlanBrokenProfile(t *testing.T) {
	root := repoRoot(t)
	hello, err := os.ReadFile(filepath.Join(root, gen.ProfilesDir, "hello.cue"))
	require.NoError(t, err)
	broken := strings.Replace(string(hello), `name:`, `nmae:`, 1)
	broken = strings.Replace(broken, `"hello"`, `"broken"`, 1)
	brokenFile := filepath.Join(t.TempDir(), "broken.cue")
	require.NoError(t, os.WriteFile(brokenFile, []byte(broken), 0o644))

	jobs, failed, err := release.Plan(root, t.TempDir(), []string{"hello", brokenFile}, nil)
	require.NoError(t, err)
	require.Len(t, failed, 1)
	require.Equal(t, brokenFile, failed[0].Profile)
	require.ErrorIs(t, failed[0].Err, gen.ErrInvalidProfile)
	require.ErrorContains(t, failed[0].Err, "generating profile "+brokenFile)
	require.NotEmpty(t, jobs)
	for _, j := range jobs {
		require.Equal(t, "hello", j.Profile.Name)
	}
}

// TestBuildEnvIgnoresCaller: settings in the caller's environment that
// would change the binaries are overridden.
func TestBuildEnvIgnoresCaller(t *testing.T) {
	t.Setenv("GOAMD64", "v3")
	t.Setenv("GOFLAGS", "-tags=nonexistent_tag")
	st := getStamp(t)
	out := t.TempDir()
	res, err := release.Run(context.Background(), release.Options{
		Root: repoRoot(t), DistDir: t.TempDir(), OutDir: out, Profiles: []string{"hello"},
		Platforms: []gen.Target{{OS: "linux", Arch: "amd64"}},
		Version:   st.version, Commit: st.commit, Epoch: st.epoch,
	})
	require.NoError(t, err)
	var doc struct {
		Metadata struct {
			Component struct {
				Properties []struct{ Name, Value string }
			}
		}
	}
	sbom, err := os.ReadFile(filepath.Join(out, res.Targets[0].SBOM))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(sbom, &doc))
	props := map[string]string{}
	for _, p := range doc.Metadata.Component.Properties {
		props[p.Name] = p.Value
	}
	require.Equal(t, "v1", props["workergen:build:GOAMD64"])
	require.Equal(t, build.Tags, props["workergen:build:-tags"], "gen/build's tags only, not the caller's GOFLAGS")
}

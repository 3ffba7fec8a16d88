package release

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Names of the release-wide files in the output directory.
const (
	ManifestFile  = "manifest.json"
	ChecksumsFile = "SHA256SUMS"
)

// Manifest is manifest.json: what a release holds, per profile. It carries
// no build-machine details and no wall-clock time, so it is reproducible.
type Manifest struct {
	// Version is the release version ("1.2.3" on tag v1.2.3, else
	// "0.0.0-dev+<12 hex digits of the commit>").
	Version string `json:"version"`
	// Commit is the full commit id the release was built from.
	Commit string `json:"commit"`
	// CommitTime is the commit time (RFC 3339, UTC): every file time in the
	// archives and the SBOM timestamps.
	CommitTime string `json:"commitTime"`
	// Profiles in name order; only targets that built are listed.
	Profiles []ManifestProfile `json:"profiles"`
}

// ManifestProfile is one profile of a release.
type ManifestProfile struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Binary is the worker's file name inside its archives, without ".exe".
	Binary  string `json:"binary"`
	Dialect string `json:"dialect"`
	Version string `json:"version"`
	Commit  string `json:"commit"`
	// Engine is the engine kind ("native", "container", "hello").
	Engine string `json:"engine"`
	// Plugins are the linked plugins in stage order.
	Plugins []string `json:"plugins"`
	// Targets in the profile's declared order.
	Targets []ManifestTarget `json:"targets"`
}

// ManifestTarget is one archive of a release.
type ManifestTarget struct {
	OS   string `json:"os"`
	Arch string `json:"arch"`
	// Archive is the archive's file name in the release; Size its length
	// in bytes and SHA256 its hex digest.
	Archive string `json:"archive"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	// SBOM is the file name of the binary's CycloneDX SBOM.
	SBOM string `json:"sbom"`
	// BinarySize and BinarySHA256 describe the worker binary inside the
	// archive.
	BinarySize   int64  `json:"binarySize"`
	BinarySHA256 string `json:"binarySha256"`
	// GoVersion is the toolchain that built the binary (from its build
	// info).
	GoVersion string `json:"goVersion"`
}

// Marshal renders the manifest as indented JSON with a trailing newline.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", ManifestFile, err)
	}
	return append(b, '\n'), nil
}

// Checksums renders a SHA256SUMS file in the format `sha256sum -c`
// accepts: one "<hex digest><two spaces><file name>" line per file (text
// mode), sorted by file name. sums maps file names to hex digests.
func Checksums(sums map[string]string) []byte {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	slices.Sort(names)
	var b bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	return b.Bytes()
}

var checksumLine = regexp.MustCompile(`^([0-9a-f]{64}) [ *](.+)$`)

// ParseChecksums reads a SHA256SUMS file into file name -> hex digest.
func ParseChecksums(data []byte) (map[string]string, error) {
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		m := checksumLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("parsing %s line %d: %q is not \"<sha256>  <file>\"", ChecksumsFile, n, line)
		}
		sums[m[2]] = m[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", ChecksumsFile, err)
	}
	return sums, nil
}

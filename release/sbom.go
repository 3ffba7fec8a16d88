package release

import (
	"bytes"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/uuid"
)

// SBOMSpecVersion is the CycloneDX specification version of the SBOMs.
const SBOMSpecVersion = cdx.SpecVersion1_6

// sbomNamespace seeds the SBOM serial numbers: each is the name-based
// (SHA-1, version 5) UUID of "<sbomNamespace><sha256 of the binary>", so the
// same binary always gets the same serial number.
const sbomNamespace = "https://github.com/workergen/workergen/sbom/"

// SBOMInput describes the binary an SBOM is written for.
type SBOMInput struct {
	// Name is the binary's name inside its archive ("workergen-hello").
	Name string
	// Version is the release version ("1.2.3", "0.0.0-dev+0123abcd4567").
	Version string
	// SHA256 is the hex SHA-256 of the binary.
	SHA256 string
	// Time is the SBOM timestamp: the commit time, for reproducibility.
	Time time.Time
	// Profile, Engine and Plugins describe the worker; they become
	// properties of the SBOM's metadata component.
	Profile string
	Engine  string
	Plugins []string
	// Components are the engine and the plugins with their Go packages;
	// those from a third-party module are marked in the SBOM (see SBOM).
	Components []SBOMComponent
}

// SBOMComponent is a linked engine or plugin.
type SBOMComponent struct {
	// Kind is "engine" or "plugin"; Name its name; Import its Go package.
	Kind, Name, Import string
	// Module and Version are the third-party module providing it; empty
	// for a component of workergen's own module.
	Module, Version string
}

func (c SBOMComponent) String() string {
	s := c.Kind + " " + c.Name + " " + c.Import
	if c.Module != "" {
		s += " " + c.Module + "@" + c.Version + " third-party"
	}
	return s
}

// ModuleUsed returns the module a build info dependency was actually built
// from: its replacement when that is another module version, else d
// itself (a folder replacement has no version of its own: the SBOM lists
// the required version, and the folder in a property).
func ModuleUsed(d *debug.Module) *debug.Module {
	if r := d.Replace; r != nil && r.Version != "" && r.Version != "(devel)" {
		return r
	}
	return d
}

// ReadBuildInfo reads the Go build info embedded in the binary at path
// (debug/buildinfo; it survives -s -w).
func ReadBuildInfo(path string) (*debug.BuildInfo, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading build info of %s: %w", path, err)
	}
	return bi, nil
}

// SBOM returns a CycloneDX JSON document (spec SBOMSpecVersion, indented,
// trailing newline) for one binary: its metadata component is the worker
// (name, version, SHA-256, profile, engine, plugins, GOOS/GOARCH and the
// other build settings as properties); its components are the Go standard
// library and every module listed in the binary's build info (the modules
// that have packages linked into it; replacements by another module version
// are resolved to the module actually used, folder replacements keep the
// required version and name the folder in a "workergen:replace" property),
// sorted by module path. Every engine and plugin is a
// "workergen:component" property of the worker, and the module of a
// third-party one carries "workergen:third-party-component" properties. Module hashes are the
// SHA-256 behind go.sum's "h1:" digests, as cyclonedx-gomod reports them.
// The output is a function of its arguments: the timestamp is in.Time and
// the serial number is derived from in.SHA256.
func SBOM(in SBOMInput, bi *debug.BuildInfo) ([]byte, error) {
	goVersion, _, _ := strings.Cut(bi.GoVersion, " ")

	mainRef := purl(bi.Main.Path, "v"+in.Version)
	if bi.Main.Path == "" {
		mainRef = purl(in.Name, "v"+in.Version)
	}
	props := []cdx.Property{
		{Name: "workergen:profile", Value: in.Profile},
		{Name: "workergen:engine", Value: in.Engine},
		{Name: "workergen:plugins", Value: strings.Join(in.Plugins, ",")},
		{Name: "workergen:go", Value: bi.GoVersion},
	}
	thirdParty := map[string][]string{}
	for _, c := range in.Components {
		props = append(props, cdx.Property{Name: "workergen:component", Value: c.String()})
		if c.Module != "" {
			thirdParty[c.Module] = append(thirdParty[c.Module], c.Kind+" "+c.Name+" ("+c.Import+")")
		}
	}
	if bi.Main.Path != "" {
		props = append(props, cdx.Property{Name: "workergen:module", Value: bi.Main.Path})
	}
	for _, s := range bi.Settings {
		props = append(props, cdx.Property{Name: "workergen:build:" + s.Key, Value: s.Value})
	}
	worker := cdx.Component{
		BOMRef:     mainRef,
		Type:       cdx.ComponentTypeApplication,
		Name:       in.Name,
		Version:    in.Version,
		PackageURL: mainRef,
		Hashes:     &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: in.SHA256}},
		Properties: &props,
	}

	std := cdx.Component{
		BOMRef:     purl("std", goVersion),
		Type:       cdx.ComponentTypeLibrary,
		Name:       "std",
		Version:    goVersion,
		PackageURL: purl("std", goVersion),
		Scope:      cdx.ScopeRequired,
	}
	components := []cdx.Component{std}
	for _, dep := range bi.Deps {
		components = append(components, moduleComponent(dep, thirdParty))
	}
	slices.SortFunc(components, func(a, b cdx.Component) int { return strings.Compare(a.BOMRef, b.BOMRef) })
	components = slices.CompactFunc(components, func(a, b cdx.Component) bool { return a.BOMRef == b.BOMRef })

	refs := make([]string, len(components))
	deps := []cdx.Dependency{{Ref: mainRef, Dependencies: &refs}}
	for i, c := range components {
		refs[i] = c.BOMRef
		deps = append(deps, cdx.Dependency{Ref: c.BOMRef})
	}

	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + uuid.NewSHA1(uuid.NameSpaceURL, []byte(sbomNamespace+in.SHA256)).String()
	bom.Version = 1
	bom.Metadata = &cdx.Metadata{
		Timestamp: in.Time.UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type:    cdx.ComponentTypeApplication,
			Name:    "workergen release",
			Version: in.Version,
		}}},
		Component: &worker,
	}
	bom.Components = &components
	bom.Dependencies = &deps

	var buf bytes.Buffer
	enc := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON).SetPretty(true).SetEscapeHTML(false)
	if err := enc.EncodeVersion(bom, SBOMSpecVersion); err != nil {
		return nil, fmt.Errorf("encoding sbom of %s: %w", in.Name, err)
	}
	return buf.Bytes(), nil
}

// moduleComponent is the SBOM component of one build info dependency
// (see ModuleUsed), with a "workergen:replace" property for a folder
// replacement and a "workergen:third-party-component" property per entry
// of thirdParty (by module path).
func moduleComponent(dep *debug.Module, thirdParty map[string][]string) cdx.Component {
	d := ModuleUsed(dep)
	c := cdx.Component{
		BOMRef:     purl(d.Path, d.Version),
		Type:       cdx.ComponentTypeLibrary,
		Name:       d.Path,
		Version:    d.Version,
		PackageURL: purl(d.Path, d.Version),
		Scope:      cdx.ScopeRequired,
	}
	if h, ok := h1SHA256(d.Sum); ok {
		c.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: h}}
	}
	var props []cdx.Property
	if d == dep && dep.Replace != nil {
		props = append(props, cdx.Property{Name: "workergen:replace", Value: dep.Replace.Path})
	}
	for _, tp := range thirdParty[d.Path] {
		props = append(props, cdx.Property{Name: "workergen:third-party-component", Value: tp})
	}
	if props != nil {
		c.Properties = &props
	}
	return c
}

// purl is the package URL of a Go module version (purl-spec "golang" type;
// '+' in versions is percent-encoded).
func purl(module, version string) string {
	if version == "" {
		return "pkg:golang/" + module
	}
	return "pkg:golang/" + module + "@" + strings.ReplaceAll(version, "+", "%2B")
}

// h1SHA256 turns a go.sum "h1:<base64>" digest into lower-case hex.
func h1SHA256(sum string) (string, bool) {
	b64, ok := strings.CutPrefix(sum, "h1:")
	if !ok {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 32 {
		return "", false
	}
	return hex.EncodeToString(raw), true
}

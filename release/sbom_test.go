package release_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/release"
)

// testBuildInfo is the build info of a worker binary with two modules,
// one of them replaced (the format `go version -m` prints).
func testBuildInfo(t *testing.T) *debug.BuildInfo {
	bi, err := debug.ParseBuildInfo(strings.Join([]string{
		"go\tgo1.26.0",
		"path\tgithub.com/workergen/workergen/dist/test",
		"mod\tgithub.com/workergen/workergen\t(devel)\t",
		"dep\tgithub.com/cenkalti/backoff/v5\tv5.0.3\th1:ZN+IMa753KfX5hd8vVaMixjnqRZ3y8CuJKRKj1xcsSM=",
		"dep\tgolang.org/x/text\tv0.38.0",
		"=>\tgithub.com/fork/text\tv0.38.1-fix\th1:ZN+IMa753KfX5hd8vVaMixjnqRZ3y8CuJKRKj1xcsSM=",
		"build\t-trimpath=true",
		"build\tCGO_ENABLED=0",
		"build\tGOOS=linux",
		"build\tGOARCH=amd64",
		"",
	}, "\n"))
	require.NoError(t, err)
	return bi
}

func sbomInput() release.SBOMInput {
	return release.SBOMInput{
		Name: "workergen-test", Version: "1.2.3+x", SHA256: strings.Repeat("ab", 32),
		Time:    time.Date(2026, 11, 30, 1, 2, 3, 0, time.FixedZone("X", 3600)),
		Profile: "test", Engine: "mock", Plugins: []string{"env", "artifacts"},
	}
}

func TestSBOMContent(t *testing.T) {
	bi := testBuildInfo(t)
	data, err := release.SBOM(sbomInput(), bi)
	require.NoError(t, err)
	again, err := release.SBOM(sbomInput(), bi)
	require.NoError(t, err)
	require.Equal(t, data, again, "deterministic")

	var doc struct {
		BOMFormat    string `json:"bomFormat"`
		SpecVersion  string `json:"specVersion"`
		SerialNumber string `json:"serialNumber"`
		Metadata     struct {
			Timestamp string `json:"timestamp"`
			Component struct {
				Name    string `json:"name"`
				Version string `json:"version"`
				PURL    string `json:"purl"`
				Hashes  []struct{ Alg, Content string }
			} `json:"component"`
		} `json:"metadata"`
		Components []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			PURL    string `json:"purl"`
			Hashes  []struct{ Alg, Content string }
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(data, &doc))
	require.Equal(t, "CycloneDX", doc.BOMFormat)
	require.Equal(t, "1.6", doc.SpecVersion)
	require.Regexp(t, `^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, doc.SerialNumber)
	require.Equal(t, "2026-11-30T00:02:03Z", doc.Metadata.Timestamp, "commit time in UTC")
	require.Equal(t, "workergen-test", doc.Metadata.Component.Name)
	require.Equal(t, "1.2.3+x", doc.Metadata.Component.Version)
	require.Equal(t, "pkg:golang/"+bi.Main.Path+"@v1.2.3%2Bx", doc.Metadata.Component.PURL)
	require.Equal(t, strings.Repeat("ab", 32), doc.Metadata.Component.Hashes[0].Content)

	byName := map[string]int{}
	for i, c := range doc.Components {
		byName[c.Name] = i
	}
	require.Contains(t, byName, "std")
	for _, d := range bi.Deps {
		d = release.ModuleUsed(d)
		i, ok := byName[d.Path]
		require.True(t, ok, "module %s listed", d.Path)
		c := doc.Components[i]
		require.Equal(t, d.Version, c.Version)
		require.Equal(t, "pkg:golang/"+d.Path+"@"+d.Version, c.PURL)
		if d.Sum != "" {
			require.Len(t, c.Hashes, 1, d.Path)
			require.Equal(t, "SHA-256", c.Hashes[0].Alg)
			require.Regexp(t, `^[0-9a-f]{64}$`, c.Hashes[0].Content)
		}
	}
	require.Len(t, doc.Components, len(bi.Deps)+1)

	other := sbomInput()
	other.SHA256 = strings.Repeat("cd", 32)
	data2, err := release.SBOM(other, bi)
	require.NoError(t, err)
	var doc2 struct{ SerialNumber string }
	require.NoError(t, json.Unmarshal(data2, &doc2))
	require.NotEqual(t, doc.SerialNumber, doc2.SerialNumber, "serial number derived from the binary")
}

// cdxSchema compiles the CycloneDX 1.6 JSON Schema shipped in the
// cyclonedx-go module.
func cdxSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/CycloneDX/cyclonedx-go")
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	require.NoError(t, err)
	dir := filepath.Join(strings.TrimSpace(string(out)), "schema")

	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for url, file := range map[string]string{
		"http://cyclonedx.org/schema/bom-1.6.schema.json":  "bom-1.6.schema.json",
		"http://cyclonedx.org/schema/spdx.schema.json":     "spdx.schema.json",
		"http://cyclonedx.org/schema/jsf-0.82.schema.json": "jsf-0.82.schemax.json",
	} {
		f, err := os.Open(filepath.Join(dir, file))
		require.NoError(t, err)
		doc, err := jsonschema.UnmarshalJSON(f)
		require.NoError(t, f.Close())
		require.NoError(t, err, file)
		require.NoError(t, c.AddResource(url, doc))
	}
	schema, err := c.Compile("http://cyclonedx.org/schema/bom-1.6.schema.json")
	require.NoError(t, err)
	return schema
}

func validateSBOM(t *testing.T, schema *jsonschema.Schema, data []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	require.NoError(t, err)
	require.NoError(t, schema.Validate(inst))
}

// TestSBOMSchema validates an SBOM against the CycloneDX 1.6 JSON Schema.
func TestSBOMSchema(t *testing.T) {
	schema := cdxSchema(t)
	data, err := release.SBOM(sbomInput(), testBuildInfo(t))
	require.NoError(t, err)
	validateSBOM(t, schema, data)
}

// A folder-replaced module keeps its required version (the folder is a
// property); every component is listed on the worker, and the module of a
// third-party one is marked.
func TestSBOMThirdParty(t *testing.T) {
	bi, err := debug.ParseBuildInfo(strings.Join([]string{
		"go\tgo1.26.0",
		"path\tgithub.com/workergen/workergen/dist/linux-stamp",
		"mod\tgithub.com/workergen/workergen/dist/linux-stamp\t(devel)\t",
		"dep\texample.com/tcstamp\tv1.2.0",
		"=>\t../../examples/thirdparty\t(devel)\t",
		"dep\tgithub.com/workergen/workergen\tv0.0.0-20260101000000-0123456789ab",
		"=>\t../..\t(devel)\t",
		"",
	}, "\n"))
	require.NoError(t, err)
	in := sbomInput()
	in.Components = []release.SBOMComponent{
		{Kind: "engine", Name: "native", Import: "github.com/workergen/workergen/engines/native"},
		{Kind: "plugin", Name: "stamp", Import: "example.com/tcstamp/stamp", Module: "example.com/tcstamp", Version: "v1.2.0"},
	}
	data, err := release.SBOM(in, bi)
	require.NoError(t, err)
	validateSBOM(t, cdxSchema(t), data)
	var doc struct {
		Metadata struct {
			Component struct {
				Properties []struct{ Name, Value string }
			}
		}
		Components []struct {
			Name, Version, PURL string
			Properties          []struct{ Name, Value string }
		}
	}
	require.NoError(t, json.Unmarshal(data, &doc))
	props := map[string][]string{}
	for _, c := range doc.Components {
		for _, p := range c.Properties {
			props[c.Name+"@"+c.Version] = append(props[c.Name+"@"+c.Version], p.Name+"="+p.Value)
		}
	}
	require.Equal(t, map[string][]string{
		"example.com/tcstamp@v1.2.0":                                        {"workergen:replace=../../examples/thirdparty", "workergen:third-party-component=plugin stamp (example.com/tcstamp/stamp)"},
		"github.com/workergen/workergen@v0.0.0-20260101000000-0123456789ab": {"workergen:replace=../.."},
	}, props)
	var comps []string
	for _, p := range doc.Metadata.Component.Properties {
		if p.Name == "workergen:component" {
			comps = append(comps, p.Value)
		}
	}
	require.Equal(t, []string{"engine native github.com/workergen/workergen/engines/native",
		"plugin stamp example.com/tcstamp/stamp example.com/tcstamp@v1.2.0 third-party"}, comps)
}

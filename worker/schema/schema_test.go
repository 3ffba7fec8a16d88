package schema

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJSONPath(t *testing.T) {
	assert.Equal(t, `.command[0][1]`, JSONPath([]string{"command", "0", "1"}))
	assert.Equal(t, `.env["A B"]`, JSONPath([]string{"env", "A B"}))
}

func TestValidateMergesTypeErrors(t *testing.T) {
	sch, err := Compile("s.json", []byte(`{"properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "number"}]}}}`))
	require.NoError(t, err)
	problems := sch.Validate("config", []byte(`{"n": "x"}`))
	require.Len(t, problems, 1, "%q", problems)
}

func TestValidateExplainsEmptySections(t *testing.T) {
	sch, err := Compile("s.json", []byte(`{"properties": {"exitstatus": {"const": {}}}}`))
	require.NoError(t, err)
	problems := sch.Validate("config.plugins", []byte(`{"exitstatus": {"bogus": 1}}`))
	assert.Equal(t, []string{`config.plugins.exitstatus: takes no settings; remove "bogus"`}, problems)
}

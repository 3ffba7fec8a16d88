package suggest

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type inner struct {
	ListenAddress string `json:"listenAddress"`
}

type embedded struct {
	CachesDir string `json:"cachesDir,omitempty"`
}

type sample struct {
	embedded
	MinFreeBytes *int64  `json:"minFreeBytes,omitempty"`
	Live         *inner  `json:"liveLog"`
	Items        []inner `json:"items"`
	Skipped      string  `json:"-"`
	Plain        int
}

func strictDecode(doc string, v any) error {
	dec := json.NewDecoder(bytes.NewReader([]byte(doc)))
	dec.DisallowUnknownFields()
	return UnknownField(dec.Decode(v), v)
}

func TestUnknownField(t *testing.T) {
	assert.Equal(t, []string{"Plain", "cachesDir", "items", "listenAddress", "liveLog", "minFreeBytes"}, JSONFieldNames(reflect.TypeOf(&sample{})))
	var s sample
	err := strictDecode(`{"minFreeByte": 1}`, &s)
	require.Error(t, err)
	assert.Equal(t, `unknown field "minFreeByte"; did you mean "minFreeBytes"?`, err.Error())
	assert.Contains(t, errors.Unwrap(err).Error(), `json: unknown field "minFreeByte"`, "wraps encoding/json's error")
	assert.EqualError(t, strictDecode(`{"liveLog": {"listenAdress": ":1"}}`, &s), `unknown field "listenAdress"; did you mean "listenAddress"?`, "nested objects too")
	assert.EqualError(t, strictDecode(`{"zzzzzzzzzz": 1}`, &s), `json: unknown field "zzzzzzzzzz"`, "nothing near: unchanged")
	assert.EqualError(t, strictDecode(`{"minFreeBytes": "x"}`, &s), `json: cannot unmarshal string into Go struct field sample.minFreeBytes of type int64`, "other errors unchanged")
	assert.NoError(t, UnknownField(nil, &s))
}

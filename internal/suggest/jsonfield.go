package suggest

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// UnknownField adds a did-you-mean to the error encoding/json returns for
// an unknown key when decoding with DisallowUnknownFields (`json: unknown
// field "minFreeByte"`): `unknown field "minFreeByte"; did you mean
// "minFreeBytes"?`, the nearest JSON field name (Closest) anywhere in v's
// type (its struct fields by their json tags, nested structs, pointers,
// slices and maps included), since encoding/json does not say which
// object held the key. Other errors, and unknown fields nothing is near,
// are returned unchanged. The result wraps err.
func UnknownField(err error, v any) error {
	if err == nil {
		return nil
	}
	const prefix = `json: unknown field "`
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) || !strings.HasSuffix(msg, `"`) {
		return err
	}
	bad := strings.TrimSuffix(strings.TrimPrefix(msg, prefix), `"`)
	best := Closest(bad, JSONFieldNames(reflect.TypeOf(v)))
	if best == "" {
		return err
	}
	return &unknownFieldError{err: err, msg: fmt.Sprintf("unknown field %q; did you mean %q?", bad, best)}
}

type unknownFieldError struct {
	err error
	msg string
}

func (e *unknownFieldError) Error() string { return e.msg }
func (e *unknownFieldError) Unwrap() error { return e.err }

// JSONFieldNames returns the JSON object keys encoding/json decodes into t
// and the types inside it, sorted and de-duplicated.
func JSONFieldNames(t reflect.Type) []string {
	var names []string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for f := range t.Fields() {
			tag := f.Tag.Get("json")
			if tag == "-" || (!f.IsExported() && !f.Anonymous) {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				walk(f.Type) // promoted fields
				continue
			}
			if name == "" {
				name = f.Name
			}
			names = append(names, name)
			walk(f.Type)
		}
	}
	walk(t)
	slices.Sort(names)
	return slices.Compact(names)
}

package gen

import "testing"

func TestReflow(t *testing.T) {
	for in, want := range map[string]string{
		"capacity is how many tasks\nrun at once.":                "capacity is how many tasks run at once.",
		"One paragraph\nwrapped.\n\nAnother one.":                 "One paragraph wrapped.\n\nAnother one.",
		"Forms:\n- a file\n- a directory\nwrapped on":             "Forms:\n- a file\n- a directory wrapped on",
		"Example:\n    {\"a\": 1}\nafter":                         "Example:\n    {\"a\": 1} after",
		"trailing spaces  \ngo  ":                                 "trailing spaces go",
		"\"quoted\" text stays \"as is\"\nwith `code` and <name>": "\"quoted\" text stays \"as is\" with `code` and <name>",
	} {
		if got := reflow(in); got != want {
			t.Errorf("reflow(%q) = %q, want %q", in, got, want)
		}
	}
}

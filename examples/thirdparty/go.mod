module example.com/tcstamp

go 1.26.0

require (
	github.com/stretchr/testify v1.12.1
	github.com/workergen/workergen v0.0.0-00010101000000-000000000000
)

require (
	github.com/agnivade/levenshtein v1.2.2 // indirect
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/text v0.43.0 // indirect
)

// Developed inside workergen's repository: use the folder two levels up.
// A plugin in its own repository requires a released workergen instead.
replace github.com/workergen/workergen => ../..

package gwconfig

import "strings"

// Kind is the JSON type a key's value must have.
type Kind int

const (
	String Kind = iota // a JSON string
	Bool               // true or false
	Int                // an integer within the key's Min and Max
	Object             // a JSON object
	IP                 // a string holding an IPv4 or IPv6 address
	URL                // a string holding an http(s) URL
	Any                // anything (only checked to be JSON)
)

func (k Kind) String() string {
	return [...]string{"a string", "a boolean", "an integer", "an object", "an IP address", "an http(s) URL", "any value"}[k]
}

// Key is one generic-worker config key: its name as usage.mdx spells it,
// the type of its value, and what it means to workergen. Target is the
// workergen config path it sets ("credentials.clientId",
// "plugins.mounts.cachesDir"), "location" for the keys kept in Location,
// or "" for a key workergen recognises but has no meaning for (Note says
// why; loading warns about it once).
type Key struct {
	Name     string
	Kind     Kind
	Min, Max int64 // bounds of an Int (inclusive)
	Target   string
	Note     string
}

// Targets that are not plain copies into the workergen config.
const (
	targetLocation   = "location"
	targetPoolPart   = "pool-part" // provisionerId, workerType: see pool
	noMeaningFeature = "workergen's features are the profile's plugins; there is no switch to turn one off"
)

const maxInt = 1<<53 - 1

// Keys is every key of generic-worker's config file (usage.mdx, "Configuring
// the generic worker"), plus workerPoolId (the pool as one key) and
// workerTypeMetadata (the spelling worker-runner writes). Keys match
// case-insensitively, as generic-worker's JSON decoding does.
var Keys = []Key{
	{Name: "accessToken", Kind: String, Target: "credentials.accessToken"},
	{Name: "allowedHighMemoryDurationSecs", Kind: Int, Max: maxInt, Target: "engine.allowedHighMemoryDurationSecs"},
	{Name: "availabilityZone", Kind: String, Target: targetLocation},
	{Name: "cachesDir", Kind: String, Target: "plugins.mounts.cachesDir"},
	{Name: "capacity", Kind: Int, Min: 1, Max: 255, Target: "capacity"},
	{Name: "certificate", Kind: String, Target: "credentials.certificate"},
	{Name: "cleanUpTaskDirs", Kind: Bool, Note: "task directories are always removed after the run"},
	{Name: "clientId", Kind: String, Target: "credentials.clientId"},
	{Name: "createObjectArtifacts", Kind: Bool, Target: "artifactUpload"},
	{Name: "d2gConfig", Kind: Object, Note: "workergen has no docker-worker-to-generic-worker translation; a profile with the docker-worker dialect runs those payloads itself"},
	{Name: "disableNativePayloads", Kind: Bool, Note: "the payload dialect is the profile's"},
	{Name: "disableOOMProtection", Kind: Bool, Target: "engine.disableOOMProtection"},
	{Name: "disableReboots", Kind: Bool, Note: "workergen never reboots the machine"},
	{Name: "downloadsDir", Kind: String, Target: "plugins.mounts.downloadsDir"},
	{Name: "ed25519SigningKeyLocation", Kind: String, Target: "plugins.chainoftrust.ed25519SigningKeyLocation"},
	{Name: "enableChainOfTrust", Kind: Bool, Note: noMeaningFeature},
	{Name: "enableInteractive", Kind: Bool, Target: "plugins.interactive.enable"},
	{Name: "enableLiveLog", Kind: Bool, Note: noMeaningFeature},
	{Name: "enableLoopbackAudio", Kind: Bool, Note: noMeaningFeature},
	{Name: "enableLoopbackVideo", Kind: Bool, Note: noMeaningFeature},
	{Name: "enableMetadata", Kind: Bool, Note: "workergen writes no generic-worker-metadata.json"},
	{Name: "enableMounts", Kind: Bool, Note: noMeaningFeature},
	{Name: "enableOSGroups", Kind: Bool, Note: "the groups tasks may join are the native engine's osGroups list (empty: none)"},
	{Name: "enableResourceMonitor", Kind: Bool, Target: "engine.enableResourceMonitor"},
	{Name: "enableRunTaskAsCurrentUser", Kind: Bool, Target: "engine.enableRunTaskAsCurrentUser"},
	{Name: "enableTaskclusterProxy", Kind: Bool, Note: noMeaningFeature},
	{Name: "headlessTasks", Kind: Bool, Note: "workergen runs no graphical sessions: multiuser tasks are always headless"},
	{Name: "idleTimeoutSecs", Kind: Int, Max: maxInt, Target: "idleTimeout"},
	{Name: "instanceID", Kind: String, Target: targetLocation},
	{Name: "instanceType", Kind: String, Target: targetLocation},
	{Name: "interactivePort", Kind: Int, Max: 65535, Target: "plugins.interactive.port"},
	{Name: "livelogExecutable", Kind: String, Note: "the live log is served by the worker itself"},
	{Name: "livelogExposePort", Kind: Int, Max: 65535, Target: "plugins.tasklog.liveLog"},
	{Name: "livelogPortBase", Kind: Int, Max: 65534, Note: "the live log is served by the worker itself, on livelogExposePort"},
	{Name: "loopbackAudioDeviceNumber", Kind: Int, Max: 31, Note: "workergen has no loopback audio devices"},
	{Name: "loopbackVideoDeviceNumber", Kind: Int, Max: 255, Note: "workergen has no loopback video devices"},
	{Name: "maxMemoryUsagePercent", Kind: Int, Max: 100, Target: "engine.maxMemoryUsagePercent"},
	{Name: "maxTaskRunTime", Kind: Int, Min: 1, Max: maxInt, Target: "maxTaskRunTime"},
	{Name: "minAvailableMemoryBytes", Kind: Int, Max: maxInt, Target: "engine.minAvailableMemoryBytes"},
	{Name: "numberOfTasksToRun", Kind: Int, Max: maxInt, Target: "numberOfTasksToRun"},
	{Name: "privateIP", Kind: IP, Target: targetLocation},
	{Name: "provisionerId", Kind: String, Target: targetPoolPart},
	{Name: "publicIP", Kind: IP, Target: targetLocation},
	{Name: "region", Kind: String, Target: targetLocation},
	{Name: "requiredDiskSpaceMegabytes", Kind: Int, Max: maxInt >> 20, Target: "plugins.mounts.minFreeBytes"},
	{Name: "rootURL", Kind: URL, Target: "rootUrl"},
	{Name: "runAfterUserCreation", Kind: String, Note: "workergen creates no task users"},
	{Name: "sentryProject", Kind: String, Note: "workergen reports no crashes to Sentry"},
	{Name: "shutdownMachineOnIdle", Kind: Bool, Note: "workergen exits on idle but never shuts the machine down"},
	{Name: "shutdownMachineOnInternalError", Kind: Bool, Note: "workergen exits on internal errors but never shuts the machine down"},
	{Name: "taskclusterProxyExecutable", Kind: String, Note: "the proxy is built into the worker"},
	{Name: "taskclusterProxyPort", Kind: Int, Max: 65535, Note: "each run gets its own loopback proxy port (plugins.taskclusterproxy.port is the docker-worker dialect's port inside containers, another thing)"},
	{Name: "tasksDir", Kind: String, Target: "tasksDir"},
	{Name: "workerGroup", Kind: String, Target: "workerGroup"},
	{Name: "workerId", Kind: String, Target: "workerId"},
	{Name: "workerLocation", Kind: String, Target: targetLocation},
	{Name: "workerPoolId", Kind: String, Target: "workerPoolId"},
	{Name: "workerType", Kind: String, Target: targetPoolPart},
	{Name: "workerTypeMetaData", Kind: Object, Target: targetLocation},
	{Name: "workerTypeMetadata", Kind: Object, Target: targetLocation},
	{Name: "wstAudience", Kind: String, Note: "workergen has no websocktunnel client"},
	{Name: "wstServerURL", Kind: String, Note: "workergen has no websocktunnel client"},
}

// Required are the keys generic-worker requires that workergen needs too
// (ed25519SigningKeyLocation, also required by generic-worker, is needed
// only by tasks asking for chain of trust, which are malformed-payload
// without it). workerType may be replaced by workerPoolId.
var Required = []string{"accessToken", "clientId", "rootURL", "workerId", "workerType"}

// keyByName finds a key by exact name, then case-insensitively; the
// second result is false when there is none.
func keyByName(name string) (Key, bool) {
	for _, k := range Keys {
		if k.Name == name {
			return k, true
		}
	}
	for _, k := range Keys {
		if equalFold(k.Name, name) {
			return k, true
		}
	}
	return Key{}, false
}

func equalFold(a, b string) bool { return strings.EqualFold(a, b) }

// MarkdownTable renders Keys as a Markdown table (generic-worker key,
// value, workergen meaning) for the README.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| generic-worker key | value | workergen |\n|---|---|---|\n")
	for _, k := range Keys {
		meaning := "`" + k.Target + "`"
		switch k.Target {
		case "":
			meaning = "none: " + k.Note
		case targetLocation:
			meaning = "worker location (kept for chain of trust)"
		case targetPoolPart:
			meaning = "`workerPoolId` (`<provisionerId>/<workerType>`)"
		}
		switch k.Name {
		case "createObjectArtifacts":
			meaning = "`artifactUpload`: `\"object\"` when true, `\"s3\"` when false"
		case "requiredDiskSpaceMegabytes":
			meaning = "`plugins.mounts.minFreeBytes` (× 2^20)"
		case "livelogExposePort":
			meaning = "`plugins.tasklog.liveLog`: listenAddress `:<port>`, publicURL `http://<publicIP>:<port>`"
		}
		b.WriteString("| `" + k.Name + "` | " + k.Kind.String() + " | " + meaning + " |\n")
	}
	return b.String()
}

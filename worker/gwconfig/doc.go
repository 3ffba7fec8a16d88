// Package gwconfig loads generic-worker's config file, the JSON object
// worker-runner writes for `implementation: generic-worker`
// (references/worker-runner/workers.mdx, worker-configuration.mdx; every key
// is described in references/generic-worker/usage.mdx), and says what it
// means to workergen.
//
// Keys is the table of every key: the workergen config field it sets
// (Key.Target), the Location field it fills, or no meaning (Key.Note says
// why). Parse (or Load) checks each key's JSON type, range and form,
// returning an error naming every bad key, unknown keys with a did-you-mean;
// it returns a Config holding
//
//   - Document, a workergen config document in workergen's own shape, to be
//     merged over the profile's defaults and validated like any workergen
//     config file;
//   - Location, where the worker runs (publicIP, privateIP, instanceType,
//     instanceID, region, availabilityZone, workerLocation,
//     workerTypeMetadata), for the worker to expose (chain of trust and
//     task environments will need it);
//   - Ignored, the keys present without meaning, for one warning each
//     (Warnings, LogWarnings).
//
// Defaults are workergen's, not generic-worker's, except provisionerId
// ("test-provisioner" when only workerType is given) and workerGroup
// ("test-worker-group"): a generic-worker file names its worker as
// generic-worker would.
package gwconfig

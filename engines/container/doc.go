// Package container is the container engine: it runs docker-worker tasks
// (payload schema docker-worker/v1/payload.json, upstream
// taskcluster/schemas/docker-worker/v1/payload.json) unchanged, each in a
// container started through the Docker Engine API, against Podman's API
// service or a Docker daemon. One engine serves both the linux-docker and
// linux-podman profiles; they differ in config defaults only (the socket).
//
// # Payload fields the engine owns
//
//   - image: a registry reference string, {type: docker-image, name},
//     {type: indexed-image, namespace, path} or {type: task-image, taskId,
//     path}. References are pulled with a time limit (config pullTimeout);
//     an image the registry does not have or refuses (not found,
//     unauthorized, denied) is malformed-payload, trouble reaching it is
//     resource-unavailable. Indexed and task images are downloaded through
//     the run's task.Context Queue (the deployment's Index and Queue,
//     signed with the task's credentials), decompressed (.tar,
//     .tar.gz, .tar.zst, .tar.lz4 by content), loaded with the image-load
//     API, tagged locally so a later task reuses them, and referred to by
//     image ID.
//   - command: the container's command (the image's CMD when empty).
//   - cache: map cache name -> mount path, each a named volume that at most
//     one running task uses at a time (a second concurrent task gets another
//     instance). Scope docker-worker:cache:<name> is required. Caches are
//     purged (volume removed) after a run the worker killed and when a plugin
//     stores true under task.PurgeCachesKey (onExitStatus.purgeCaches).
//   - capabilities.privileged, capabilities.devices.{kvm, hostSharedMemory,
//     loopbackAudio, loopbackVideo}, capabilities.disableSeccomp and
//     features.allowPtrace: allowed only when the engine config allows them
//     and the task has the docker-worker scope for them
//     (docker-worker:capability:privileged,
//     docker-worker:capability:device:<device>,
//     docker-worker:capability:disableSeccomp,
//     docker-worker:feature:allowPtrace; each also accepted with
//     ":<workerPoolId>" appended, and through the task's roles: see
//     task.Context.HasScopes); otherwise malformed-payload naming the
//     field and the scope. allowPtrace is allowed by default, as in
//     docker-worker; the others are off by default.
//
// Other docker-worker fields (env, maxRunTime, artifacts, onExitStatus, log,
// the other features) belong to plugins, which reach the engine through the
// SandboxBuilder (SetEnv), the Sandbox (Kill) and the ResultSet
// (ExtractFile, ExtractFolder).
//
// # Containers
//
// The task's output (stdout and stderr, multiplexed unless config tty is
// set) is attached before the container starts and copied into the task log
// as it comes. The exit code and the OOM flag come from the container state;
// a run the worker killed reports Killed and never OOM. Files are extracted
// from the stopped container through the archive API as tar streams, without
// holding files in memory.
//
// Every container and volume the engine creates carries the labels
// LabelManaged, LabelWorkerPoolID, LabelWorkerGroup, LabelWorkerID and (for
// containers and per-run volumes) LabelTaskID and LabelRunID. At start-up New
// removes the containers a previous process of the same worker left behind
// and purges the caches they had mounted.
//
// # Docker and Podman
//
// The engine tells the daemons apart by their version answer (Daemon) and
// handles where they differ: the worker host's address on a network whose
// IPAM config states no gateway (Docker 20.10's fresh default bridge; see
// HostAddress); a configured network the daemon lacks is created; stdout
// and stderr, which Docker copies apart, may interleave out of order (use
// config tty for one stream); allowPrivileged on a local Docker daemon that
// cannot start privileged containers (its capability bounding set lacks
// one the kernel has) is refused at start naming the daemon.
package container

#!/usr/bin/env bash
# Sets up what the container engine's tests need, on a Debian (bookworm)
# machine, without the internet (Debian mirror only):
#
#   - Podman 4.3 with runc as OCI runtime (crun fails on this kind of machine)
#     and cgroupfs as cgroup manager (no systemd);
#   - `podman system service` serving the Docker Engine API on
#     unix:///run/workergen-podman.sock;
#   - a Docker registry (Debian's docker-registry, distribution v2) listening
#     on 127.0.0.1:5000 only, plain HTTP, declared insecure to Podman;
#   - a busybox image built locally from busybox-static, pushed to that
#     registry as localhost:5000/workergen/busybox:latest.
#
# Idempotent: running it again leaves a working set-up and restarts nothing
# that already answers. Prints the environment tests read, also written to
# /run/workergen-podman.env:
#
#   WORKERGEN_PODMAN_SOCKET   unix:///run/workergen-podman.sock
#   WORKERGEN_TEST_REGISTRY   localhost:5000
#   WORKERGEN_TEST_IMAGE      localhost:5000/workergen/busybox:latest
set -euo pipefail

SOCK_PATH=/run/workergen-podman.sock
SOCK="unix://${SOCK_PATH}"
REGISTRY=localhost:5000
IMAGE="${REGISTRY}/workergen/busybox:latest"
STATE=/var/lib/workergen-ci
LOGDIR=/var/log/workergen-ci
mkdir -p "$STATE" "$LOGDIR"

log() { echo "podman-setup: $*" >&2; }

# --- packages ---------------------------------------------------------------
need=()
for p in podman runc busybox-static docker-registry; do
	dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts the packaged registry (on :5000, all interfaces) where a
# service manager runs; we want ours on loopback only.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q docker-registry 2>/dev/null; then
	systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# --- Podman configuration ---------------------------------------------------
# Podman's default rlimits for containers (nofile 1048576, nproc as high as
# the service's own) exceed what an unprivileged-in-disguise CI root may set
# (no CAP_SYS_RESOURCE): runc then fails with "error setting rlimit type 7".
# Default to what this shell may hold, capped like Podman caps itself.
hn=$(ulimit -Hn); [ "$hn" = unlimited ] && hn=1048576; ((hn > 1048576)) && hn=1048576
hu=$(ulimit -Hu); [ "$hu" = unlimited ] && hu=32768; ((hu > 32768)) && hu=32768
mkdir -p /etc/containers/containers.conf.d /etc/containers/registries.conf.d
conf_changed=0
write_conf() { # path; content on stdin; sets conf_changed when it differs
	local tmp
	tmp=$(mktemp)
	cat >"$tmp"
	if ! cmp -s "$tmp" "$1"; then
		mv "$tmp" "$1"
		conf_changed=1
	else
		rm -f "$tmp"
	fi
}
write_conf /etc/containers/containers.conf.d/50-workergen.conf <<CONF
# Written by workergen .ci/podman-setup.sh.
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[containers]
log_driver = "k8s-file"
default_ulimits = ["nofile=${hn}:${hn}", "nproc=${hu}:${hu}"]
CONF
write_conf /etc/containers/registries.conf.d/50-workergen.conf <<CONF
# Written by workergen .ci/podman-setup.sh: the loopback test registry speaks
# plain HTTP.
[[registry]]
location = "${REGISTRY}"
insecure = true
CONF

# --- registry on loopback ---------------------------------------------------
mkdir -p /etc/workergen "$STATE/registry"
cat >/etc/workergen/registry.yml <<CONF
# Written by workergen .ci/podman-setup.sh: distribution v2 registry for tests,
# loopback only, no auth.
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${STATE}/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
CONF
registry_up() { curl -fsS -m 2 "http://127.0.0.1:5000/v2/" >/dev/null 2>&1; }
if ! registry_up; then
	log "starting docker-registry on 127.0.0.1:5000"
	nohup docker-registry serve /etc/workergen/registry.yml >>"$LOGDIR/registry.log" 2>&1 &
	echo $! >"$STATE/registry.pid"
	for _ in $(seq 1 100); do registry_up && break; sleep 0.1; done
	registry_up || { log "registry did not come up; see $LOGDIR/registry.log"; exit 1; }
fi

# --- Podman API service -----------------------------------------------------
service_up() { curl -fsS -m 5 --unix-socket "$SOCK_PATH" http://d/_ping >/dev/null 2>&1; }
if [ "$conf_changed" = 1 ] && [ -f "$STATE/podman-service.pid" ]; then
	pid=$(cat "$STATE/podman-service.pid")
	if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "system service"; then
		log "configuration changed: restarting podman service (pid $pid)"
		kill "$pid" || true
		for _ in $(seq 1 100); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
	fi
fi
if ! service_up; then
	log "starting podman system service on $SOCK"
	rm -f "$SOCK_PATH"
	# conmon writes an "oom" marker file into its working directory when a
	# container hits its memory limit: keep that out of the caller's tree.
	mkdir -p "$STATE/service-cwd"
	(cd "$STATE/service-cwd" && exec nohup podman system service --time=0 "$SOCK" >>"$LOGDIR/podman-service.log" 2>&1) &
	echo $! >"$STATE/podman-service.pid"
	for _ in $(seq 1 200); do service_up && break; sleep 0.1; done
	service_up || { log "podman service did not come up; see $LOGDIR/podman-service.log"; exit 1; }
fi

# --- test image -------------------------------------------------------------
image_in_registry() {
	curl -fs -m 5 -o /dev/null \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		"http://127.0.0.1:5000/v2/workergen/busybox/manifests/latest"
}
if ! podman image exists "$IMAGE"; then
	log "building $IMAGE from busybox-static"
	root=$(mktemp -d)
	trap 'rm -rf "$root"' EXIT
	mkdir -p "$root"/{bin,tmp,etc,root,proc,sys,dev}
	chmod 1777 "$root/tmp"
	cp /bin/busybox "$root/bin/busybox"
	for applet in $("$root/bin/busybox" --list); do
		[ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
	tar -C "$root" -cf "$STATE/busybox-rootfs.tar" .
	podman import \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["/bin/sh"]' \
		"$STATE/busybox-rootfs.tar" "$IMAGE" >/dev/null 2>&1
fi
if ! image_in_registry; then
	log "pushing $IMAGE"
	podman push --tls-verify=false "$IMAGE" >/dev/null 2>&1
	image_in_registry || { log "image not found in registry after push"; exit 1; }
fi

# Smoke test through the API socket's storage: a container runs.
out=$(podman run --rm --network=none "$IMAGE" echo workergen-ok 2>&1) || true
[ "$out" = workergen-ok ] || { log "test container failed: $out"; exit 1; }

cat >/run/workergen-podman.env <<ENV
WORKERGEN_PODMAN_SOCKET=${SOCK}
WORKERGEN_TEST_REGISTRY=${REGISTRY}
WORKERGEN_TEST_IMAGE=${IMAGE}
ENV
cat /run/workergen-podman.env

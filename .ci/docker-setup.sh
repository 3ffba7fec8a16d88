#!/usr/bin/env bash
# Sets up a Docker daemon for the container engine's tests, beside the Podman
# set-up of .ci/podman-setup.sh (run that first: it starts the loopback
# registry this script pulls the test image from), on a Debian (bookworm)
# machine without the internet (Debian mirror only):
#
#   - Debian's docker.io (Docker 20.10) installed with apt, its services not
#     started by the package (policy-rc.d), no systemd needed;
#   - dockerd on its own socket unix:///run/workergen-docker.sock, data root
#     /var/lib/workergen-ci/docker, exec root /var/lib/workergen-ci/docker-exec
#     (its own managed containerd lives there), log in
#     /var/log/workergen-ci/dockerd.log; it listens on nothing but that socket
#     (no TCP host) and its default bridge docker0;
#   - the test image localhost:5000/workergen/busybox:latest pulled from the
#     loopback registry (Docker treats 127.0.0.0/8 registries as insecure, so
#     plain HTTP needs no configuration).
#
# Side by side with Podman: dockerd sets the FORWARD chain's policy to DROP
# when it has to turn IPv4 forwarding on itself, which would cut Podman's
# containers off from anything beyond the host. Forwarding is turned on here
# before dockerd starts, so it leaves the policy alone; Docker's own FORWARD
# rules only match its bridges. After dockerd is up, a Podman container on
# Podman's bridge must still reach a listener on its gateway, or the script
# fails.
#
# Idempotent: running it again leaves a working set-up and restarts nothing
# that already answers. Prints the environment tests read, also written to
# /run/workergen-docker.env:
#
#   WORKERGEN_DOCKER_SOCKET   unix:///run/workergen-docker.sock
set -euo pipefail

SOCK_PATH=/run/workergen-docker.sock
SOCK="unix://${SOCK_PATH}"
IMAGE=localhost:5000/workergen/busybox:latest
STATE=/var/lib/workergen-ci
LOGDIR=/var/log/workergen-ci
mkdir -p "$STATE" "$LOGDIR"

log() { echo "docker-setup: $*" >&2; }

# --- packages ---------------------------------------------------------------
# iproute2: the test that starts a Docker daemon of its own on a fresh
# bridge creates that bridge with ip(8); curl asks the daemon if it is up.
need=()
for p in docker.io iproute2 curl; do
	dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# The package would start dockerd on the standard socket where a service
	# manager runs; we start our own below. policy-rc.d 101 = "do not start".
	own_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		own_policy=1
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	if [ "$own_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# --- dockerd ----------------------------------------------------------------
docker_up() { curl -fsS -m 5 --unix-socket "$SOCK_PATH" http://d/_ping >/dev/null 2>&1; }
if ! docker_up; then
	# See the header: keep the FORWARD policy as it is.
	echo 1 >/proc/sys/net/ipv4/ip_forward
	log "starting dockerd on $SOCK"
	rm -f "$SOCK_PATH"
	mkdir -p "$STATE/docker" "$STATE/docker-exec"
	nohup dockerd \
		--host "$SOCK" \
		--data-root "$STATE/docker" \
		--exec-root "$STATE/docker-exec" \
		--pidfile "$STATE/dockerd.pid" \
		>>"$LOGDIR/dockerd.log" 2>&1 &
	for _ in $(seq 1 300); do docker_up && break; sleep 0.1; done
	docker_up || { log "dockerd did not come up; see $LOGDIR/dockerd.log"; exit 1; }
fi
docker() { command docker -H "$SOCK" "$@"; }

# --- test image -------------------------------------------------------------
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
	log "pulling $IMAGE from the loopback registry"
	docker pull -q "$IMAGE" >/dev/null || {
		log "could not pull $IMAGE: run .ci/podman-setup.sh first (it starts the registry on 127.0.0.1:5000 and pushes the image)"
		exit 1
	}
fi

# Smoke tests: a Docker container on the default bridge runs, and Podman's
# bridge still forwards to the host.
out=$(docker run --rm "$IMAGE" echo workergen-ok 2>&1) || true
[ "$out" = workergen-ok ] || { log "docker test container failed: $out"; exit 1; }
if command -v podman >/dev/null 2>&1 && podman image exists "$IMAGE"; then
	out=$(podman run --rm "$IMAGE" sh -c 'ip route | awk "/default/ {print \$3}"' 2>&1) || true
	gw=$out
	port=$(( (RANDOM % 20000) + 30000 ))
	# A listener for a few seconds (busybox nc cannot bind one address: all
	# of them, on a random high port), reached from a Podman container
	# through Podman's gateway.
	busybox nc -ll -p "$port" -e echo workergen-ok >/dev/null 2>&1 &
	nc_pid=$!
	out=""
	for _ in $(seq 1 20); do
		out=$(podman run --rm "$IMAGE" sh -c "nc -w 2 $gw $port </dev/null" 2>&1) && [ "$out" = workergen-ok ] && break
		sleep 0.2
	done
	kill "$nc_pid" 2>/dev/null || true
	[ "$out" = workergen-ok ] || { log "podman bridge no longer reaches its gateway ($gw:$port) with dockerd running: $out"; exit 1; }
fi

cat >/run/workergen-docker.env <<ENV
WORKERGEN_DOCKER_SOCKET=${SOCK}
ENV
cat /run/workergen-docker.env

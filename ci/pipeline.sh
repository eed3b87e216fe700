#!/usr/bin/env bash
# The stages of the Jenkinsfile, runnable locally; Jenkins calls this same
# script once per stage, so what runs here is what runs there.
#
#   ci/pipeline.sh                      every stage: build test package deploy scale smoke
#   ci/pipeline.sh package deploy scale smoke teardown
#
# Stages:
#   build     make build
#   test      make test
#   package   deb, then image
#   deb       make deb            -> dist/legate_<version>-1_<arch>.deb
#   image     make image          -> legate:<tag>, legate-cp:<tag>, legate-demo-service:<tag>
#   deploy    docker-compose up -d --build (the front-proxy case study), then
#             wait for the proxy's /ready
#   scale     docker-compose up -d --scale service1=3 --scale service2=3
#   smoke     curl through the proxy until each service has answered from
#             $REPLICAS distinct replicas (and once over HTTPS)
#   teardown  docker-compose down -v
#   logs      docker-compose ps and logs (for failed runs)
#
# Environment: COMPOSE_PROJECT_NAME (default legate-case-study),
# LEGATE_IMAGE_TAG (default: the version in CHANGELOG.md), LEGATE_HTTP_PORT,
# LEGATE_HTTPS_PORT, LEGATE_ADMIN_PORT (0 = any free port), REPLICAS
# (default 3), SMOKE_TIMEOUT seconds (default 90).
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"
compose_dir="$root/examples/front-proxy"

export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-legate-case-study}"
export LEGATE_IMAGE_TAG="${LEGATE_IMAGE_TAG:-$(make -s --no-print-directory version)}"
REPLICAS="${REPLICAS:-3}"
SMOKE_TIMEOUT="${SMOKE_TIMEOUT:-90}"

log() { printf '==> [%s] %s\n' "$stage" "$*"; }

compose() { (cd "$compose_dir" && docker-compose "$@"); }

# host_port SERVICE PORT prints 127.0.0.1:<published port>. Docker may publish
# IPv4 and IPv6 on different ports when the host port is 0, so always use the
# IPv4 one on loopback.
host_port() {
	local mapping
	mapping="$(compose port "$1" "$2")"
	[ -n "$mapping" ] || { echo "no published port for $1:$2" >&2; return 1; }
	echo "127.0.0.1:${mapping##*:}"
}

wait_ready() {
	local admin deadline=$((SECONDS + SMOKE_TIMEOUT))
	admin="$(host_port front-proxy 9901)"
	until curl -fsS -o /dev/null "http://$admin/ready" 2>/dev/null; do
		if [ $SECONDS -ge $deadline ]; then
			log "front proxy not ready after ${SMOKE_TIMEOUT}s"
			compose logs --tail 50 front-proxy >&2 || true
			return 1
		fi
		sleep 1
	done
	log "front proxy ready (admin on $admin)"
}

# smoke_service ID: requests /service/ID until $REPLICAS distinct hostnames
# have answered; any non-200 answer fails the stage.
smoke_service() {
	local id="$1" proxy body host deadline=$((SECONDS + SMOKE_TIMEOUT))
	local -A seen=()
	proxy="$(host_port front-proxy 8080)"
	while [ "${#seen[@]}" -lt "$REPLICAS" ]; do
		if [ $SECONDS -ge $deadline ]; then
			log "service$id: only ${#seen[@]} of $REPLICAS replicas answered in ${SMOKE_TIMEOUT}s: ${!seen[*]}"
			return 1
		fi
		body="$(curl -fsS --max-time 10 "http://$proxy/service/$id")" || { log "service$id: request failed"; return 1; }
		host="$(printf '%s' "$body" | sed -n 's/.*"hostname":"\([^"]*\)".*/\1/p')"
		case "$body" in
		*"\"serviceid\":\"$id\""*'"success":true'*) ;;
		*) log "service$id: unexpected answer: $body"; return 1 ;;
		esac
		[ -n "$host" ] && seen[$host]=1
	done
	log "service$id: $REPLICAS replicas answered: ${!seen[*]}"
	printf '%s\n' "${!seen[@]}" | sort >"$root/dist/smoke-service$id.txt"
}

run_stage() {
	stage="$1"
	log "start"
	case "$stage" in
	build) make build ;;
	test) make test ;;
	package) run_stage deb; run_stage image; stage=package ;;
	deb) make deb ;;
	image) make image IMAGE_TAG="$LEGATE_IMAGE_TAG" ;;
	deploy)
		compose up -d --build
		wait_ready
		;;
	scale)
		compose up -d --no-recreate --scale service1="$REPLICAS" --scale service2="$REPLICAS"
		;;
	smoke)
		mkdir -p "$root/dist"
		wait_ready
		smoke_service 1
		smoke_service 2
		curl -fsSk --max-time 10 "https://$(host_port front-proxy 8443)/service/1" >/dev/null
		log "HTTPS answers"
		;;
	teardown) compose down -v --remove-orphans ;;
	logs)
		compose ps || true
		compose logs --no-color --tail 200 || true
		;;
	*)
		echo "ci/pipeline.sh: unknown stage '$stage' (see the header of this script)" >&2
		exit 2
		;;
	esac
	log "done"
}

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(build test package deploy scale smoke)
for s in "${stages[@]}"; do
	run_stage "$s"
done

#!/usr/bin/env bash
# make demo-cluster: rtstack in the shape of a deployment, on this machine:
# the embedded broker in its own process, two gateways, two projector
# processes (sharing the consumer groups), the reactor and two workers. Each
# process's output is prefixed with its name; Ctrl-C stops them all.
#
# It needs what `make run` needs (Postgres, Redis, RabbitMQ). The environment
# is passed through, so any setting of the README applies; the defaults below
# keep the demo's log apart from `make run`'s.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/rtstack}
export DATA_DIR=${DATA_DIR:-./data/demo-cluster}
export BROKER_ADDR=${BROKER_ADDR:-127.0.0.1:9092}
# Outside `rtstack dev` the JWT secret is required and at least 32 bytes.
export JWT_SECRET=${JWT_SECRET:-$(head -c 48 /dev/urandom | base64)}
GATEWAYS=(${DEMO_GATEWAYS:-127.0.0.1:8080 127.0.0.1:8090})

pids=()
stop() {
	trap - EXIT INT TERM
	[ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
	wait 2>/dev/null
}
trap stop EXIT INT TERM

# part NAME ARGS… runs one process in the background, its output prefixed.
part() {
	local name=$1
	shift
	"$BIN" "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
	pids+=($!)
}

wait_port() { # host:port seconds
	for _ in $(seq 1 "$2"); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; then return 0; fi
		sleep 1
	done
	echo "nothing listens on $1 after $2 s" >&2
	return 1
}

part broker broker
wait_port "$BROKER_ADDR" 30
part project-1 project
part project-2 project
part react react
part work-1 work
part work-2 work
for i in "${!GATEWAYS[@]}"; do
	part "gateway-$((i + 1))" gateway -http-addr "${GATEWAYS[$i]}"
done
for gw in "${GATEWAYS[@]}"; do wait_port "$gw" 60; done

cat <<MSG
rtstack demo cluster is up (${#pids[@]} processes; Ctrl-C stops them)
  gateways    $(printf 'http://%s/  ' "${GATEWAYS[@]}")
  a token     JWT_SECRET='$JWT_SECRET' $BIN token --user alice
  consumers   kcat -b $BROKER_ADDR -L; the groups: rtstack-projector-postgres, rtstack-projector-redis, rtstack-reactor
MSG
wait -n "${pids[@]}"
echo "a process of the demo cluster exited; stopping the others" >&2
exit 1

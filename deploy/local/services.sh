#!/usr/bin/env bash
# Start or stop the Python services (four APIs, the metrics workers and the partner portal, uvicorn), each in the
# background with its pid recorded.
#   services.sh up | down | status | demo | simulate
# Ports: PARTNERS_PORT (8001), WORKSHOPS_PORT (8002), DETECTION_PORT (8003), METRICS_PORT (8004), PORTAL_PORT (8005);
# METRICS_WORKERS metrics workers (2 by default), worker n on METRICS_WORKER_PORT_BASE + n (8010 + n).
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY="$ROOT/.venv/bin/python"
declare -A PORTS=(
  [partners]="${PARTNERS_PORT:-8001}" [workshops]="${WORKSHOPS_PORT:-8002}"
  [detection]="${DETECTION_PORT:-8003}" [metrics]="${METRICS_PORT:-8004}" [portal]="${PORTAL_PORT:-8005}"
)
# The metrics workers count (each owns some partitions of the event topics); the metrics API sums what they publish.
declare -A APPS=()
WORKERS=()
for ((n = 1; n <= ${METRICS_WORKERS:-2}; n++)); do
  WORKERS+=("metrics-worker-$n")
  PORTS[metrics-worker-$n]=$((${METRICS_WORKER_PORT_BASE:-8010} + n))
  APPS[metrics-worker-$n]="services.metrics.worker:app"
done
SERVICES=(partners workshops detection "${WORKERS[@]}" metrics portal)
# The portal calls the APIs over HTTP, wherever they listen.
export PORTAL_PORT="${PORTS[portal]}"
export PORTAL_PARTNERS_URL="${PORTAL_PARTNERS_URL:-http://127.0.0.1:${PORTS[partners]}}"
export PORTAL_WORKSHOPS_URL="${PORTAL_WORKSHOPS_URL:-http://127.0.0.1:${PORTS[workshops]}}"
export PORTAL_METRICS_URL="${PORTAL_METRICS_URL:-http://127.0.0.1:${PORTS[metrics]}}"
# The metrics API shows partners' names from the partners registry.
export METRICS_PARTNERS_URL="${METRICS_PARTNERS_URL:-http://127.0.0.1:${PORTS[partners]}}"
# The stack's ports (deploy/local/stack.sh: KAFKA_PORT, FERRETDB_PORT) unless the endpoints are given: the
# services, the demo loaders and the simulator all follow them.
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT:-9092}}"
export MONGODB_URI="${MONGODB_URI:-mongodb://127.0.0.1:${FERRETDB_PORT:-27017}/?directConnection=true}"
DETECTION_URL="http://127.0.0.1:${PORTS[detection]}"

# The metrics worker may have a large table to recover (its changelog, when the local store is new or lost):
# it gets METRICS_START_TIMEOUT seconds (default 600) and its progress is shown every 15 s.
wait_healthy() {
  local name="$1" port="$2" limit=90 shown=$SECONDS
  [[ "$name" == svc-metrics-worker-* ]] && limit="${METRICS_START_TIMEOUT:-600}"
  local deadline=$((SECONDS + limit))
  while ! "$PY" - "$port" <<'PYEOF' 2>/dev/null; do
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PYEOF
    if ! proc_running "$name"; then
      _show_log_tail "$LOG_DIR/${name#svc-}.log"
      die "service $name exited during start-up (see $LOG_DIR/${name#svc-}.log)"
    fi
    ((SECONDS < deadline)) || { _show_log_tail "$LOG_DIR/${name#svc-}.log"; die "service $name not ready on :$port within $limit s"; }
    if ((SECONDS - shown >= 15)); then
      shown=$SECONDS
      echo "$name not ready yet ($((SECONDS - deadline + limit)) s): $("$PY" - "$port" <<'PYEOF' 2>/dev/null || echo "starting"
import json, sys, urllib.error, urllib.request
try:
    body = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2))
except urllib.error.HTTPError as e:
    body = json.load(e)
print(json.dumps(body.get("progress") or body.get("checks")))
PYEOF
)"
    fi
    sleep 0.5
  done
}

up() {
  [[ -x "$PY" ]] || die "no virtual environment at $ROOT/.venv (run 'make install')"
  for name in "${SERVICES[@]}"; do
    local port="${PORTS[$name]}"
    ensure_port_free "svc-$name" "$port"
    local worker_id=1
    [[ "$name" == metrics-worker-* ]] && worker_id="${name##*-}"
    (cd "$ROOT" && METRICS_WORKER_ID="$worker_id" proc_start "svc-$name" "$LOG_DIR/$name.log" \
      "$PY" -m uvicorn "${APPS[$name]:-services.$name.main:app}" --host 127.0.0.1 --port "$port" --no-access-log)
  done
  for name in "${SERVICES[@]}"; do
    wait_healthy "svc-$name" "${PORTS[$name]}"
    echo "$name ready: http://127.0.0.1:${PORTS[$name]}  (docs: /docs)"
  done
}

# Demo data through the services' own handlers (idempotent: a second run adds nothing), then gentle counter
# traffic through the detection service so the dashboard moves (make run). A loader that fails (non-zero exit
# or a traceback in its log) makes this exit 1 with the tail of its log: the dashboard would show wrong numbers.
declare -A DEMO_PIDS=() DEMO_LOG_START=()

start_loader() {  # NAME MODULE [ARG...]: in the background, pid recorded (make stop stops it), exit status kept
  local name="$1" module="$2" log="$LOG_DIR/$1.log"
  shift 2
  mkdir -p "$LOG_DIR" "$PID_DIR"
  echo "=== $(date '+%Y-%m-%d %H:%M:%S') starting $name: python -m $module $*" >>"$log"
  DEMO_LOG_START[$name]=$(stat -c %s "$log")
  (cd "$ROOT" && exec "$PY" -m "$module" "$@") >>"$log" 2>&1 </dev/null &
  DEMO_PIDS[$name]=$!
  echo "$!" >"$(_pid_file "$name")"
}

loader_failed() {  # NAME STATUS: 0 (true) when the loader failed
  local name="$1" status="$2" log="$LOG_DIR/$1.log"
  ((status != 0)) && return 0
  tail -c +"$((DEMO_LOG_START[$name] + 1))" "$log" | grep -q '^Traceback' && return 0
  return 1
}

demo() {
  local name status failed=()
  start_loader demo-detection services.detection.demo --url "$DETECTION_URL"
  wait "${DEMO_PIDS[demo-detection]}" && status=0 || status=$?
  if loader_failed demo-detection "$status"; then
    _show_log_tail "$LOG_DIR/demo-detection.log"
    die "the detection demo loader failed (exit $status); see $LOG_DIR/demo-detection.log"
  fi
  tail -n 3 "$LOG_DIR/demo-detection.log"
  start_loader demo-partners services.partners.demo
  start_loader demo-workshops services.workshops.demo
  local started=$SECONDS next=$((SECONDS + 15))
  while :; do
    local running=()
    for name in demo-partners demo-workshops; do
      kill -0 "${DEMO_PIDS[$name]}" 2>/dev/null && running+=("$name")
    done
    ((${#running[@]})) || break
    if ((SECONDS >= next)); then
      echo "loading demo data ($((SECONDS - started)) s): ${running[*]} still running (logs: $LOG_DIR/demo-*.log)"
      next=$((SECONDS + 15))
    fi
    sleep 1
  done
  for name in demo-partners demo-workshops; do
    wait "${DEMO_PIDS[$name]}" && status=0 || status=$?
    rm -f "$(_pid_file "$name")"
    if loader_failed "$name" "$status"; then
      _show_log_tail "$LOG_DIR/$name.log"
      failed+=("$name (exit $status)")
    fi
  done
  ((${#failed[@]} == 0)) || die "demo loaders failed: ${failed[*]}; the dashboard would miss their figures (logs: $LOG_DIR/)"
  # The portal's demo accounts, through the partners and workshops APIs (their organisations need both).
  start_loader demo-portal services.portal.demo
  wait "${DEMO_PIDS[demo-portal]}" && status=0 || status=$?
  rm -f "$(_pid_file demo-portal)"
  if loader_failed demo-portal "$status"; then
    _show_log_tail "$LOG_DIR/demo-portal.log"
    die "the portal demo loader failed (exit $status); see $LOG_DIR/demo-portal.log"
  fi
  tail -n 1 "$LOG_DIR/demo-portal.log"
  echo "demo data loaded in $((SECONDS - started)) s (logs: $LOG_DIR/demo-*.log)"
  simulate
}

simulate() {
  (cd "$ROOT" && proc_start simulator "$LOG_DIR/simulator.log" \
    "$PY" -m scripts.simulate --duration 0 --rate "${SIMULATOR_RATE:-5}" --quiet --no-verify \
    --url "$DETECTION_URL" --bootstrap "$KAFKA_BOOTSTRAP_SERVERS")
  echo "traffic simulator running (pid $(proc_pid simulator), log $LOG_DIR/simulator.log)"
}

down() {
  proc_stop simulator
  proc_stop demo-detection
  proc_stop demo-partners
  proc_stop demo-workshops
  proc_stop demo-portal
  for name in "${SERVICES[@]}"; do proc_stop "svc-$name"; done
  # Workers started earlier with a larger METRICS_WORKERS.
  local pid_file
  for pid_file in "$PID_DIR"/svc-metrics-worker-*.pid; do
    [[ -e "$pid_file" ]] && proc_stop "$(basename "$pid_file" .pid)"
  done
  return 0
}

status() {
  for name in "${SERVICES[@]}"; do
    if proc_running "svc-$name"; then echo "$name: running (pid $(proc_pid "svc-$name"), port ${PORTS[$name]})"
    else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  simulate) simulate ;;
  demo) demo ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status|demo|simulate" >&2; exit 2 ;;
esac

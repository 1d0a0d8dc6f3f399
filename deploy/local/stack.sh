#!/usr/bin/env bash
# Local infrastructure without Docker: Apache Kafka (KRaft, one node) and FerretDB
# (MongoDB wire protocol on SQLite).
#
#   deploy/local/stack.sh up      fetch/build (cached), start both, wait until they answer
#   deploy/local/stack.sh down    stop what this script started (pid files only)
#   deploy/local/stack.sh status  show what runs; exit 0 when both run, 3 otherwise
#   deploy/local/stack.sh reset   delete $DATA_DIR (refused while anything runs)
#
# Endpoints: KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092
#            MONGODB_URI=mongodb://127.0.0.1:27017/?directConnection=true
# Environment: DATA_DIR, RUN_DIR, CACHE_DIR (see lib.sh), KAFKA_PORT, KAFKA_CONTROLLER_PORT, FERRETDB_PORT,
#              KAFKA_VERSION, KAFKA_HEAP_OPTS,
#              KAFKA_START_TIMEOUT (s, default 120), FERRETDB_START_TIMEOUT (s, default 30).
set -euo pipefail

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

HERE="$ROOT/deploy/local"

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DATA="$DATA_DIR/kafka"
KAFKA_LOG_DIR="$KAFKA_DATA/data"
KAFKA_LOG="$LOG_DIR/kafka.log"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"

FERRETDB_PORT="${FERRETDB_PORT:-27017}"
FERRETDB_SRC="$HERE/ferretdb"
FERRETDB_BIN="$CACHE_DIR/bin/ferretdb-local"
FERRETDB_DATA="$DATA_DIR/ferretdb"
FERRETDB_LOG="$LOG_DIR/ferretdb.log"
FERRETDB_START_TIMEOUT="${FERRETDB_START_TIMEOUT:-30}"

VENV_PY="$ROOT/.venv/bin/python"

# ---------------------------------------------------------------- prerequisites

java_major() {
  # `java -version` prints e.g.: openjdk version "17.0.15" 2025-04-15  (or "1.8.0_392")
  local v
  v="$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
  v="${v#1.}"
  echo "${v%%[.+-]*}"
}

kafka_libs_ready() {
  [[ -f "$KAFKA_LIBS/.complete" ]] && [[ "$(cat "$KAFKA_LIBS/.complete")" == "$(kafka_libs_stamp)" ]]
}

kafka_libs_stamp() {
  # Re-resolve when the version or the pom changes.
  echo "$KAFKA_VERSION $(cksum <"$HERE/kafka/pom.xml" | awk '{print $1}')"
}

ferretdb_bin_ready() {
  [[ -x "$FERRETDB_BIN" ]] || return 1
  # Rebuild when any source file is newer than the binary.
  [[ -z "$(find "$FERRETDB_SRC" -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$FERRETDB_BIN" -print -quit)" ]]
}

check_prereqs() {
  local missing=()
  if ! command -v java >/dev/null 2>&1; then
    missing+=("java (JDK/JRE 17 or newer, e.g. apt-get install openjdk-17-jre-headless)")
  else
    local major
    major="$(java_major)"
    if [[ -z "$major" || "$major" -lt 17 ]]; then
      missing+=("java >= 17 (found: $(java -version 2>&1 | head -n1))")
    fi
  fi
  if ! proc_running kafka && ! kafka_libs_ready && ! command -v mvn >/dev/null 2>&1; then
    missing+=("mvn (Apache Maven, to fetch the Kafka jars; e.g. apt-get install maven)")
  fi
  if ! proc_running ferretdb && ! ferretdb_bin_ready && ! command -v go >/dev/null 2>&1; then
    missing+=("go (Go toolchain >= 1.24, to build FerretDB; https://go.dev/doc/install)")
  fi
  command -v setsid >/dev/null 2>&1 || missing+=("setsid (util-linux)")
  command -v timeout >/dev/null 2>&1 || missing+=("timeout (coreutils)")
  if ((${#missing[@]})); then
    local m
    echo "error: missing prerequisites for the local stack:" >&2
    for m in "${missing[@]}"; do echo "  - $m" >&2; done
    exit 1
  fi
}

# ---------------------------------------------------------------- kafka

kafka_fetch() {
  kafka_libs_ready && return 0
  info "fetching Kafka $KAFKA_VERSION jars from Maven Central (once) ..."
  local tmp="$KAFKA_HOME/libs.tmp.$$" log="$LOG_DIR/kafka-fetch.log"
  rm -rf "$tmp"
  mkdir -p "$tmp" "$LOG_DIR"
  if ! mvn -B -q -Dstyle.color=never -f "$HERE/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$log" 2>&1; then
    rm -rf "$tmp"
    _show_log_tail "$log"
    die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (see $log)"
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; die "mvn did not copy kafka_2.13-$KAFKA_VERSION.jar"; }
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  kafka_libs_stamp >"$KAFKA_LIBS/.complete"
}

# kafka_java_cmd HEAP_OPTS: fills the array KAFKA_JAVA with the java command line
# (JVM flags as in Kafka's bin/kafka-run-class.sh, heap sized for a dev machine).
kafka_java_cmd() {
  local heap
  read -r -a heap <<<"$1"
  KAFKA_JAVA=(java "${heap[@]}"
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties"
    -cp "$KAFKA_LIBS/*")
}

kafka_config() {
  local props="$RUN_DIR/kafka/server.properties"
  mkdir -p "$RUN_DIR/kafka"
  sed -e "s#@KAFKA_LOG_DIR@#$KAFKA_LOG_DIR#g" -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" \
    -e "s#@KAFKA_CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" "$HERE/kafka/server.properties.in" >"$props"
  echo "$props"
}

kafka_format() {
  local props="$1"
  [[ -f "$KAFKA_LOG_DIR/meta.properties" ]] && return 0
  mkdir -p "$KAFKA_LOG_DIR"
  local cid_file="$KAFKA_DATA/cluster.id" cid
  if [[ ! -s "$cid_file" ]]; then
    kafka_java_cmd "-Xmx128m"
    cid="$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid 2>>"$KAFKA_LOG" | tail -n1)"
    [[ -n "$cid" ]] || die "kafka.tools.StorageTool random-uuid printed nothing (see $KAFKA_LOG)"
    echo "$cid" >"$cid_file"
  fi
  cid="$(cat "$cid_file")"
  info "formatting Kafka storage in $KAFKA_LOG_DIR (cluster id $cid)"
  # Static quorum (controller.quorum.voters is set), so no --standalone.
  kafka_java_cmd "-Xmx256m"
  if ! "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format \
    --cluster-id "$cid" --config "$props" >>"$KAFKA_LOG" 2>&1; then
    tail -n 30 "$KAFKA_LOG" >&2
    die "formatting Kafka storage failed (see $KAFKA_LOG)"
  fi
}

kafka_start() {
  if proc_running kafka; then
    info "kafka already running (pid $(proc_pid kafka))"
    return 0
  fi
  ensure_port_free kafka "$KAFKA_PORT"
  ensure_port_free kafka "$KAFKA_CONTROLLER_PORT"
  kafka_fetch
  mkdir -p "$LOG_DIR"
  local props
  props="$(kafka_config)"
  kafka_format "$props"
  kafka_java_cmd "$KAFKA_HEAP_OPTS"
  proc_start kafka "$KAFKA_LOG" "${KAFKA_JAVA[@]}" kafka.Kafka "$props"
}

# Kafka answers a metadata request (kafka-python from the repo's venv when present),
# else falls back to the broker's "Kafka Server started" log line.
kafka_wait_ready() {
  wait_port kafka "$KAFKA_PORT" "$KAFKA_START_TIMEOUT" "$KAFKA_LOG"
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  if [[ -x "$VENV_PY" ]] && "$VENV_PY" -c 'import kafka' 2>/dev/null; then
    local err="$RUN_DIR/kafka/ready-check.err"
    while true; do
      if "$VENV_PY" - "127.0.0.1:$KAFKA_PORT" >"$err" 2>&1 <<'PY'; then
import sys
from kafka import KafkaAdminClient
a = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000,
                     client_id="stack-sh-ready")
try:
    c = a.describe_cluster()
    assert c.get("brokers"), c
finally:
    a.close()
PY
        return 0
      fi
      if ((SECONDS >= deadline)); then
        echo "---- last metadata check (kafka-python) ----" >&2
        tail -n 5 "$err" >&2 || true
      fi
      kafka_check_alive_or_timeout "$deadline" "answer a metadata request"
      sleep 0.5
    done
  else
    while ! grep -q "Kafka Server started" "$KAFKA_LOG" 2>/dev/null; do
      kafka_check_alive_or_timeout "$deadline" "log 'Kafka Server started'"
      sleep 0.3
    done
  fi
}

kafka_check_alive_or_timeout() {
  local deadline="$1" what="$2"
  if ! proc_running kafka; then
    _show_log_tail "$KAFKA_LOG"
    rm -f "$PID_DIR/kafka.pid"
    die "kafka exited during start-up (see $KAFKA_LOG)"
  fi
  if ((SECONDS >= deadline)); then
    _show_log_tail "$KAFKA_LOG"
    proc_stop kafka
    die "kafka did not $what within ${KAFKA_START_TIMEOUT}s; stopped it (see $KAFKA_LOG)"
  fi
}

# ---------------------------------------------------------------- ferretdb

ferretdb_build() {
  ferretdb_bin_ready && return 0
  info "building FerretDB (Go) into $FERRETDB_BIN ..."
  local log="$LOG_DIR/ferretdb-build.log"
  mkdir -p "$(dirname "$FERRETDB_BIN")" "$LOG_DIR"
  if ! (cd "$FERRETDB_SRC" && go build -buildvcs=false -trimpath -o "$FERRETDB_BIN.tmp" .) >"$log" 2>&1; then
    _show_log_tail "$log"
    die "go build of $FERRETDB_SRC failed (see $log)"
  fi
  mv -f "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
}

ferretdb_start() {
  if proc_running ferretdb; then
    info "ferretdb already running (pid $(proc_pid ferretdb))"
    return 0
  fi
  ensure_port_free ferretdb "$FERRETDB_PORT"
  ferretdb_build
  mkdir -p "$FERRETDB_DATA" "$LOG_DIR"
  proc_start ferretdb "$FERRETDB_LOG" "$FERRETDB_BIN" \
    -listen "127.0.0.1:$FERRETDB_PORT" -sqlite-dir "$FERRETDB_DATA" -log-level warn
}

# ---------------------------------------------------------------- commands

summary() {
  local name="$1" pid
  case "$name" in
  kafka)
    if proc_running kafka; then
      pid="$(proc_pid kafka)"
      echo "kafka     running  pid $pid  bootstrap 127.0.0.1:$KAFKA_PORT  (Kafka $KAFKA_VERSION, data $KAFKA_DATA, log $KAFKA_LOG)"
    else
      echo "kafka     stopped"
    fi
    ;;
  ferretdb)
    if proc_running ferretdb; then
      pid="$(proc_pid ferretdb)"
      echo "ferretdb  running  pid $pid  mongodb://127.0.0.1:$FERRETDB_PORT/?directConnection=true  (data $FERRETDB_DATA, log $FERRETDB_LOG)"
    else
      echo "ferretdb  stopped"
    fi
    ;;
  esac
}

cmd_up() {
  check_prereqs
  # All port checks before starting anything, so a taken port leaves nothing half-started.
  ensure_port_free kafka "$KAFKA_PORT"
  ensure_port_free kafka "$KAFKA_CONTROLLER_PORT"
  ensure_port_free ferretdb "$FERRETDB_PORT"
  mkdir -p "$DATA_DIR" "$RUN_DIR" "$CACHE_DIR"
  # Start Kafka first (slow JVM start), build/start FerretDB while it boots, then wait for both.
  kafka_start
  ferretdb_start
  kafka_wait_ready
  wait_port ferretdb "$FERRETDB_PORT" "$FERRETDB_START_TIMEOUT" "$FERRETDB_LOG"
  summary kafka
  summary ferretdb
}

cmd_down() {
  proc_stop ferretdb
  proc_stop kafka
  summary kafka
  summary ferretdb
}

cmd_status() {
  summary kafka
  summary ferretdb
  proc_running kafka && proc_running ferretdb || return 3
}

cmd_reset() {
  local n
  for n in kafka ferretdb; do
    if proc_running "$n"; then
      die "$n is running (pid $(proc_pid "$n")); run '$0 down' before reset"
    fi
  done
  case "$DATA_DIR" in
  "" | / | "$ROOT" | "$HOME") die "refusing to delete DATA_DIR='$DATA_DIR'" ;;
  esac
  if [[ -e "$DATA_DIR" ]]; then
    rm -rf -- "$DATA_DIR"
    echo "deleted $DATA_DIR"
  else
    echo "nothing to delete ($DATA_DIR does not exist)"
  fi
}

usage() {
  echo "usage: $0 up|down|status|reset" >&2
  exit 2
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
reset) cmd_reset ;;
*) usage ;;
esac

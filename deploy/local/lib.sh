# shellcheck shell=bash
# Helpers for the local stack scripts (deploy/local/stack.sh). Source it; do not run it.
# Safe under `set -euo pipefail`.
#
# Paths (override with the environment):
#   ROOT       repository root (always computed from this file's location)
#   DATA_DIR   ${DATA_DIR:-$ROOT/.data}    persistent data (Kafka logs, SQLite files)
#   RUN_DIR    ${RUN_DIR:-$ROOT/.run}      pids/NAME.pid, logs/NAME.log, generated configs
#   CACHE_DIR  ${CACHE_DIR:-$ROOT/.cache}  downloaded jars, built binaries
#
# Process control only ever signals pids this project recorded in $RUN_DIR/pids;
# it never looks processes up by name.

if [[ -n "${_LOCAL_LIB_SH:-}" ]]; then return 0; fi
_LOCAL_LIB_SH=1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA_DIR="${DATA_DIR:-$ROOT/.data}"
RUN_DIR="${RUN_DIR:-$ROOT/.run}"
CACHE_DIR="${CACHE_DIR:-$ROOT/.cache}"
export ROOT DATA_DIR RUN_DIR CACHE_DIR

PID_DIR="$RUN_DIR/pids"
# shellcheck disable=SC2034  # used by the scripts that source this file
LOG_DIR="$RUN_DIR/logs"

die() {
  echo "error: $*" >&2
  exit 1
}

info() {
  echo "$*" >&2
}

# require_cmd CMD "how to get it"
require_cmd() {
  local cmd="$1" how="${2:-}"
  if ! command -v "$cmd" >/dev/null 2>&1; then
    die "required tool '$cmd' not found on PATH${how:+ ($how)}"
  fi
}

_pid_file() { echo "$PID_DIR/$1.pid"; }

# proc_pid NAME: prints the recorded pid (empty when none).
proc_pid() {
  local f
  f="$(_pid_file "$1")"
  if [[ -f "$f" ]]; then
    tr -dc '0-9' <"$f" || true
  fi
}

_pid_alive() {
  local pid="$1" state
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # A zombie (exited, not yet reaped) is not running.
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [[ "$state" != "Z" ]]
}

# proc_running NAME: 0 when the recorded pid is alive.
proc_running() {
  _pid_alive "$(proc_pid "$1")"
}

# proc_start NAME LOGFILE CMD...: start CMD detached in its own session (so the whole
# process group can be signalled), stdout+stderr appended to LOGFILE, pid recorded.
# Idempotent: if NAME's recorded process is alive, says so and returns 0.
proc_start() {
  local name="$1" logfile="$2"
  shift 2
  [[ $# -gt 0 ]] || die "proc_start $name: no command"
  mkdir -p "$PID_DIR" "$(dirname "$logfile")"
  if proc_running "$name"; then
    info "$name already running (pid $(proc_pid "$name"))"
    return 0
  fi
  rm -f "$(_pid_file "$name")"
  # Keep one previous log when it grew past 20 MiB.
  if [[ -f "$logfile" ]] && (($(stat -c %s "$logfile") > 20 * 1024 * 1024)); then
    mv -f "$logfile" "$logfile.1"
  fi
  echo "=== $(date '+%Y-%m-%d %H:%M:%S') starting $name: $*" >>"$logfile"
  # setsid: new session and process group whose id is the child's pid (setsid execs in
  # place because, with job control off, the background child is not a group leader; with
  # job control on it would fork and $! would be the wrong pid, so turn it off meanwhile).
  # stdin from /dev/null so the child never holds the caller's terminal or pipe.
  local had_monitor=0
  if [[ $- == *m* ]]; then had_monitor=1; set +m; fi
  setsid "$@" >>"$logfile" 2>&1 </dev/null &
  local pid=$!
  if ((had_monitor)); then set -m; fi
  echo "$pid" >"$(_pid_file "$name")"
  disown "$pid" 2>/dev/null || true
}

# proc_stop NAME: SIGTERM the recorded process group, wait up to 15 s, then SIGKILL.
proc_stop() {
  local name="$1" pid i signalled=0
  pid="$(proc_pid "$name")"
  if [[ -z "$pid" ]]; then
    return 0
  fi
  if _pid_alive "$pid"; then
    signalled=1
    info "stopping $name (pid $pid)"
    # The process was started with setsid, so its pgid is its pid: signal the group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      _pid_alive "$pid" || break
      sleep 0.1
    done
    if _pid_alive "$pid"; then
      info "$name did not stop within 15 s, sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        _pid_alive "$pid" || break
        sleep 0.1
      done
    fi
  fi
  # Leftover members of the group we just signalled (if the leader exited first).
  # Not done for a stale pid file: that pid may belong to someone else by now.
  if ((signalled)); then
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$(_pid_file "$name")"
}

# port_in_use PORT: 0 when something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
  local port="$1"
  # `timeout` guards against a listener whose backlog is full (connect would hang).
  # shellcheck disable=SC2016  # $1 expands in the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$port" 2>/dev/null
}

# ensure_port_free NAME PORT: die when PORT is taken by anything but NAME's recorded process.
ensure_port_free() {
  local name="$1" port="$2"
  if port_in_use "$port" && ! proc_running "$name"; then
    die "port $port is already in use by another process (not started by this project); $name cannot start"
  fi
}

# wait_port NAME PORT TIMEOUT_S LOGFILE: poll until PORT accepts connections.
# Dies (with the last 30 lines of LOGFILE) if NAME's process exits or the timeout passes
# (then NAME's process is stopped first, so no half-started process is left behind).
wait_port() {
  local name="$1" port="$2" timeout="$3" logfile="$4"
  local deadline=$((SECONDS + timeout))
  while true; do
    if ! proc_running "$name"; then
      _show_log_tail "$logfile"
      rm -f "$(_pid_file "$name")"
      die "$name exited during start-up (see $logfile)"
    fi
    if port_in_use "$port"; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      _show_log_tail "$logfile"
      proc_stop "$name"
      die "$name did not open port $port within ${timeout}s; stopped it (see $logfile)"
    fi
    sleep 0.2
  done
}

_show_log_tail() {
  local logfile="$1"
  if [[ -f "$logfile" ]]; then
    echo "---- last 30 lines of $logfile ----" >&2
    tail -n 30 "$logfile" >&2 || true
    echo "----" >&2
  fi
}

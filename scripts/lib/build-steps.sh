# Shared by the scripts that build tools from the Go module proxy (k8s/tools, bench/konnectivity,
# integration/tools): progress logging, long steps with a heartbeat and their log's tail on failure,
# and one install at a time per cache. Source it after setting LOG_PREFIX.

log() { printf '%s: %s\n' "${LOG_PREFIX:?set LOG_PREFIX before sourcing build-steps.sh}" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
since() { local s=$(($(date +%s) - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

heartbeat_pid=
stop_heartbeat() { if [[ -n $heartbeat_pid ]]; then kill "$heartbeat_pid" 2>/dev/null || true; fi; }

# step <log file> <dir> <description> <command...>: runs the command (a program or a function) in <dir>
# with its output in the log file, printing a progress line every STEP_HEARTBEAT_S seconds (default
# 60); on failure prints the log's tail and exits.
step() {
  local logf=$1 dir=$2 what=$3 t0
  shift 3
  t0=$(date +%s)
  log "  $what ..."
  (
    trap 'kill $! 2>/dev/null; exit 0' TERM
    while :; do sleep "${STEP_HEARTBEAT_S:-60}" & wait $!; log "  ... still $what ($(since "$t0"))"; done
  ) &
  heartbeat_pid=$!
  local rc=0
  (cd "$dir" && "$@") >"$logf" 2>&1 || rc=$?
  kill "$heartbeat_pid" 2>/dev/null || true
  wait "$heartbeat_pid" 2>/dev/null || true
  heartbeat_pid=
  if ((rc != 0)); then
    log "FAILED: $what (exit $rc after $(since "$t0")); last lines of $logf:"
    tail -n 30 "$logf" | sed 's/^/    /' >&2
    exit 1
  fi
  log "  $what: done in $(since "$t0")"
}

# lock_cache <lock file> <who>: one install at a time per cache (two `make` runs would otherwise build
# the same thing twice); waits, saying so, while another holds it.
lock_cache() {
  command -v flock >/dev/null || return 0
  exec 9>"$1"
  if ! flock -n 9; then
    log "waiting for another $2 using $(dirname "$1")"
    flock 9
  fi
}

# parse_force <help line range> "$@": sets force=1 for --force, prints the script's header comment
# (lines <range>) for --help, refuses anything else.
force=0
parse_force() {
  local help=$1 arg
  shift
  for arg in "$@"; do
    case $arg in
      --force) force=1 ;;
      -h | --help) sed -n "${help}p" "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
      *) die "unknown argument '$arg' (want --force)" ;;
    esac
  done
}

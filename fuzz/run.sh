#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a bounded time on one core; prints executions per
# target and fails if any target crashed. The corpus grows in fuzz/corpus/<target>/ and crash
# reproducers land in fuzz/artifacts/<target>/ (commit them: the corpus tests run them).
#
#   SECONDS_PER_TARGET=60 fuzz/run.sh [target ...]
#   SECONDS_redaction=300 fuzz/run.sh redaction   # per-target time (also MAX_LEN_<target>)
#   MINIMIZE=1 fuzz/run.sh        # afterwards, merge each corpus into a small set
#   MINIMIZE_ONLY=1 fuzz/run.sh   # only that (before committing the corpus)
#
# One libFuzzer process per target, one core. Needs cargo-fuzz (.tools/cargo-fuzz-<version>/bin
# or on PATH). Stable Rust: no sanitizer (RUSTC_BOOTSTRAP=1 SANITIZER=address for ASan).
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd .. && pwd)"
for dir in "$root"/.tools/cargo-fuzz-*/bin; do
  [ -d "$dir" ] && PATH="$dir:$PATH"
done
command -v cargo-fuzz >/dev/null || {
  echo "cargo-fuzz not found: cargo install --locked --root $root/.tools/cargo-fuzz-0.13.2 cargo-fuzz --version 0.13.2" >&2
  exit 2
}
sanitizer="${SANITIZER:-none}"
# Inputs are event sequences or texts: long ones only slow the slow targets down.
declare -A default_max_len=([breaker_state_machine]=512 [redaction]=1024)
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi

cargo fuzz build -O --sanitizer "$sanitizer"
bin_dir="$(pwd)/target/$(rustc -vV | sed -n 's/^host: //p')/release"

# Merges corpus/<target> into a minimal set of small inputs that keeps its coverage: edges and
# hit counts, or edges alone when that is still more than MINIMIZE_FILES (200) files.
minimize() {
  local t="$1" log="$2" counters
  for counters in 1 0; do
    rm -rf "corpus/$t.min" && mkdir "corpus/$t.min"
    "$bin_dir/$t" -set_cover_merge=1 -use_counters="$counters" -max_len="${MINIMIZE_MAX_LEN:-512}" \
      "corpus/$t.min" "corpus/$t" >>"$log" 2>&1
    [ "$(ls "corpus/$t.min" | wc -l)" -le "${MINIMIZE_FILES:-200}" ] && break
  done
  rm -rf "corpus/$t" && mv "corpus/$t.min" "corpus/$t"
  echo "$t: corpus minimised to $(ls "corpus/$t" | wc -l) files, $(cat "corpus/$t"/* | wc -c) bytes"
}

failed=0
total=0
logs="$(mktemp -d)"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="$logs/$t.log"
  status=0
  seconds_var="SECONDS_$t" max_len_var="MAX_LEN_$t"
  seconds="${!seconds_var:-${SECONDS_PER_TARGET:-60}}"
  max_len="${!max_len_var:-${MAX_LEN:-${default_max_len[$t]:-4096}}}"
  if [ "${MINIMIZE_ONLY:-0}" = 1 ]; then
    minimize "$t" "$log"
    continue
  fi
  "$bin_dir/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$seconds" \
    -max_len="$max_len" -print_final_stats=1 -close_fd_mask=1 >"$log" 2>&1 || status=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "$t: CRASHED (exit $status) after ${execs:-?} executions; log: $log"
    grep -E "panicked|SUMMARY|Test unit written" "$log" | head -5 || true
  else
    echo "$t: ${execs:-?} executions in ${seconds}s (${rate:-?}/s), corpus $(ls "corpus/$t" | wc -l) files"
    total=$((total + ${execs:-0}))
  fi
  if [ "${MINIMIZE:-0}" = 1 ] && [ "$status" -eq 0 ]; then
    minimize "$t" "$log"
  fi
done
echo "fuzz: ${#targets[@]} targets, $total executions, $([ $failed = 0 ] && echo 'no crashes' || echo 'CRASHES')"
exit "$failed"

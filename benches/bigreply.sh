#!/usr/bin/env bash
# A big reply: peak memory of `midscript call alert.list` (compact, and pretty with `-o json`)
# when the reply is about 20 MB (a standalone mock started with `--alert-backlog-mb 20`),
# against the size of the reply itself
# (the goal is a peak of at most 4× the reply) and, in the same run, the `--version` floor
# and midclt when $MIDCLT names it (e.g. MIDCLT=/tmp/venv-midclt/bin/midclt).
#
#   MIDCLT=… benches/bigreply.sh [MB] [RUNS]     (defaults: 20 MB, 5 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
mb="${1:-20}"
runs="${2:-5}"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (Debian package 'time')"; exit 1; }
cargo build --release --quiet
bin=target/release/midscript
tmp=$(mktemp -d)
"$bin" mock --plain --deterministic --user bench:bench --alert-backlog-mb "$mb" >"$tmp/mock" &
mock=$!
trap 'kill $mock 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 200); do grep -q READY "$tmp/mock" 2>/dev/null && break; sleep 0.05; done
url=$(sed -n 's/^URL //p' "$tmp/mock")
export MIDSCRIPT_PASSWORD=bench

# Mean wall milliseconds and the largest peak RSS (KiB) over $runs runs; stdout to a file.
measure() {
    local total=0 peak=0 line start
    for _ in $(seq "$runs"); do
        start=$(date +%s%N)
        if ! /usr/bin/time -o "$tmp/time" -f '%M' "$@" >"$tmp/out" 2>"$tmp/err"; then
            echo "failed: $*" >&2; cat "$tmp/err" >&2; exit 1
        fi
        total=$(( total + $(date +%s%N) - start ))
        line=$(tail -1 "$tmp/time")
        (( line > peak )) && peak=$line
    done
    echo "$(echo "$total / 1000000 / $runs" | bc -l) $peak"
}

read -r floor_ms floor_kib < <(measure "$bin" --version)
read -r call_ms call_kib < <(measure "$bin" --url "$url" -U bench call alert.list)
reply_bytes=$(stat -c %s "$tmp/out")
read -r pretty_ms pretty_kib < <(measure "$bin" --url "$url" -U bench -o json call alert.list)
reply_mib=$(echo "$reply_bytes/1048576" | bc -l)
printf 'alert.list reply: %.1f MiB (%d bytes, as printed)\n' "$reply_mib" "$reply_bytes"
printf '%-36s %9s %9s %12s\n' "case (mean of $runs runs)" ms "peak MiB" "peak/reply"
printf '%-36s %9.1f %9.1f\n' "floor: midscript --version" "$floor_ms" "$(echo "$floor_kib/1024" | bc -l)"
printf '%-36s %9.1f %9.1f %11.2fx\n' "midscript call alert.list" "$call_ms" \
    "$(echo "$call_kib/1024" | bc -l)" "$(echo "$call_kib*1024/$reply_bytes" | bc -l)"
printf '%-36s %9.1f %9.1f %11.2fx\n' "midscript -o json call alert.list" "$pretty_ms" \
    "$(echo "$pretty_kib/1024" | bc -l)" "$(echo "$pretty_kib*1024/$reply_bytes" | bc -l)"
if [[ -n "${MIDCLT:-}" && -x "${MIDCLT:-}" ]]; then
    read -r c_ms c_kib < <(measure "$MIDCLT" -u "$url" -U bench -P bench call alert.list)
    printf '%-36s %9.1f %9.1f %11.2fx\n' "midclt call alert.list" "$c_ms" \
        "$(echo "$c_kib/1024" | bc -l)" "$(echo "$c_kib*1024/$reply_bytes" | bc -l)"
else
    echo "midclt: the reference is missing (set MIDCLT to its path to compare)"
fi

#!/usr/bin/env bash
# One-off call cost: what `midscript call system.info` takes end to end (process start,
# connect, login, call, close), against a floor measured in the same run: the same binary
# doing nothing but start and exit (`midscript --version`). Prints milliseconds, peak RSS
# and the ratio to the floor. For reference, midclt needs about 100 ms and 24 MiB.
#
#   benches/oneoff.sh [RUNS]      (default 15: the mock, like TrueNAS, rate-limits
#                                  anonymous calls to 20 per method per minute)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-15}"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (Debian package 'time')"; exit 1; }
cargo build --release --quiet
bin=target/release/midscript
out=$(mktemp); trap 'kill $mock 2>/dev/null || true; rm -f "$out" "$out.time"' EXIT
"$bin" mock --plain --deterministic --user bench:bench >"$out" &
mock=$!
for _ in $(seq 50); do grep -q READY "$out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^URL //p' "$out")

# Mean wall milliseconds and the largest peak RSS (KiB) over $runs runs of a command.
# (The time includes /usr/bin/time's own fork and exec, in both cases alike.)
measure() {
    local total=0 peak=0 line
    for _ in $(seq "$runs"); do
        local start=$(date +%s%N)
        /usr/bin/time -o "$out.time" -f '%M' "$@" >/dev/null 2>&1
        total=$(( total + $(date +%s%N) - start ))
        line=$(tail -1 "$out.time")
        (( line > peak )) && peak=$line
    done
    echo "$(echo "$total / 1000000 / $runs" | bc -l) $peak"
}

read -r floor_ms floor_kib < <(measure "$bin" --version)
read -r call_ms call_kib < <(measure "$bin" --url "$url" -U bench -P bench call system.info)
printf '%-34s %9s %9s\n' case ms "peak MiB"
printf '%-34s %9.1f %9.1f\n' "floor: midscript --version" "$floor_ms" "$(echo "$floor_kib/1024" | bc -l)"
printf '%-34s %9.1f %9.1f\n' "midscript call system.info" "$call_ms" "$(echo "$call_kib/1024" | bc -l)"
printf '%-34s %9.2f %9.2f\n' "ratio to floor" "$(echo "$call_ms/$floor_ms" | bc -l)" "$(echo "$call_kib/$floor_kib" | bc -l)"

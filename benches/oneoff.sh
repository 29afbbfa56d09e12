#!/usr/bin/env bash
# What users wait for in one-off commands, end to end (process start to exit), each against
# references measured in the same run:
#
# - the floor: the same binary doing nothing but start and exit (`midscript --version`);
# - midclt, the official client, when $MIDCLT names it (e.g. MIDCLT=/tmp/venv-midclt/bin/midclt;
#   without it the midclt rows say the reference is missing);
#
# for: `call system.info` over ws:// and over wss:// (password login), each client against a
# fresh standalone mock; and the commands that read the bundled method catalog:
# `--mock call core.ping` and `doc --offline app.create`. Prints mean milliseconds, the largest
# peak RSS, and the ratios.
#
#   MIDCLT=… benches/oneoff.sh [RUNS]   (default 15: the mock, like TrueNAS, rate-limits
#                                        anonymous calls, logins among them, to 20 per method
#                                        per minute, so each case gets its own mock)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-15}"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (Debian package 'time')"; exit 1; }
cargo build --release --quiet
bin=target/release/midscript
tmp=$(mktemp -d)
mocks=()
trap 'for m in "${mocks[@]}"; do kill "$m" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT

# Start a fresh mock with the given options; sets $url and $fingerprint.
start_mock() {
    local out="$tmp/mock.$RANDOM"
    "$bin" mock --deterministic --user bench:bench "$@" >"$out" &
    mocks+=($!)
    for _ in $(seq 100); do grep -q READY "$out" 2>/dev/null && break; sleep 0.05; done
    url=$(sed -n 's/^URL //p' "$out")
    fingerprint=$(sed -n 's/^FINGERPRINT //p' "$out")
}

# Mean wall milliseconds and the largest peak RSS (KiB) over $runs runs of a command, which
# must succeed. (The time includes /usr/bin/time's own fork and exec, in every case alike.)
measure() {
    local total=0 peak=0 line start
    for _ in $(seq "$runs"); do
        start=$(date +%s%N)
        if ! /usr/bin/time -o "$tmp/time" -f '%M' "$@" >/dev/null 2>"$tmp/err"; then
            echo "failed: $*" >&2; cat "$tmp/err" >&2; exit 1
        fi
        total=$(( total + $(date +%s%N) - start ))
        line=$(tail -1 "$tmp/time")
        (( line > peak )) && peak=$line
    done
    echo "$(echo "$total / 1000000 / $runs" | bc -l) $peak"
}

row() { # name ms kib
    printf '%-40s %9.1f %9.1f\n' "$1" "$2" "$(echo "$3/1024" | bc -l)"
}
ratio() { # name ms_a kib_a ms_b kib_b: a / b
    printf '%-40s %8.2fx %8.2fx\n' "$1" "$(echo "$2/$4" | bc -l)" "$(echo "$3/$5" | bc -l)"
}

midclt="${MIDCLT:-}"
if [[ -n "$midclt" && ! -x "$midclt" ]]; then
    echo "MIDCLT=$midclt is not an executable; measuring without the reference" >&2
    midclt=""
fi

read -r floor_ms floor_kib < <(measure "$bin" --version)
export MIDSCRIPT_PASSWORD=bench   # keeps the password out of the process list (and warnings)

start_mock --plain
read -r ws_ms ws_kib < <(measure "$bin" --url "$url" -U bench call system.info)
start_mock
read -r wss_ms wss_kib < <(measure "$bin" --url "$url" --fingerprint "$fingerprint" -U bench call system.info)
if [[ -n "$midclt" ]]; then
    start_mock --plain
    read -r cws_ms cws_kib < <(measure "$midclt" -u "$url" -U bench -P bench call system.info)
    start_mock
    read -r cwss_ms cwss_kib < <(measure "$midclt" -u "$url" --insecure -U bench -P bench call system.info)
fi
read -r mock_ms mock_kib < <(measure "$bin" --mock call core.ping)
read -r doc_ms doc_kib < <(measure "$bin" doc --offline app.create)

printf '%-40s %9s %9s\n' "case (mean of $runs runs)" ms "peak MiB"
row "floor: midscript --version" "$floor_ms" "$floor_kib"
row "midscript call system.info (ws)" "$ws_ms" "$ws_kib"
row "midscript call system.info (wss)" "$wss_ms" "$wss_kib"
if [[ -n "$midclt" ]]; then
    row "midclt call system.info (ws)" "$cws_ms" "$cws_kib"
    row "midclt call system.info (wss)" "$cwss_ms" "$cwss_kib"
fi
row "midscript --mock call core.ping" "$mock_ms" "$mock_kib"
row "midscript doc --offline app.create" "$doc_ms" "$doc_kib"
echo
printf '%-40s %9s %9s\n' "ratio" time memory
ratio "call (ws) / floor" "$ws_ms" "$ws_kib" "$floor_ms" "$floor_kib"
ratio "call (wss) / floor" "$wss_ms" "$wss_kib" "$floor_ms" "$floor_kib"
if [[ -n "$midclt" ]]; then
    ratio "midclt / midscript, call (ws)" "$cws_ms" "$cws_kib" "$ws_ms" "$ws_kib"
    ratio "midclt / midscript, call (wss)" "$cwss_ms" "$cwss_kib" "$wss_ms" "$wss_kib"
else
    echo "midclt: the reference is missing (set MIDCLT to its path to compare)"
fi
ratio "--mock call core.ping / floor" "$mock_ms" "$mock_kib" "$floor_ms" "$floor_kib"
ratio "doc --offline app.create / floor" "$doc_ms" "$doc_kib" "$floor_ms" "$floor_kib"

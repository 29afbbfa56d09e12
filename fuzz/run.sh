#!/bin/sh
# Run every fuzz target for a bounded time (default 60 s each) and say what each found.
#
#   fuzz/run.sh [SECONDS] [TARGET…]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Corpora grow in
# fuzz/corpus/TARGET (ignored by git); a crashing input lands in fuzz/artifacts/TARGET: copy
# it to fuzz/regressions/TARGET/ (replayed by `cargo test --test main fuzz_regressions::`)
# once the bug is fixed. Exit status: 0 when no target found anything, 1 otherwise.
set -u
cd "$(dirname "$0")"
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"decode_jsonrpc decode_legacy ejson compose_load interpolate env_file call_args"}
cargo +nightly fuzz build -O $targets >/dev/null 2>&1 || cargo +nightly fuzz build -O || exit 2
status=0
for t in $targets; do
    mkdir -p "corpus/$t"
    # Seed the corpus with the regression inputs, and with the repo's fixtures where they fit.
    [ -d "regressions/$t" ] && cp -n regressions/$t/* "corpus/$t/" 2>/dev/null
    case $t in
        compose_load) cp -n ../tests/fixtures/compose/*/compose*.y*ml "corpus/$t/" 2>/dev/null ;;
        env_file) cp -n ../tests/fixtures/compose/*/.env "corpus/$t/" 2>/dev/null ;;
    esac
    start=$(date +%s)
    log="artifacts/$t.log"
    mkdir -p artifacts
    cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
        -max_len=65536 >"$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1)
    if [ $rc -eq 0 ]; then
        echo "$t: ${took}s, ${runs:-? runs}, nothing found"
    else
        status=1
        echo "$t: ${took}s, FOUND: $(grep -m1 -E 'panicked|ERROR: AddressSanitizer|deadly signal|out-of-memory|timeout' "$log")"
        grep -m1 'Test unit written to' "$log"
    fi
done
exit $status

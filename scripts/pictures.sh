#!/usr/bin/env bash
# Makes the README's pictures from real runs: the snapshot cut of testcases/arg.txt, a 2PC
# transfer whose participant crashes and restarts (testcases/s06_crash_after_vote.txt),
# and a screenshot of the live page taken by the browser test. Needs Chromium
# (apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
bank=target/release/bank-master
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
shot() { # shot NAME COMMANDFILE WIDTH
    "$bank" --seed 1 --trace "$tmp/$1.trace" "$2" > /dev/null
    "$bank" draw "$tmp/$1.trace" -o "$tmp/$1.svg"
    local height
    height=$(sed -n 's/^<svg [^>]* height="\([0-9]*\)".*/\1/p' "$tmp/$1.svg")
    TMPDIR="$tmp" chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --hide-scrollbars \
        --user-data-dir="$tmp/chrome" --window-size="$3,$height" \
        --screenshot="docs/pictures/$1.png" "file://$tmp/$1.svg" 2> /dev/null
    echo "docs/pictures/$1.png"
}
shot snapshot-cut testcases/arg.txt 800
shot two-pc-crash testcases/s06_crash_after_vote.txt 800
cargo test --release -q --test web the_live_page_runs_a_session_and_shows_it > /dev/null
cp target/screenshots/live-page.png docs/pictures/live-page.png
echo docs/pictures/live-page.png

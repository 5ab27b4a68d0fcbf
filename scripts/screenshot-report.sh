#!/usr/bin/env bash
# Screenshot of a run's report.html in headless Chromium, as committed in
# docs/img/report-html.png:
#   scripts/screenshot-report.sh [REPORT_HTML] [OUT_PNG] [WIDTHxHEIGHT]
# Default: reports/latest/report.html at phone width (390 px). Run a drill first, e.g.
#   target/debug/pgdrill run scenarios/03-adr007-missing-wal-segment.yaml
set -euo pipefail
page=$(realpath "${1:-reports/latest/report.html}")
out=$(realpath -m "${2:-docs/img/report-html.png}")
size=${3:-390x1900}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
timeout 60 /usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="${size/x/,}" \
  --screenshot="$out" "file://$page" 2>/dev/null
echo "$out ($(stat -c %s "$out") bytes)"

#!/usr/bin/env bash
# Opens a bundle's report.html in headless Chromium (Debian's package) and saves a PNG screenshot.
#   scripts/screenshot_report.sh BUNDLE_DIR [OUT.png]
set -euo pipefail
bundle=${1:?usage: scripts/screenshot_report.sh BUNDLE_DIR [OUT.png]}
out=${2:-docs/report_screenshot.png}
html="$(cd "$bundle" && pwd)/reports/report.html"
[ -f "$html" ] || { echo "screenshot_report: error: $html not found: run trigger report first" >&2; exit 1; }
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    browser=$(command -v chromium)
  else
    echo "screenshot_report: error: chromium not found; run: sudo apt-get install chromium" >&2; exit 1
  fi
fi
mkdir -p "$(dirname "$out")"
profile=$(mktemp -d)
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=1100,1600 --hide-scrollbars \
  --screenshot="$(realpath -m "$out")" "file://$html" 2>/dev/null
rm -rf "$profile"
[ -s "$out" ] || { echo "screenshot_report: error: no screenshot written" >&2; exit 1; }
echo "screenshot of $html written to $out"

#!/usr/bin/env bash
# Opens a bundle's report.html in headless Chromium (Debian's package) and saves a PNG screenshot.
#   scripts/screenshot_report.sh BUNDLE_DIR [OUT.png]
#   SECTION="Physics on your data" scripts/screenshot_report.sh BUNDLE_DIR OUT.png   # one <h2> section only
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
if [ -n "${SECTION:-}" ]; then  # the page's head and title, then that section alone (up to the next <h2>)
  part="$profile/section.html"
  SECTION="$SECTION" python3 - "$html" "$part" <<'PY'
import os, re, sys
page = open(sys.argv[1]).read()
heading = f"<h2>{os.environ['SECTION']}</h2>"
start = page.find(heading)
if start < 0:
    sys.exit(f"screenshot_report: error: no section {heading} in {sys.argv[1]}")
end = page.find("<h2>", start + len(heading))
head = page[:page.find("<body>") + len("<body>")]
title = re.search(r"<h1>.*?</h1>", page, re.S)
open(sys.argv[2], "w").write(head + (title.group(0) if title else "") + page[start:end if end > 0 else None]
                             + "</body></html>")
PY
  html="$part"
fi
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=1100,1600 --hide-scrollbars \
  --screenshot="$(realpath -m "$out")" "file://$html" 2>/dev/null
rm -rf "$profile"
[ -s "$out" ] || { echo "screenshot_report: error: no screenshot written" >&2; exit 1; }
echo "screenshot of $html written to $out"

#!/usr/bin/env bash
# The page of amtgw --http in a real browser (issue 19): the relay test bed streams H.264/AAC in
# MPEG-TS; headless Debian Chromium, driven by playwright-core, opens http://127.0.0.1:8080/ in
# the gateway's namespace, joins the channel through the form by pasting its amt:// URL, and the
# page's video element plays it (page_plays.mjs). The screenshot is kept in BROWSER_OUT.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../system/lib.sh"
source "$here/../system/topology.sh"

[ -x /usr/bin/chromium ] || skip "Debian's chromium is not installed (sudo scripts/setup installs it)"
command -v node >/dev/null || skip "node is not installed (sudo scripts/setup installs nodejs)"
[ -d "$here/node_modules/playwright-core" ] ||
    fail "playwright-core is missing: run 'npm ci' in tests/browser (sudo scripts/setup does)"
[ -f "$here/../../gateway/web/node_modules/mpegts.js/dist/mpegts.js" ] ||
    fail "mpegts.js is missing: run 'npm ci' in gateway/web (sudo scripts/setup does)"
[[ "$(ffmpeg -hide_banner -encoders 2>/dev/null)" == *libx264* ]] ||
    skip "this ffmpeg has no libx264 encoder (Debian's ffmpeg has it: sudo scripts/setup)"

build_topology
start_h264_video 120
spawn gw1 gateway1 "$AMTGW" --http 8080 --relay "$RELAY_IP" --web "$here/../../gateway/web"
wait_for 10 "amtgw serves the page" in_ns gw1 curl -sf http://127.0.0.1:8080/
out=${BROWSER_OUT:-$WORK}
mkdir -p "$out"
in_ns gw1 timeout 100 node "$here/page_plays.mjs" http://127.0.0.1:8080/ \
    "amt://$SOURCE_IP@$GROUP:5000" 320 "$out/gateway_page.png" >"$WORK/browser.json" 2>"$WORK/browser.log" ||
    fail "the page did not play the channel: $(tail -n 15 "$WORK/browser.log") $(cat "$WORK/browser.json")"
pass "the page plays the channel in Chromium: $(cat "$WORK/browser.json")"
grep -q "joining amt://$SOURCE_IP@$GROUP:5000" "$WORK/gateway1.log" || fail "amtgw did not log the form's join"
pass "screenshot: $out/gateway_page.png"

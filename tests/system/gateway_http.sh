#!/usr/bin/env bash
# amtgw --http end to end (issue 19): ffmpeg sends H.264/AAC in MPEG-TS → upstream → amtrelayd →
# NAT → amtgw --http in gw1, which joins nothing until an HTTP client asks. Checks: ffprobe opens
# the channel's URL and decodes H.264 320x240 and AAC; two HTTP clients of one channel share one
# tunnel at the relay (amtctl tunnels); the first client leaving keeps the tunnel; the last one
# leaving makes amtgw leave and the relay drop the tunnel; /status.json counts the viewers; the
# page's Join (POST /join) of a channel nobody sends to says "no data", of a channel that is not
# MPEG-TS says the page cannot play it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

[[ "$(ffmpeg -hide_banner -encoders 2>/dev/null)" == *libx264* ]] ||
    skip "this ffmpeg has no libx264 encoder (Debian's ffmpeg has it: sudo scripts/setup)"
build_topology
start_h264_video 90
HTTP=127.0.0.1:8080
STREAM=/$SOURCE_IP/$GROUP/5000.ts
spawn gw1 gateway1 "$AMTGW" --http "$HTTP" --relay "$RELAY_IP" --no-data-warning 3
GW=$LAST_PID
wait_for 10 "amtgw serves /status.json" in_ns gw1 curl -sf "http://$HTTP/status.json"

ctl() { "$AMTCTL" --socket "$WORK/control.sock" --json "$@"; }
# Tunnels at the relay that are members of the group.
relay_tunnels() { ctl tunnels --group "$GROUP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }
# channel_field FIELD [PATH]: a field of the channel in /status.json (0 when it is not listed).
channel_field() {
    in_ns gw1 curl -sf "http://$HTTP/status.json" | python3 -c '
import json, sys
c = [c for c in json.load(sys.stdin)["channels"] if c["path"] == sys.argv[1]]
print(c[0][sys.argv[2]] if c else 0)' "${2:-$STREAM}" "$1"
}
# problem_says PATH TEXT: the channel's problem sentence contains TEXT.
problem_says() { [[ "$(channel_field problem "$1")" == *"$2"* ]]; }
field_is() { [ "$(channel_field "$1")" = "$2" ]; }
relay_tunnels_are() { [ "$(relay_tunnels)" = "$1" ]; }

[ "$(relay_tunnels)" = 0 ] || fail "a tunnel at the relay before any viewer"
pass "amtgw --http joins nothing before a viewer asks"

# ffprobe opens the URL as any player would and must decode both streams. amtgw starts a new
# viewer at a keyframe (the PAT before it), so the decoder never sees a frame without its PPS.
in_ns gw1 timeout 40 ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 \
    "http://$HTTP$STREAM" >"$WORK/ffprobe-http.txt" 2>"$WORK/ffprobe-http.log" ||
    fail "ffprobe on http://$HTTP$STREAM: $(tail -n3 "$WORK/ffprobe-http.log")"
grep -q "^h264,320,240" "$WORK/ffprobe-http.txt" || fail "ffprobe finds no H.264 320x240: $(cat "$WORK/ffprobe-http.txt")"
grep -q "^aac" "$WORK/ffprobe-http.txt" || fail "ffprobe finds no AAC: $(cat "$WORK/ffprobe-http.txt")"
! grep -q "non-existing PPS" "$WORK/ffprobe-http.log" ||
    fail "the stream did not start at a keyframe: $(head -n2 "$WORK/ffprobe-http.log")"
pass "ffprobe decodes http://$HTTP$STREAM from its first frame: $(tr '\n' ' ' <"$WORK/ffprobe-http.txt")"
# ffprobe was the only viewer: when it hung up, amtgw left and the relay dropped the tunnel.
wait_for 15 "amtgw leaves after ffprobe" grep -q "left amt://$SOURCE_IP@$GROUP:5000" "$WORK/gateway1.log"
wait_for 15 "the relay drops the tunnel" relay_tunnels_are 0

# Two viewers of one channel: one tunnel.
spawn gw1 viewer1 curl -sfN -o "$WORK/viewer1.ts" "http://$HTTP$STREAM"
VIEWER1=$LAST_PID
spawn gw1 viewer2 curl -sfN -o "$WORK/viewer2.ts" "http://$HTTP$STREAM"
VIEWER2=$LAST_PID
wait_for 15 "/status.json shows 2 viewers" field_is viewers 2
wait_for 15 "the channel is joined" field_is state joined
wait_for 15 "viewer 2 receives" test -s "$WORK/viewer2.ts"
wait_for 10 "the relay has the tunnel" relay_tunnels_are 1
ctl tunnels >"$WORK/tunnels-two-viewers.json"
[ "$(relay_tunnels)" = 1 ] || fail "two viewers of one channel: $(relay_tunnels) tunnels at the relay (want 1)"
pass "two HTTP viewers of one channel share one tunnel at the relay"

# The first viewer leaves: the tunnel stays for the second.
kill "$VIEWER1"
wait_for 15 "/status.json shows 1 viewer" field_is viewers 1
size=$(stat -c %s "$WORK/viewer2.ts")
wait_for 15 "viewer 2 keeps receiving" bash -c "[ \$(stat -c %s '$WORK/viewer2.ts') -gt $size ]"
[ "$(relay_tunnels)" = 1 ] || fail "the tunnel went when one of two viewers left"
pass "one viewer left: the other keeps receiving through the same tunnel"

# The last viewer leaves: amtgw leaves, the relay drops the tunnel.
kill "$VIEWER2"
wait_for 15 "amtgw leaves after the last viewer" \
    bash -c "[ \$(grep -c 'left amt://$SOURCE_IP@$GROUP:5000' '$WORK/gateway1.log') -ge 2 ]"
wait_for 15 "the relay drops the tunnel" relay_tunnels_are 0
pass "the last viewer left: amtgw left the channel and the relay dropped the tunnel"
ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$WORK/viewer2.ts" >"$WORK/ffprobe-viewer2.txt" 2>&1 || true
grep -q "^h264" "$WORK/ffprobe-viewer2.txt" || fail "viewer 2's recording does not decode as H.264"
pass "viewer 2's recording decodes"
# Joined from the page's form, a group nobody sends to: the page says so in words.
in_ns gw1 curl -sf -d "url=amt://$SOURCE_IP@232.1.1.9:5000" "http://$HTTP/join" >/dev/null ||
    fail "POST /join refused a good amt:// URL"
wait_for 20 "the page says there is no data" problem_says "/$SOURCE_IP/232.1.1.9/5000.ts" "no data for"
pass "a silent channel: \"$(channel_field problem "/$SOURCE_IP/232.1.1.9/5000.ts")\""
# A channel that is not MPEG-TS (text datagrams): the page says it cannot play it.
in_ns gw1 curl -sf -d "url=amt://$SOURCE_IP@232.1.1.2:6000" "http://$HTTP/join" >/dev/null
send_multicast src 232.1.1.2 6000 400 0.05 &
PIDS+=("$!")
wait_for 30 "the page says it is not MPEG-TS" problem_says "/$SOURCE_IP/232.1.1.2/6000.ts" "not MPEG-TS"
pass "a channel that is not MPEG-TS: \"$(channel_field problem "/$SOURCE_IP/232.1.1.2/6000.ts")\""
error=$(in_ns gw1 curl -s -d "url=amt://$SOURCE_IP@10.1.1.1:5000" "http://$HTTP/join")
[[ "$error" == *"not a multicast address"* ]] || fail "POST /join of a unicast group: $error"
pass "a bad URL in the form is refused with: $error"
kill -INT "$GW"
wait_exit "$GW" 10 "amtgw exits on Ctrl-C"

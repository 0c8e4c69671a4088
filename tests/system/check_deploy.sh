#!/usr/bin/env bash
# Static checks of deploy/: Prometheus rules (syntax and unit tests), the Prometheus config,
# shell syntax of the scripts, bird2 and FRR configurations (their own parsers), every JSON file parses, every dashboard/rule expression parses
# as PromQL, and, given a scrape of a running amtrelayd as $1, every amt_* metric the dashboard
# and the alert rules query exists in it. Needs promtool (Debian package prometheus).
#   tests/system/check_deploy.sh [SCRAPE_FILE]
set -euo pipefail

DEPLOY="$(cd "$(dirname "$0")/../../deploy" && pwd)"
SCRAPE="${1:-}"
[ -n "$SCRAPE" ] && SCRAPE="$(realpath "$SCRAPE")"   # the checks below change directory
PY=/usr/bin/python3
failures=0
check() {  # check DESCRIPTION CMD...: runs CMD, prints PASS/FAIL with its output on failure
    local what="$1" out
    shift
    if out=$("$@" 2>&1); then
        echo "PASS $what"
    else
        echo "FAIL $what"
        printf '%s\n' "$out" | sed 's/^/    /'
        failures=$((failures + 1))
    fi
}

command -v promtool >/dev/null || { echo "FAIL promtool not found (apt-get install prometheus)"; exit 1; }
cd "$DEPLOY/prometheus"   # rule_files in the config and the tests are relative
check "promtool check rules" promtool check rules amtrelay-rules.yml
check "promtool test rules" promtool test rules amtrelay-rules.test.yml
check "promtool check config" promtool check config prometheus.yml
cd "$DEPLOY"

while IFS= read -r -d '' script; do
    check "bash -n ${script#"$DEPLOY"/}" bash -n "$script"
    if command -v shellcheck >/dev/null; then
        check "shellcheck ${script#"$DEPLOY"/}" shellcheck "$script"
    fi
done < <(find "$DEPLOY" -name '*.sh' -print0)

# The anycast hook is /bin/sh (it runs as a drain hook and from systemd, without bash).
check "sh -n anycast/amt-anycast" sh -n anycast/amt-anycast
if command -v shellcheck >/dev/null; then
    check "shellcheck anycast/amt-anycast" shellcheck anycast/amt-anycast
fi
# The routing daemons' own parsers (bird2, FRR: scripts/setup installs both).
if command -v bird >/dev/null; then
    check "bird -p anycast/bird2.conf" bird -p -c anycast/bird2.conf
else
    echo "SKIP bird -p anycast/bird2.conf (bird2 not installed)"
fi
# bgpd -C exits 0 even on a line it cannot parse: its complaints are the verdict.
bgpd_config_clean() {
    local dir out
    dir=$(mktemp -d)
    out=$(/usr/lib/frr/bgpd -C -f "$1" --vty_socket "$dir" -z "$dir/zserv.api" -i "$dir/bgpd.pid" 2>&1)
    rm -rf "$dir"
    echo "$out"
    ! grep -q "\[EC " <<<"$out"
}
if [ -x /usr/lib/frr/bgpd ]; then
    check "bgpd -C anycast/frr-router.conf" bgpd_config_clean anycast/frr-router.conf
else
    echo "SKIP bgpd -C anycast/frr-router.conf (FRR not installed)"
fi

while IFS= read -r -d '' json; do
    check "JSON parses: ${json#"$DEPLOY"/}" "$PY" -m json.tool "$json" /dev/null
done < <(find "$DEPLOY" -name '*.json' -print0)

check "PromQL of the dashboard and the rules parses" \
    "$PY" "$DEPLOY/grafana/check_dashboard.py" --rules "$DEPLOY/prometheus/amtrelay-rules.yml" \
    --promql-syntax

if [ -n "$SCRAPE" ]; then
    check "dashboard and rules metrics exist in $SCRAPE" \
        "$PY" "$DEPLOY/grafana/check_dashboard.py" --scrape "$SCRAPE" \
        --rules "$DEPLOY/prometheus/amtrelay-rules.yml"
else
    echo "SKIP metrics against a scrape (give a scrape of amtrelayd's /metrics as \$1)"
fi

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all deploy/ checks passed"

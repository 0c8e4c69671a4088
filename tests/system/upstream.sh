# The system tests' and the demo's upstream: the network between the multicast source and the
# relay's upstream port. Kernels of this machine class differ (test-topology.md), so it is chosen
# here, once, from what the kernel offers, and said:
#
#   router    FRR pimd, a real IGMPv3/SSM (and ASM, with an RP) router. Needs kernel multicast
#             routing: /proc/net/ip_mr_vif (CONFIG_IP_MROUTE).
#   switched  a Linux bridge with IGMPv3/MLDv2 snooping and its own querier. It forwards a
#             group toward the relay only while the relay's report asks for it (no flooding of
#             unknown groups on that port), and its mdb is a witness of the report.
#
# AMT_UPSTREAM=router|switched forces one (router still needs the kernel feature). IPv6 is always
# switched: Debian 12's FRR has no pim6d. Whatever the upstream, the relay's own reports are
# captured on its upstream link and decoded by tshark (upstream_reports), an independent judge of
# join, leave and answers to queries. Checks only a PIM router can make live in pim_router.sh,
# which skips with its reason where the router cannot run.
#
# Names: UPSTREAM (router|switched), UPSTREAM_NS (rtr|sw) and UPSTREAM_IF, the upstream's port
# toward the relay (r-rel|sw-rel); UPSTREAM_SRC_IF, its port toward the source. A test with
# several relays lists the upstream's ports toward them in UPSTREAM_RELAY_IFS instead.

# choose_upstream FAMILY (ipv4|ipv6): sets UPSTREAM and the names above, and says which and why.
choose_upstream() {
    local family=$1 why
    why=$(router_unavailable_reason)
    if [ "$family" = ipv6 ]; then
        UPSTREAM=switched
        why="Debian 12's FRR has no pim6d, so IPv6 has no dynamic multicast router"
    elif [ -n "${AMT_UPSTREAM:-}" ]; then
        case "$AMT_UPSTREAM" in
            router) [ -z "$why" ] || fail "AMT_UPSTREAM=router, but $why; unset AMT_UPSTREAM to use the switched upstream" ;;
            switched) why="AMT_UPSTREAM=switched" ;;
            *) fail "AMT_UPSTREAM='$AMT_UPSTREAM': use router or switched (or leave it unset to detect)" ;;
        esac
        UPSTREAM=$AMT_UPSTREAM
    elif [ -z "$why" ]; then
        UPSTREAM=router
    else
        UPSTREAM=switched
    fi
    [ "$UPSTREAM" = router ] || need bridge_snooping
    if [ "$UPSTREAM" = router ]; then
        UPSTREAM_NS=rtr UPSTREAM_IF=r-rel UPSTREAM_SRC_IF=r-src
        echo "upstream: router (FRR pimd, IGMPv3/SSM): this kernel routes IPv4 multicast (/proc/net/ip_mr_vif)"
    else
        UPSTREAM_NS=sw UPSTREAM_IF=sw-rel UPSTREAM_SRC_IF=sw-src
        echo "upstream: switched (Linux bridge, IGMPv3/MLDv2 snooping and querier): $why"
    fi
}

start_frr() {
    local dir="$WORK/frr"
    mkdir -p "$dir"
    cat >"$dir/zebra.conf" <<C
hostname rtr
C
    # PIM_RP set: an RP for ASM (*,G) joins (the router itself; it is the sources' DR too).
    cat >"$dir/pimd.conf" <<C
hostname rtr
${PIM_RP:+ip pim rp ${PIM_RP} 224.0.0.0/4}
interface r-src
 ip pim
$(for i in ${UPSTREAM_RELAY_IFS:-r-rel}; do cat <<I
interface $i
 ip pim
 ip igmp
 ip igmp version 3
 ip igmp query-interval 10
 ip igmp query-max-response-time 20
 ip igmp last-member-query-interval 10
 ip igmp last-member-query-count 2
I
done)
C
    start_frr_daemons rtr "$dir" pimd
}

# start_frr_daemons NS DIR DAEMON [LOG_PREFIX]: FRR's zebra and DAEMON (pimd, bgpd) in namespace
# NS, everything in DIR (DIR/zebra.conf, DIR/DAEMON.conf, sockets, pid files; owned by frr), no
# system FRR involved; logs in $WORK/LOG_PREFIX{zebra,DAEMON}.log; query with vtysh --vty_socket DIR.
start_frr_daemons() {
    local n=$1 dir=$2 daemon=$3 log=${4:-}
    chown -R frr:frr "$dir"
    in_ns "$n" /usr/lib/frr/zebra -d -z "$dir/zserv.api" --vty_socket "$dir" -P 0 \
        -f "$dir/zebra.conf" -i "$dir/zebra.pid" >"$WORK/${log}zebra.log" 2>&1
    wait_for 10 "zebra's zserv.api" test -S "$dir/zserv.api"
    in_ns "$n" "/usr/lib/frr/$daemon" -d -z "$dir/zserv.api" --vty_socket "$dir" -P 0 \
        -f "$dir/$daemon.conf" -i "$dir/$daemon.pid" >"$WORK/$log$daemon.log" 2>&1
    wait_for 10 "$daemon's vty socket" test -S "$dir/$daemon.vty"
    PIDS+=("$(cat "$dir/zebra.pid")" "$(cat "$dir/$daemon.pid")")
}

vtysh_rtr() { vtysh --vty_socket "$WORK/frr" -c "$1" 2>/dev/null; }
# rtr_shows COMMAND PATTERN: pimd's answer to a show COMMAND matches PATTERN; rtr_lacks: it does not.
rtr_shows() { vtysh_rtr "$1" | grep -q "$2"; }
rtr_lacks() { ! rtr_shows "$@"; }

# start_switch ADDRESS: the bridge br0 in namespace sw over sw-src and sw-rel, snooping IGMPv3 and
# MLDv2, with its own querier (source ADDRESS on br0 for IPv4; the link-local one for IPv6).
# Short query timers so tests see the relay answer general queries, and a 1 s response interval:
# the bridge ignores its mdb (and floods) until one response interval after the querier starts.
start_switch() {
    local address=$1
    in_ns sw ip link add br0 type bridge mcast_snooping 1 mcast_igmp_version 3 mcast_mld_version 2 \
        mcast_query_use_ifaddr 1 mcast_query_interval 500 mcast_query_response_interval 100 \
        mcast_startup_query_interval 100 mcast_last_member_interval 100
    in_ns sw ip link set sw-src master br0
    # Nothing toward the relay but what its report asks for: with a querier present the bridge
    # sends unregistered groups only to router ports (the relay's is not one), and mcast_flood off
    # covers the start-up before that. ipv4_ssm_video checks it (no_flow drops before the join).
    local port
    for port in ${UPSTREAM_RELAY_IFS:-sw-rel}; do
        in_ns sw ip link set "$port" master br0
        in_ns sw bridge link set dev "$port" mcast_flood off
    done
    [ -n "$address" ] && in_ns sw ip addr add "$address" dev br0
    in_ns sw ip link set br0 up
    wait_for 10 "bridge link-local address" bash -c \
        "ip netns exec $(ns sw) ip -6 addr show dev br0 scope link | grep -q fe80"
    in_ns sw ip link set br0 type bridge mcast_querier 1
    sleep 1.5  # one response interval: the querier counts as present, the mdb steers forwarding
}

# switch_mdb: the bridge's memberships learned on the relay's port, one per line.
switch_mdb() { in_ns sw bridge -d mdb show dev br0 port sw-rel 2>/dev/null; }

# upstream_has S G: the upstream holds the relay's join for (S,G); S "*" for (*,G) (EXCLUDE).
upstream_has() {
    local s=$1 g=$2
    if [ "$UPSTREAM" = router ]; then
        if [ "$s" = "*" ]; then
            vtysh_rtr "show ip igmp groups" | grep "$g" | grep -qi "EXCL"
        else
            vtysh_rtr "show ip igmp sources" | grep "$g" | grep -q "$s"
        fi
    elif [ "$s" = "*" ]; then
        switch_mdb | grep -v " src " | grep "grp $g " | grep -q "filter_mode exclude"
    else
        switch_mdb | grep -q "grp $g src $s "
    fi
}
# upstream_has_any G: any membership for group G is left upstream (after a leave: none).
upstream_has_any() {
    if [ "$UPSTREAM" = router ]; then
        vtysh_rtr "show ip igmp groups" | grep -q "$1" || vtysh_rtr "show ip igmp sources" | grep -q "$1"
    else
        switch_mdb | grep -q "grp $1 "
    fi
}
# upstream_join_count PATTERN: how many (S,G) joins whose line matches PATTERN the upstream holds.
upstream_join_count() {
    if [ "$UPSTREAM" = router ]; then
        vtysh_rtr "show ip igmp sources" | grep -c "$1" || true
    else
        switch_mdb | grep " src " | grep -c "$1" || true
    fi
}
upstream_name() {
    [ "$UPSTREAM" = router ] && echo "FRR pimd" || echo "the snooping bridge"
}
# wait_upstream_joined SECONDS S G / wait_upstream_left SECONDS G: the upstream learned the join;
# it dropped every membership for G (router: pruned; bridge: forgot the group).
wait_upstream_joined() { wait_for "$1" "$(upstream_name) has the relay's join for ($2, $3)" upstream_has "$2" "$3"; }
upstream_lacks_any() { ! upstream_has_any "$1"; }
wait_upstream_left() { wait_for "$1" "$(upstream_name) drops $2 after the relay left" upstream_lacks_any "$2"; }

# The relay's IGMP/MLD traffic on its upstream link, captured from the upstream's side in both
# modes (MLD follows a Hop-by-Hop header, which tcpdump's "icmp6" does not look past).
start_upstream_capture() {
    spawn "$UPSTREAM_NS" upstream-capture tcpdump -nni "$UPSTREAM_IF" -U -w "$WORK/upstream.pcap" \
        "igmp or (ip6 and not udp)"
    UPSTREAM_CAPTURE=$LAST_PID
    wait_for 10 "upstream capture running" grep -q "listening on" "$WORK/upstream-capture.log"
}
stop_upstream_capture() {
    kill -TERM "$UPSTREAM_CAPTURE"
    wait_exit "$UPSTREAM_CAPTURE" 10 "upstream capture written"
    "$(dirname "${BASH_SOURCE[0]}")/upstream_reports.py" "$WORK/upstream.pcap" >"$WORK/upstream.txt" ||
        fail "cannot decode the upstream capture: $(tail -n 5 "$WORK/upstream.txt")"
    echo "--- IGMP/MLD on the relay's upstream link (tshark):"
    cat "$WORK/upstream.txt"
}

# expect_report TYPE S G WHAT: the relay (from RELAY_REPORT_SOURCE) sent a record of TYPE for
# group G naming source S ("-" for a record with no sources). Record types (RFC 3376 §4.2.12,
# RFC 3810 §5.2.12): IS_IN IS_EX TO_IN TO_EX ALLOW BLOCK.
expect_report() {
    local type=$1 s=$2 g=$3 what=$4
    awk -v src="$RELAY_REPORT_SOURCE" -v t="$type" -v s="$s" -v g="$g" '
        $3 == "report" && $2 ~ src && $4 == t && $5 == g && (s == "-" ? $6 == "-" : ("," $6 ",") ~ ("," s ",")) {found = 1}
        END {exit !found}' "$WORK/upstream.txt" ||
        fail "no $type ($s, $g) record from the relay upstream ($what)"
    pass "the relay sent $type ($s, $g) upstream: $what (tshark)"
}

# expect_query_answered G: after a general query on the link, the relay reported its current
# state of G (IS_IN or IS_EX) within the query's response time plus a second.
expect_query_answered() {
    local g=$1
    awk -v src="$RELAY_REPORT_SOURCE" -v g="$g" '
        $3 == "query" && $4 == "general" {q[++n] = $1; max[n] = $5}
        $3 == "report" && $2 ~ src && ($4 == "IS_IN" || $4 == "IS_EX") && $5 == g {
            for (i = 1; i <= n; i++) if ($1 >= q[i] && $1 <= q[i] + max[i] + 1) found = 1
        }
        END {exit !found}' "$WORK/upstream.txt" ||
        fail "no answer (IS_IN/IS_EX for $g) from the relay to a general query on its upstream link"
    pass "the relay answered the querier's general query with its state of $g (tshark)"
}

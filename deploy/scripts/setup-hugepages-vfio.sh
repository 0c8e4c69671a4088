#!/usr/bin/env bash
# Prepares a host for amtrelayd in PMD mode: hugepages per NUMA node, a hugetlbfs mount for the
# page size, the vfio-pci module, and the relay's NICs bound to vfio-pci. Idempotent: run it at
# every boot (deploy/systemd/amtrelayd-hugepages.service) or by hand; what is already in place
# is left alone. AF_XDP mode needs none of this (the kernel keeps the NIC; see deploy/README.md).
#
#   setup-hugepages-vfio.sh --pages 4 --size 1G 0000:3b:00.0 0000:3b:00.1
#   setup-hugepages-vfio.sh --dry-run --pages 1024 --size 2M 0000:3b:00.0
#
# Defaults come from the environment (the systemd unit reads /etc/default/amtrelayd-hugepages):
#   AMT_HUGEPAGES (pages per NUMA node, 0 = leave alone), AMT_HUGEPAGE_SIZE (1G or 2M),
#   AMT_PCI_DEVICES (space-separated), AMT_HUGEPAGE_MOUNT, AMT_DRIVER, DPDK_DEVBIND.
set -euo pipefail

PAGES="${AMT_HUGEPAGES:-0}"
SIZE="${AMT_HUGEPAGE_SIZE:-1G}"
MOUNT_POINT="${AMT_HUGEPAGE_MOUNT:-}"
DRIVER="${AMT_DRIVER:-vfio-pci}"
DEVBIND="${DPDK_DEVBIND:-}"
DRY_RUN=0
FORCE=0
read -r -a DEVICES <<<"${AMT_PCI_DEVICES:-}"
SYSFS="${AMT_SYSFS:-/sys}"   # only for tests against a fake tree

usage() {
    cat <<EOF
Usage: ${0##*/} [OPTIONS] [PCI_ADDRESS...]

Reserve hugepages on every NUMA node, mount hugetlbfs, load vfio-pci and bind the given NICs
to it with dpdk-devbind.py. Safe to run again: nothing already in place is changed.

Options:
  -n, --pages N        hugepages to reserve per NUMA node (default \$AMT_HUGEPAGES or 0: skip)
  -s, --size 1G|2M     hugepage size (default \$AMT_HUGEPAGE_SIZE or 1G)
  -m, --mount DIR      hugetlbfs mount point if none exists for that size
                       (default /dev/hugepages for 2M, /dev/hugepages-1G for 1G)
  -d, --driver NAME    driver to bind to (default vfio-pci)
  -f, --force          unbind an interface even if it is up and has routes (you lose it!)
      --dry-run        print what would be changed, change nothing
  -h, --help           this help

PCI addresses: 0000:3b:00.0 or 3b:00.0 (default \$AMT_PCI_DEVICES). Find them with
  dpdk-devbind.py --status-dev net
Exit status: 0 done (or nothing to do), 1 something could not be done, 2 usage error.
EOF
}

log() { printf '%s: %s\n' "${0##*/}" "$*"; }
warn() { printf '%s: warning: %s\n' "${0##*/}" "$*" >&2; }
die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# run CMD...: runs it, or only prints it with --dry-run.
run() {
    if [ "$DRY_RUN" -eq 1 ]; then
        log "would run: $*"
    else
        log "running: $*"
        "$@"
    fi
}

# write VALUE FILE: sysfs write, or print it with --dry-run.
write_sysfs() {
    if [ "$DRY_RUN" -eq 1 ]; then
        log "would write $1 to $2"
    else
        log "writing $1 to $2"
        printf '%s\n' "$1" >"$2"
    fi
}

while [ $# -gt 0 ]; do
    case "$1" in
        -n|--pages) PAGES="${2:?--pages needs a number}"; shift 2 ;;
        -s|--size) SIZE="${2:?--size needs 1G or 2M}"; shift 2 ;;
        -m|--mount) MOUNT_POINT="${2:?--mount needs a directory}"; shift 2 ;;
        -d|--driver) DRIVER="${2:?--driver needs a name}"; shift 2 ;;
        -f|--force) FORCE=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; DEVICES+=("$@"); break ;;
        -*) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
        *) DEVICES+=("$1"); shift ;;
    esac
done

[[ "$PAGES" =~ ^[0-9]+$ ]] || { echo "--pages must be a number, not '$PAGES'" >&2; exit 2; }
case "$SIZE" in
    1G|1g|1GB|1048576kB) SIZE=1G; KB=1048576 ;;
    2M|2m|2MB|2048kB) SIZE=2M; KB=2048 ;;
    *) echo "--size must be 1G or 2M, not '$SIZE'" >&2; exit 2 ;;
esac
if [ -z "$MOUNT_POINT" ]; then
    if [ "$SIZE" = 2M ]; then MOUNT_POINT=/dev/hugepages; else MOUNT_POINT=/dev/hugepages-1G; fi
fi
if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "must run as root (or use --dry-run)"
fi
[ "$DRY_RUN" -eq 1 ] && log "dry run: nothing will be changed"
FAILED=0

# --- hugepages ---------------------------------------------------------------------------------
reserve_hugepages() {
    [ "$PAGES" -eq 0 ] && { log "hugepages: --pages 0, leaving the reservation alone"; return; }
    local files=() f node have got
    for f in "$SYSFS"/devices/system/node/node[0-9]*/hugepages/hugepages-"${KB}"kB/nr_hugepages; do
        [ -e "$f" ] && files+=("$f")
    done
    # Kernels without NUMA have no node directories, only the global counter.
    if [ "${#files[@]}" -eq 0 ] && [ -e "$SYSFS/kernel/mm/hugepages/hugepages-${KB}kB/nr_hugepages" ]; then
        files=("$SYSFS/kernel/mm/hugepages/hugepages-${KB}kB/nr_hugepages")
    fi
    if [ "${#files[@]}" -eq 0 ]; then
        warn "no ${SIZE} hugepages on this kernel/CPU (for 1G the CPU needs pdpe1gb): use --size 2M"
        FAILED=1
        return
    fi
    for f in "${files[@]}"; do
        node=$(echo "$f" | sed -n 's|.*/\(node[0-9]*\)/.*|\1|p'); node=${node:-global}
        have=$(cat "$f")
        if [ "$have" -ge "$PAGES" ]; then
            # Never shrink: other processes may hold pages, and more is harmless.
            log "hugepages: $node has $have × $SIZE (>= $PAGES), unchanged"
            continue
        fi
        write_sysfs "$PAGES" "$f"
        [ "$DRY_RUN" -eq 1 ] && continue
        got=$(cat "$f")
        if [ "$got" -lt "$PAGES" ]; then
            # Runtime allocation needs contiguous free memory; 1G pages rarely survive fragmentation.
            warn "hugepages: $node got only $got of $PAGES × $SIZE (memory fragmented); reserve" \
                 "them at boot instead: kernel command line 'default_hugepagesz=$SIZE" \
                 "hugepagesz=$SIZE hugepages=<total over all nodes>'"
            FAILED=1
        else
            log "hugepages: $node now has $got × $SIZE"
        fi
    done
}

mount_hugetlbfs() {
    [ "$PAGES" -eq 0 ] && return
    # DPDK uses any hugetlbfs mount whose pagesize matches; /proc/mounts shows pagesize=2M / 1024M.
    local want="pagesize=${SIZE}"
    [ "$SIZE" = 1G ] && want="pagesize=1024M"
    if awk -v w="$want" -v dflt="$(awk '/^Hugepagesize:/ {print $2}' /proc/meminfo)" -v kb="$KB" '
        $3 == "hugetlbfs" { if (index($4, w) || (index($4, "pagesize=") == 0 && dflt == kb)) f = 1 }
        END { exit !f }' /proc/mounts; then
        log "hugetlbfs: a ${SIZE} mount exists ($(awk '$3 == "hugetlbfs" {printf "%s ", $2}' /proc/mounts))"
        return
    fi
    if [ ! -d "$MOUNT_POINT" ]; then run mkdir -p "$MOUNT_POINT"; fi
    run mount -t hugetlbfs -o "pagesize=${SIZE}" nodev "$MOUNT_POINT" || {
        warn "cannot mount hugetlbfs on $MOUNT_POINT"; FAILED=1; }
}

# --- vfio-pci and binding ----------------------------------------------------------------------
load_driver() {
    if [ -d "$SYSFS/bus/pci/drivers/$DRIVER" ]; then
        log "driver: $DRIVER is loaded"
        return 0
    fi
    if ! run modprobe "$DRIVER"; then
        warn "cannot load $DRIVER. Check: the module exists for this kernel" \
             "(modinfo $DRIVER), the IOMMU is on (kernel command line intel_iommu=on or" \
             "amd_iommu=on, iommu=pt; VT-d/AMD-Vi enabled in firmware). In a VM without a" \
             "virtual IOMMU only 'modprobe vfio enable_unsafe_noiommu_mode=1' works (no isolation)."
        return 1
    fi
    if [ "$DRIVER" = vfio-pci ] && [ -z "$(ls -A "$SYSFS/kernel/iommu_groups" 2>/dev/null)" ] &&
       [ "$(cat "$SYSFS/module/vfio/parameters/enable_unsafe_noiommu_mode" 2>/dev/null)" != Y ]; then
        warn "no IOMMU groups: vfio-pci will refuse to bind (enable the IOMMU, see above)"
    fi
}

# iface_in_use IFACE: true if it is administratively up and has routes (it carries traffic).
iface_in_use() {
    local flags routes
    flags=$(cat "$SYSFS/class/net/$1/flags" 2>/dev/null || echo 0)
    (( flags & 0x1 )) || return 1
    routes=$( { ip -4 route show dev "$1" 2>/dev/null; ip -6 route show dev "$1" 2>/dev/null |
               grep -v -e '^fe80::' -e '^multicast' -e '^ff00::'; } | head -n 3)
    [ -n "$routes" ] || return 1
    printf '%s' "$routes" | tr '\n' ';'
}

# pci_interfaces ADDR: the kernel interfaces of a PCI function. Found from /sys/class/net because
# some drivers put them deeper than ADDR/net (virtio: ADDR/virtio0/net/eth0).
pci_interfaces() {
    local n
    for n in "$SYSFS"/class/net/*; do
        case "$(readlink -f "$n")" in */"$1"/*) printf '%s ' "${n##*/}" ;; esac
    done
}

bind_devices() {
    [ "${#DEVICES[@]}" -eq 0 ] && { log "no PCI devices given: nothing to bind"; return; }
    if [ -z "$DEVBIND" ]; then
        DEVBIND=$(command -v dpdk-devbind.py || true)
        [ -n "$DEVBIND" ] || DEVBIND=/usr/bin/dpdk-devbind.py
    fi
    [ -x "$DEVBIND" ] || die "dpdk-devbind.py not found (apt-get install dpdk, or set DPDK_DEVBIND)"
    local driver_ok=1
    load_driver || driver_ok=0
    local dev addr current iface routes ifaces
    for dev in "${DEVICES[@]}"; do
        addr="$dev"
        [[ "$addr" =~ ^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]] && addr="0000:$addr"
        if [[ ! "$addr" =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]]; then
            warn "$dev: not a PCI address (like 0000:3b:00.0)"; FAILED=1; continue
        fi
        addr=${addr,,}
        if [ ! -e "$SYSFS/bus/pci/devices/$addr" ]; then
            warn "$addr: no such PCI device"; FAILED=1; continue
        fi
        current=$(basename "$(readlink "$SYSFS/bus/pci/devices/$addr/driver" 2>/dev/null)" 2>/dev/null || true)
        if [ "$current" = "$DRIVER" ]; then
            log "$addr: already bound to $DRIVER, skipping"
            continue
        fi
        ifaces=$(pci_interfaces "$addr")
        local refuse=0
        for iface in $ifaces; do
            if routes=$(iface_in_use "$iface"); then
                if [ "$FORCE" -eq 1 ]; then
                    warn "$addr: $iface is up with routes ($routes); unbinding anyway (--force)"
                else
                    warn "$addr: $iface is up with routes ($routes): refusing to take it from" \
                         "the kernel (you may lose this connection). Move its traffic, then" \
                         "'ip link set $iface down', or use --force"
                    refuse=1
                fi
            fi
        done
        if [ "$refuse" -eq 1 ]; then FAILED=1; continue; fi
        if [ "$driver_ok" -eq 0 ]; then
            warn "$addr: not bound: $DRIVER is not available"; FAILED=1; continue
        fi
        local args=(--bind="$DRIVER" "$addr")
        [ "$FORCE" -eq 1 ] && args=(--force "${args[@]}")
        log "$addr: ${current:-no driver}${ifaces:+ (${ifaces% })} → $DRIVER"
        run "$DEVBIND" "${args[@]}" || { warn "$addr: dpdk-devbind.py failed"; FAILED=1; }
    done
}

reserve_hugepages
mount_hugetlbfs
bind_devices
if [ "$FAILED" -ne 0 ]; then
    log "finished with errors (see the warnings above)"
    exit 1
fi
log "done"

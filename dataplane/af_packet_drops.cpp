#include "dataplane/af_packet_drops.hpp"

#include <dirent.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <rte_devargs.h>
#include <rte_ethdev.h>
#include <sys/socket.h>

#include <cstdlib>
#include <string>
#include <string_view>

namespace amt {

AfPacketDrops::AfPacketDrops(uint16_t port) {
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(port, &info) != 0 || info.driver_name == nullptr) return;
    if (std::string_view(info.driver_name) != "net_af_packet") return;
    ifindex_ = static_cast<int>(info.if_index);
    if (ifindex_ > 0) return;
    // A PMD that does not fill if_index: the interface named in the vdev arguments (iface=...).
    const rte_devargs* devargs = info.device ? rte_dev_devargs(info.device) : nullptr;
    if (devargs == nullptr || devargs->args == nullptr) return;
    const std::string_view args(devargs->args);
    const size_t at = args.find("iface=");
    if (at == std::string_view::npos) return;
    const std::string iface(args.substr(at + 6, args.find(',', at) - (at + 6)));
    ifindex_ = static_cast<int>(if_nametoindex(iface.c_str()));
}

uint64_t AfPacketDrops::total() {
    if (!active()) return 0;
    std::lock_guard lock(mutex_);
    DIR* fds = opendir("/proc/self/fd");
    if (fds == nullptr) return total_;
    while (const dirent* e = readdir(fds)) {
        char* end = nullptr;
        const long fd = std::strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '\0' || fd == dirfd(fds)) continue;
        sockaddr_ll addr{};
        socklen_t len = sizeof(addr);
        if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
            addr.sll_family != AF_PACKET || addr.sll_ifindex != ifindex_) {
            continue;
        }
        tpacket_stats stats{};  // TPACKET_V2 layout, which the PMD uses
        socklen_t size = sizeof(stats);
        if (getsockopt(static_cast<int>(fd), SOL_PACKET, PACKET_STATISTICS, &stats, &size) == 0)
            total_ += stats.tp_drops;
    }
    closedir(fds);
    return total_;
}

}  // namespace amt

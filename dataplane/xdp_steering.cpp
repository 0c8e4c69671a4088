#include "dataplane/xdp_steering.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "dataplane/bpf/amt_steer.h"

namespace amt {

namespace {

constexpr long bpf_fs_magic = 0xcafe4a11;
const char* const pinned_maps[] = {AMT_MAP_ADDRESSES, AMT_MAP_GROUPS, AMT_MAP_SETTINGS,
                                   AMT_MAP_COUNTERS};

[[noreturn]] void fail(const std::string& what, int err) {
    throw std::runtime_error(what + ": " + std::strerror(err < 0 ? -err : err));
}

std::string program_name(uint32_t id) {
    const int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) return "?";
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    std::string name = "?";
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) name = info.name;
    close(fd);
    return name;
}

// The programs attached to an interface, by mode.
struct Attached {
    uint32_t id;
    uint32_t flag;  // XDP_FLAGS_DRV_MODE / SKB_MODE / HW_MODE
    const char* mode;
};

std::vector<Attached> attached_programs(int ifindex, const std::string& interface) {
    bpf_xdp_query_opts q{};
    q.sz = sizeof(q);
    if (int rc = bpf_xdp_query(ifindex, 0, &q); rc != 0)
        fail("querying the XDP program of " + interface, rc);
    std::vector<Attached> out;
    if (q.drv_prog_id) out.push_back({q.drv_prog_id, XDP_FLAGS_DRV_MODE, "native"});
    if (q.skb_prog_id) out.push_back({q.skb_prog_id, XDP_FLAGS_SKB_MODE, "generic"});
    if (q.hw_prog_id) out.push_back({q.hw_prog_id, XDP_FLAGS_HW_MODE, "offloaded"});
    return out;
}

bool set_allmulti(const std::string& interface, bool on, bool* changed) {
    const int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) return false;
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, interface.c_str(), IFNAMSIZ - 1);
    bool ok = ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
    const bool is_on = ifr.ifr_flags & IFF_ALLMULTI;
    if (ok && is_on != on) {
        ifr.ifr_flags = static_cast<short>(on ? (ifr.ifr_flags | IFF_ALLMULTI)
                                              : (ifr.ifr_flags & ~IFF_ALLMULTI));
        ok = ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
        if (changed) *changed = ok;
    }
    close(s);
    return ok;
}

void ensure_bpffs(const std::string& root) {
    struct statfs st {};
    if (statfs(root.c_str(), &st) == 0 && static_cast<long>(st.f_type) == bpf_fs_magic) return;
    if (mount("bpf", root.c_str(), "bpf", 0, "mode=0700") != 0) {
        fail("mounting bpffs at " + root + " (mount -t bpf bpf " + root + ")", errno);
    }
    spdlog::info("af_xdp: mounted bpffs at {}", root);
}

}  // namespace

std::string_view to_string(XdpMode mode) {
    switch (mode) {
        case XdpMode::native:
            return "native";
        case XdpMode::generic:
            return "generic";
        case XdpMode::automatic:
            break;
    }
    return "auto";
}

std::optional<XdpMode> parse_xdp_mode(std::string_view text) {
    if (text == "auto") return XdpMode::automatic;
    if (text == "native") return XdpMode::native;
    if (text == "generic") return XdpMode::generic;
    return std::nullopt;
}

std::optional<MulticastRange> MulticastRange::parse(std::string_view text) {
    const size_t slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    const auto address = IpAddress::parse(text.substr(0, slash));
    const std::string_view len_text = text.substr(slash + 1);
    if (!address || !address->is_multicast() || len_text.empty() || len_text.size() > 3)
        return std::nullopt;
    unsigned len = 0;
    for (char c : len_text) {
        if (c < '0' || c > '9') return std::nullopt;
        len = len * 10 + static_cast<unsigned>(c - '0');
    }
    const unsigned max = address->is_v4() ? 32 : 128;
    // Shorter than the family's multicast prefix would include unicast space.
    const unsigned min = address->is_v4() ? 4 : 8;
    if (len < min || len > max) return std::nullopt;
    return MulticastRange{*address, static_cast<uint8_t>(len)};
}

std::string MulticastRange::to_string() const {
    return prefix.to_string() + "/" + std::to_string(length);
}

std::vector<MulticastRange> AfXdpConfig::default_ranges() {
    return {*MulticastRange::parse("224.0.0.0/4"), *MulticastRange::parse("ff00::/8")};
}

std::string default_program_path() {
    if (access(AMT_BPF_INSTALLED_PATH, R_OK) == 0) return AMT_BPF_INSTALLED_PATH;
    return AMT_BPF_BUILD_PATH;
}

std::string af_xdp_vdev(const AfXdpConfig& config, uint16_t queues) {
    return "net_af_xdp0,iface=" + config.interface +
           ",start_queue=" + std::to_string(config.start_queue) +
           ",queue_count=" + std::to_string(queues) +
           ",xdp_prog=" + (config.program.empty() ? default_program_path() : config.program);
}

uint16_t af_xdp_queues(const AfXdpConfig& config, uint16_t workers) {
    int channels = 1;
    const int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s >= 0) {
        ethtool_channels ch{};
        ch.cmd = ETHTOOL_GCHANNELS;
        ifreq ifr{};
        std::strncpy(ifr.ifr_name, config.interface.c_str(), IFNAMSIZ - 1);
        ifr.ifr_data = reinterpret_cast<char*>(&ch);
        if (ioctl(s, SIOCETHTOOL, &ifr) == 0 && ch.max_combined != 0)
            channels = static_cast<int>(ch.combined_count);
        close(s);
    }
    const int usable = channels - config.start_queue;
    // RSS spreads traffic over every channel; a queue without an AF_XDP socket hands the relay's
    // packets to the kernel (counted as no_socket), which answers them with port unreachable.
    const auto warn_uncovered = [&](int used) {
        if (channels > config.start_queue + used) {
            spdlog::warn(
                "af_xdp: {} has {} queue(s) but the relay reads {} from queue {}: traffic RSS "
                "puts on the others goes to the kernel (amt_xdp_packets_total no_socket); set "
                "`ethtool -L {} combined {}` or af_xdp.queues",
                config.interface, channels, used, config.start_queue, config.interface,
                config.start_queue + used);
        }
    };
    if (config.queues != 0) {  // the PMD reports a queue that does not exist itself
        warn_uncovered(config.queues);
        return config.queues;
    }
    if (usable < workers) {
        throw std::runtime_error(
            "af_xdp: " + config.interface + " has " + std::to_string(channels) +
            " queue(s) (ethtool -l: combined channels; none reported counts as 1) and start_queue "
            "is " +
            std::to_string(config.start_queue) + ", the relay needs one per worker (" +
            std::to_string(workers) + "): raise them with `ethtool -L " + config.interface +
            " combined N` or lower ports.workers");
    }
    const int used = std::min(usable, workers + 1);
    warn_uncovered(used);
    return static_cast<uint16_t>(used);
}

XdpSteering::InterfaceLock::InterfaceLock(const std::string& interface) {
    if (interface.empty()) return;
    // Interface names repeat across network namespaces: the lock names the namespace too.
    struct stat netns {};
    if (stat("/proc/self/ns/net", &netns) != 0) fail("stat /proc/self/ns/net", errno);
    const std::string path =
        "/run/amtrelayd-xdp-" + std::to_string(netns.st_ino) + "-" + interface + ".lock";
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) fail("opening " + path, errno);
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        close(fd_);
        throw std::runtime_error("another amtrelayd runs in AF_XDP mode on " + interface +
                                 " (lock " + path + "): stop that one first");
    }
}

XdpSteering::InterfaceLock::~InterfaceLock() {
    if (fd_ >= 0) close(fd_);
}

XdpSteering::XdpSteering(const XdpSteeringSetup& setup)
    : setup_(setup), interface_lock_(setup.interface) {
    if (!setup_.interface.empty()) {
        ifindex_ = static_cast<int>(if_nametoindex(setup_.interface.c_str()));
        if (ifindex_ == 0) {
            throw std::runtime_error("af_xdp.interface = \"" + setup_.interface +
                                     "\": no such interface");
        }
        remove_stale_program();
    }
    if (!setup_.pin_root.empty()) {
        ensure_bpffs(setup_.pin_root);
        // Pins left by a crashed run would hand the new program stale contents.
        for (const char* name : pinned_maps)
            unlink((setup_.pin_root + "/" + name).c_str());
    }
    bpf_object_open_opts opts{};
    opts.sz = sizeof(opts);
    if (!setup_.pin_root.empty()) opts.pin_root_path = setup_.pin_root.c_str();
    object_ = bpf_object__open_file(setup_.object_path.c_str(), &opts);
    if (object_ == nullptr) fail("opening the XDP program " + setup_.object_path, errno);
    if (setup_.pin_root.empty()) {
        bpf_map* map;
        bpf_object__for_each_map(map, object_) bpf_map__set_pin_path(map, nullptr);
    }
    if (int rc = bpf_object__load(object_); rc != 0) {
        bpf_object__close(object_);
        fail("loading the XDP program " + setup_.object_path + " (libbpf's log is above)", rc);
    }
    try {
        configure(setup_.addresses, setup_.multicast_ranges, setup_.vlan_id);
    } catch (...) {
        // The destructor will not run: leave no object and no half-filled pins behind.
        bpf_object__close(object_);
        for (const char* name : pinned_maps) {
            if (!setup_.pin_root.empty()) unlink((setup_.pin_root + "/" + name).c_str());
        }
        throw;
    }
    if (ifindex_ != 0) {
        // NICs filter multicast the kernel did not join; the relay's groups are not the kernel's.
        if (!set_allmulti(setup_.interface, true, &allmulti_set_))
            spdlog::warn("af_xdp: could not set allmulticast on {}", setup_.interface);
    }
}

XdpSteering::~XdpSteering() {
    if (ifindex_ != 0) {
        detach_ours();
        if (allmulti_set_) set_allmulti(setup_.interface, false, nullptr);
    }
    if (!setup_.pin_root.empty()) bpf_object__unpin_maps(object_, nullptr);
    bpf_object__close(object_);
}

void XdpSteering::remove_stale_program() {
    for (const Attached& a : attached_programs(ifindex_, setup_.interface)) {
        const std::string name = program_name(a.id);
        if (name != AMT_STEER_PROG_NAME) {
            throw std::runtime_error(
                "interface " + setup_.interface + " already has an XDP program (" + a.mode +
                " mode, id " + std::to_string(a.id) + ", name " + name +
                ") that is not amtrelayd's; remove it with `ip link set dev " + setup_.interface +
                " xdp off` (or `xdpgeneric off`) if nothing needs it, or run "
                "the relay on another interface");
        }
        spdlog::warn(
            "af_xdp: {} has a steering program of ours (id {}, {} mode) left by an earlier run "
            "that did not stop cleanly; replacing it",
            setup_.interface, a.id, a.mode);
        if (int rc = bpf_xdp_detach(ifindex_, a.flag, nullptr); rc != 0)
            fail("removing the stale XDP program from " + setup_.interface, rc);
        replaced_stale_ = true;
    }
}

std::string XdpSteering::adopt_attached() {
    const std::vector<Attached> attached = attached_programs(ifindex_, setup_.interface);
    if (attached.size() != 1 || program_name(attached[0].id) != AMT_STEER_PROG_NAME) {
        throw std::runtime_error("af_xdp: net_af_xdp did not attach " + setup_.object_path +
                                 " to " + setup_.interface +
                                 " (check its xdp_prog= argument and the EAL log)");
    }
    const Attached& a = attached[0];
    if (setup_.mode == XdpMode::native && a.flag != XDP_FLAGS_DRV_MODE) {
        throw std::runtime_error("af_xdp: " + setup_.interface +
                                 " has no native XDP support (the kernel attached the program "
                                 "in generic mode); set af_xdp.xdp_mode = \"generic\" or "
                                 "\"auto\"");
    }
    if (setup_.mode == XdpMode::generic && a.flag != XDP_FLAGS_SKB_MODE) {
        // The same program (same xsks_map with the PMD's sockets), moved: the kernel allows
        // only one of native and generic at a time, so detach first.
        const int fd = bpf_prog_get_fd_by_id(a.id);
        if (fd < 0) fail("af_xdp: taking hold of the attached program", errno);
        int rc = bpf_xdp_detach(ifindex_, a.flag, nullptr);
        if (rc == 0) rc = bpf_xdp_attach(ifindex_, fd, XDP_FLAGS_SKB_MODE, nullptr);
        close(fd);
        if (rc != 0) fail("af_xdp: moving the program to generic mode on " + setup_.interface, rc);
        return "generic";
    }
    return a.mode;
}

void XdpSteering::detach_ours() noexcept {
    try {
        for (const Attached& a : attached_programs(ifindex_, setup_.interface)) {
            if (program_name(a.id) == AMT_STEER_PROG_NAME)
                bpf_xdp_detach(ifindex_, a.flag, nullptr);
        }
    } catch (const std::exception& e) {
        spdlog::warn("af_xdp: {}", e.what());
    }
}

int XdpSteering::program_fd() const {
    return bpf_program__fd(bpf_object__next_program(object_, nullptr));
}

int XdpSteering::map_fd(const char* name) const {
    return bpf_object__find_map_fd_by_name(object_, name);
}

void XdpSteering::configure(const std::vector<IpAddress>& addresses,
                            const std::vector<MulticastRange>& ranges, uint16_t vlan_id) {
    const int addr_fd = map_fd(AMT_MAP_ADDRESSES);
    const int group_fd = map_fd(AMT_MAP_GROUPS);
    const int settings_fd = map_fd(AMT_MAP_SETTINGS);
    // Start from empty maps: configure() may be called again with fewer entries.
    for (int fd : {addr_fd, group_fd}) {
        std::array<uint8_t, 64> key{}, next{};
        while (bpf_map_get_next_key(fd, nullptr, next.data()) == 0) {
            key = next;
            bpf_map_delete_elem(fd, key.data());
        }
    }
    const uint8_t one = 1;
    for (const IpAddress& a : addresses) {
        amt_addr_key key{};
        key.family = a.is_v4() ? AMT_FAMILY_V4 : AMT_FAMILY_V6;
        std::memcpy(key.addr, a.wire().data(), a.wire().size());
        if (int rc = bpf_map_update_elem(addr_fd, &key, &one, BPF_ANY); rc != 0)
            fail("af_xdp: adding " + a.to_string() + " to " AMT_MAP_ADDRESSES, rc);
    }
    for (const MulticastRange& r : ranges) {
        amt_group_key key{};
        key.prefixlen = 8u + r.length;
        key.family = r.prefix.is_v4() ? AMT_FAMILY_V4 : AMT_FAMILY_V6;
        std::memcpy(key.addr, r.prefix.wire().data(), r.prefix.wire().size());
        if (int rc = bpf_map_update_elem(group_fd, &key, &one, BPF_ANY); rc != 0)
            fail("af_xdp: adding " + r.to_string() + " to " AMT_MAP_GROUPS, rc);
    }
    amt_settings settings{};
    settings.vlan_id = vlan_id;
    const uint32_t zero = 0;
    if (int rc = bpf_map_update_elem(settings_fd, &zero, &settings, BPF_ANY); rc != 0)
        fail("af_xdp: writing " AMT_MAP_SETTINGS, rc);
}

XdpCounters XdpSteering::counters() const {
    const int fd = map_fd(AMT_MAP_COUNTERS);
    const int cpus = libbpf_num_possible_cpus();
    std::vector<uint64_t> values(static_cast<size_t>(cpus > 0 ? cpus : 1));
    auto sum = [&](uint32_t index) {
        uint64_t total = 0;
        if (bpf_map_lookup_elem(fd, &index, values.data()) == 0) {
            for (uint64_t v : values)
                total += v;
        }
        return total;
    };
    return XdpCounters{.steered_amt = sum(AMT_STEERED_AMT),
                       .steered_multicast = sum(AMT_STEERED_MULTICAST),
                       .steered_igmp_mld = sum(AMT_STEERED_IGMP_MLD),
                       .passed = sum(AMT_PASSED),
                       .passed_malformed = sum(AMT_PASSED_MALFORMED),
                       .passed_fragment = sum(AMT_PASSED_FRAGMENT),
                       .passed_other_vlan = sum(AMT_PASSED_OTHER_VLAN),
                       .no_socket = sum(AMT_NO_SOCKET)};
}

}  // namespace amt

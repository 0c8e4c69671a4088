// AF_XDP mode: the XDP program (dataplane/bpf/amt_steer.bpf.c) that steers AMT, multicast and
// IGMP/MLD queries to DPDK's net_af_xdp sockets and passes the rest to the kernel.
//
// How the relay and DPDK 22.11's net_af_xdp cooperate. The PMD can only use a custom program
// by loading it itself (devarg xdp_prog=PATH): it opens the object with libbpf, attaches it
// with XDP_FLAGS_UPDATE_IF_NOEXIST in the kernel's default mode (native when the driver has
// XDP, generic otherwise), and puts its sockets into the object's "xsks_map". 22.11 has no
// devarg to use a program or map that someone else loaded (use_pinned_map came later), and it
// refuses to start on an interface that already has a program. So:
//   1. before the EAL starts, XdpSteering removes a program of ours left by a crashed run (and
//      refuses someone else's), mounts bpffs if needed, loads the object itself (a verifier
//      error is reported here, not as the PMD's "Failed to load program"), and creates, pins
//      and fills the configuration and counter maps: they are declared LIBBPF_PIN_BY_NAME, so
//      the PMD's libbpf, loading the same object, reuses them under /sys/fs/bpf;
//   2. the PMD loads and attaches the program (maps already filled: no window in which AMT or
//      multicast reaches the kernel) and inserts its sockets;
//   3. adopt_attached() checks that the attached program is ours and, for xdp_mode = generic,
//      moves that same program to generic (SKB) mode; the PMD's xsks_map goes with it.
// The destructor detaches our program in whatever mode it is, and unpins the maps.
#pragma once

struct bpf_object;

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/ip_address.hpp"

namespace amt {

enum class XdpMode { automatic, native, generic };
std::string_view to_string(XdpMode mode);
std::optional<XdpMode> parse_xdp_mode(std::string_view text);

// A multicast range steered to the relay, e.g. 232.0.0.0/8 or ff3e::/16.
struct MulticastRange {
    IpAddress prefix;
    uint8_t length = 0;
    // "ADDRESS/LENGTH" with a multicast address; nullopt when malformed.
    static std::optional<MulticastRange> parse(std::string_view text);
    std::string to_string() const;
};

// The [af_xdp] configuration section.
struct AfXdpConfig {
    std::string interface;
    uint16_t start_queue = 0;
    uint16_t queues = 0;  // 0: workers + 1, or workers when the interface has no more channels
    XdpMode mode = XdpMode::automatic;
    std::vector<MulticastRange> multicast_ranges = default_ranges();
    std::string program;  // the BPF object; empty: default_program_path()
    static std::vector<MulticastRange> default_ranges();
};

// The installed BPF object, or the one in the build tree when not installed.
std::string default_program_path();

// The --vdev argument for net_af_xdp0.
std::string af_xdp_vdev(const AfXdpConfig& config, uint16_t queues);

// The queue pairs to give net_af_xdp: config.queues, or workers + 1 (one TX queue of its own for
// the control thread) when the interface has that many channels, else one per worker. Counts
// channels as net_af_xdp does (ethtool combined channels; none reported: one). Throws when the
// interface has fewer than `workers` from start_queue on.
uint16_t af_xdp_queues(const AfXdpConfig& config, uint16_t workers);

// Sums of the program's per-CPU counters (names as in dataplane/bpf/amt_steer.h).
struct XdpCounters {
    uint64_t steered_amt = 0;
    uint64_t steered_multicast = 0;
    uint64_t steered_igmp_mld = 0;
    uint64_t passed = 0;
    uint64_t passed_malformed = 0;
    uint64_t passed_fragment = 0;
    uint64_t passed_other_vlan = 0;
    uint64_t no_socket = 0;
};

struct XdpSteeringSetup {
    std::string object_path;
    // Empty: load only (tests run the program with BPF_PROG_TEST_RUN, nothing is attached).
    std::string interface;
    XdpMode mode = XdpMode::automatic;
    std::vector<IpAddress> addresses;  // relay and discovery addresses (AMT on UDP 2268)
    std::vector<MulticastRange> multicast_ranges;
    uint16_t vlan_id = 0;  // 0: untagged frames
    // Where the maps are pinned; must be libbpf's default root for the PMD to find them.
    // Empty: not pinned (tests).
    std::string pin_root = "/sys/fs/bpf";
};

class XdpSteering {
  public:
    // Throws std::runtime_error naming the interface and the fix.
    explicit XdpSteering(const XdpSteeringSetup& setup);
    ~XdpSteering();
    XdpSteering(const XdpSteering&) = delete;
    XdpSteering& operator=(const XdpSteering&) = delete;

    // After net_af_xdp started: verifies that our program is attached and applies the mode.
    // Returns the mode in effect ("native" or "generic").
    std::string adopt_attached();

    XdpCounters counters() const;
    int program_fd() const;
    int map_fd(const char* name) const;
    // Replaces the steered addresses and ranges (tests; the daemon sets them once).
    void configure(const std::vector<IpAddress>& addresses,
                   const std::vector<MulticastRange>& ranges, uint16_t vlan_id);
    // True when the interface had a program of ours left by an earlier run, which was removed.
    bool replaced_stale_program() const { return replaced_stale_; }

  private:
    // Held for the relay's life: one relay per interface (in its network namespace). A second
    // relay started by mistake stops here with a message instead of taking the running one's
    // program for a stale one and detaching it.
    class InterfaceLock {
      public:
        explicit InterfaceLock(const std::string& interface);
        ~InterfaceLock();
        InterfaceLock(const InterfaceLock&) = delete;
        InterfaceLock& operator=(const InterfaceLock&) = delete;

      private:
        int fd_ = -1;
    };

    void remove_stale_program();
    void detach_ours() noexcept;

    XdpSteeringSetup setup_;
    InterfaceLock interface_lock_;
    bpf_object* object_ = nullptr;
    int ifindex_ = 0;
    bool replaced_stale_ = false;
    bool allmulti_set_ = false;
};

}  // namespace amt

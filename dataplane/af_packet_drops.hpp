// What the kernel dropped before net_af_packet could read it. The PMD's sockets have rings of
// `framecnt` frames; when the workers fall behind, the kernel drops further frames and counts them
// in the socket's PACKET_STATISTICS, which DPDK 22.11's PMD does not report (imissed stays 0:
// 1,000,005 frames reached a veth, 250,664 the relay, issue 18 item 7). The PMD's private data is
// not an API, so the sockets are found as the kernel shows them: the process's AF_PACKET sockets
// bound to the port's interface.
#pragma once

#include <cstdint>
#include <mutex>

namespace amt {

class AfPacketDrops {
  public:
    // Inactive (total() is always 0) unless `port` is a net_af_packet port.
    explicit AfPacketDrops(uint16_t port);
    bool active() const { return ifindex_ > 0; }
    // Frames the kernel dropped on the port's sockets since the relay started. Reading
    // PACKET_STATISTICS resets it, so the reads are accumulated here (safe from any thread).
    uint64_t total();

  private:
    int ifindex_ = 0;
    std::mutex mutex_;
    uint64_t total_ = 0;
};

}  // namespace amt

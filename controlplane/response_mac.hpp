// The Response MAC of RFC 7450 §5.3.5: a keyed hash over the gateway's canonical 16-octet address,
// its UDP port and the Request nonce, truncated to 48 bits. Computed with Intel IPsec-MB.
// Neither P nor the inner family is an input (checklist §2.4): Linux keeps one MAC for both.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "common/amt_messages.hpp"
#include "common/ip_address.hpp"

namespace amt {

enum class MacAlgorithm : uint8_t {
    aes_cmac_128,  // AES-CMAC-128, tag truncated to 6 octets (default: fastest, see BENCHMARKS)
    hmac_sha256,   // HMAC-SHA-256, tag truncated to 6 octets
};
std::string_view to_string(MacAlgorithm a);

using MacSecret = std::array<uint8_t, 16>;  // AES-128 key; also the HMAC key

// One MAC input: who the Query goes to (after NAT) and the nonce it echoes.
struct MacInput {
    UdpEndpoint gateway;
    uint32_t nonce = 0;
};

// Owns an IPsec-MB manager and the expanded key of one secret. Not thread-safe: every worker and
// the control thread keep their own (IPsec-MB managers are per-thread by design).
class MacComputer {
  public:
    MacComputer(MacAlgorithm algorithm, const MacSecret& secret);
    ~MacComputer();
    MacComputer(const MacComputer&) = delete;
    MacComputer& operator=(const MacComputer&) = delete;

    void set_secret(const MacSecret& secret);
    MacAlgorithm algorithm() const { return algorithm_; }

    ResponseMac compute(const MacInput& in);
    // Computes in.size() MACs in one pass through the IPsec-MB job queue, so that the
    // multi-buffer code paths can work on several at once. out.size() must equal in.size().
    void compute_batch(std::span<const MacInput> in, std::span<ResponseMac> out);

  private:
    struct State;
    MacAlgorithm algorithm_;
    std::unique_ptr<State> state_;
};

// Constant-time comparison of two MACs (no early exit on the first differing octet).
bool mac_equal(const ResponseMac& a, const ResponseMac& b);

// Fills `secret` from the OS CSPRNG (getrandom); aborts the program if the kernel cannot supply it.
void random_secret(MacSecret& secret);

}  // namespace amt

// libFuzzer target: the state-file loader (controlplane/relay_state.hpp) over arbitrary files.
// It must refuse or accept without crashing; a file it accepts is encoded again and must be the
// same octets (nothing the decoder lets through is lost or changed). Each input is also tried with
// its header's size and CRC made right, so that mutations reach the payload checks behind the
// checksum instead of stopping at it.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "controlplane/relay_state.hpp"

using namespace amt;

namespace {

void check_file(ByteView file) {
    RelayState state;
    if (!decode_state(file, state).empty()) return;
    std::vector<uint8_t> again;
    encode_state(state, again);
    if (again.size() != file.size() || !std::equal(again.begin(), again.end(), file.begin()))
        std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    check_file(ByteView(data, size));
    if (size < 32) return 0;
    std::vector<uint8_t> fixed(data, data + size);
    const uint64_t payload = size - 32;
    const uint32_t crc = crc32c(ByteView(fixed).subspan(32));
    std::memcpy(fixed.data() + 16, &payload, 8);
    std::memcpy(fixed.data() + 24, &crc, 4);
    check_file(fixed);
    return 0;
}

#include "controlplane/response_mac.hpp"

#include <intel-ipsec-mb.h>
#include <sys/random.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace amt {

std::string_view to_string(MacAlgorithm a) {
    return a == MacAlgorithm::aes_cmac_128 ? "aes-cmac-128" : "hmac-sha256";
}

namespace {

constexpr size_t mac_message_size = 22;  // 16-octet address + 2-octet port + 4-octet nonce
constexpr size_t max_batch = 64;
constexpr size_t hmac_tag_size = 16;  // IPsec-MB's shortest truncated HMAC-SHA-256 tag
constexpr size_t cmac_tag_size = 16;

void encode_input(const MacInput& in, uint8_t* msg) {
    std::memcpy(msg, in.gateway.ip.canonical16().data(), 16);
    store_be16(msg + 16, in.gateway.port);
    store_be32(msg + 18, in.nonce);
}

[[noreturn]] void fatal(const char* what) {
    std::fprintf(stderr, "amt: Intel IPsec-MB: %s\n", what);
    std::abort();
}

}  // namespace

struct MacComputer::State {
    IMB_MGR* mgr = nullptr;
    // CMAC key schedule.
    alignas(16) uint32_t enc_keys[4 * 11];
    alignas(16) uint32_t dec_keys[4 * 11];
    alignas(16) uint8_t skey1[16];
    alignas(16) uint8_t skey2[16];
    // HMAC inner and outer hashed keys.
    alignas(16) uint8_t ipad_hash[32];
    alignas(16) uint8_t opad_hash[32];
    // Per-job message and full-length tag buffers for one batch.
    uint8_t messages[max_batch][mac_message_size];
    uint8_t tags[max_batch][32];
};

MacComputer::MacComputer(MacAlgorithm algorithm, const MacSecret& secret)
    : algorithm_(algorithm), state_(std::make_unique<State>()) {
    state_->mgr = alloc_mb_mgr(0);
    if (state_->mgr == nullptr) fatal("alloc_mb_mgr failed");
    init_mb_mgr_auto(state_->mgr, nullptr);
    if (imb_get_errno(state_->mgr) != 0) fatal("no usable CPU architecture");
    set_secret(secret);
}

MacComputer::~MacComputer() {
    if (state_ && state_->mgr) free_mb_mgr(state_->mgr);
}

void MacComputer::set_secret(const MacSecret& secret) {
    State& s = *state_;
    if (algorithm_ == MacAlgorithm::aes_cmac_128) {
        IMB_AES_KEYEXP_128(s.mgr, secret.data(), s.enc_keys, s.dec_keys);
        IMB_AES_CMAC_SUBKEY_GEN_128(s.mgr, s.enc_keys, s.skey1, s.skey2);
        return;
    }
    // RFC 2104: hash one block of key XOR ipad / opad once; each MAC then resumes from them.
    alignas(16) uint8_t block[IMB_SHA_256_BLOCK_SIZE];
    for (const auto& [pad, out] : {std::pair<uint8_t, uint8_t*>{0x36, s.ipad_hash},
                                   std::pair<uint8_t, uint8_t*>{0x5c, s.opad_hash}}) {
        std::memset(block, pad, sizeof(block));
        for (size_t i = 0; i < secret.size(); ++i)
            block[i] ^= secret[i];
        IMB_SHA256_ONE_BLOCK(s.mgr, block, out);
    }
}

ResponseMac MacComputer::compute(const MacInput& in) {
    ResponseMac mac;
    compute_batch(std::span(&in, 1), std::span(&mac, 1));
    return mac;
}

void MacComputer::compute_batch(std::span<const MacInput> in, std::span<ResponseMac> out) {
    State& s = *state_;
    for (size_t base = 0; base < in.size(); base += max_batch) {
        const size_t n = std::min(max_batch, in.size() - base);
        for (size_t i = 0; i < n; ++i) {
            encode_input(in[base + i], s.messages[i]);
            IMB_JOB* job = IMB_GET_NEXT_JOB(s.mgr);
            job->cipher_mode = IMB_CIPHER_NULL;
            job->chain_order = IMB_ORDER_HASH_CIPHER;
            job->src = s.messages[i];
            job->hash_start_src_offset_in_bytes = 0;
            job->msg_len_to_hash_in_bytes = mac_message_size;
            job->auth_tag_output = s.tags[i];
            job->user_data = s.tags[i];
            if (algorithm_ == MacAlgorithm::aes_cmac_128) {
                job->hash_alg = IMB_AUTH_AES_CMAC;
                job->auth_tag_output_len_in_bytes = cmac_tag_size;
                job->u.CMAC._key_expanded = s.enc_keys;
                job->u.CMAC._skey1 = s.skey1;
                job->u.CMAC._skey2 = s.skey2;
            } else {
                job->hash_alg = IMB_AUTH_HMAC_SHA_256;
                job->auth_tag_output_len_in_bytes = hmac_tag_size;
                job->u.HMAC._hashed_auth_key_xor_ipad = s.ipad_hash;
                job->u.HMAC._hashed_auth_key_xor_opad = s.opad_hash;
            }
            IMB_JOB* done = IMB_SUBMIT_JOB(s.mgr);
            while (done != nullptr) {
                if (done->status != IMB_STATUS_COMPLETED) fatal("MAC job failed");
                done = IMB_GET_COMPLETED_JOB(s.mgr);
            }
        }
        while (IMB_JOB* done = IMB_FLUSH_JOB(s.mgr)) {
            if (done->status != IMB_STATUS_COMPLETED) fatal("MAC job failed");
        }
        for (size_t i = 0; i < n; ++i)
            std::memcpy(out[base + i].data(), s.tags[i], 6);
    }
}

bool mac_equal(const ResponseMac& a, const ResponseMac& b) {
    uint8_t diff = 0;
    for (size_t i = 0; i < a.size(); ++i)
        diff |= static_cast<uint8_t>(a[i] ^ b[i]);
    return diff == 0;
}

void random_secret(MacSecret& secret) {
    size_t filled = 0;
    while (filled < secret.size()) {
        const ssize_t n = getrandom(secret.data() + filled, secret.size() - filled, 0);
        if (n < 0) {
            std::perror("amt: getrandom");
            std::abort();
        }
        filled += static_cast<size_t>(n);
    }
}

}  // namespace amt

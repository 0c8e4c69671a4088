// The Response MAC (checklist §2.4): known answers from an independent implementation (Python's
// hmac and the cryptography package's CMAC, key 00 01 .. 0f, message = canonical address ‖ port ‖
// nonce), batch = single, and the properties the protocol relies on.
#include <gtest/gtest.h>

#include <vector>

#include "controlplane/response_mac.hpp"

using namespace amt;

namespace {

MacSecret test_key() {
    MacSecret k;
    for (size_t i = 0; i < k.size(); ++i)
        k[i] = static_cast<uint8_t>(i);
    return k;
}

ResponseMac hex_mac(const char* hex) {
    ResponseMac m;
    for (size_t i = 0; i < m.size(); ++i)
        m[i] = static_cast<uint8_t>(std::stoul(std::string(hex + 2 * i, 2), nullptr, 16));
    return m;
}

const MacInput v4_input{{*IpAddress::parse("198.51.100.7"), 5000}, 0x0badcafe};
const MacInput v6_input{{*IpAddress::parse("2001:db8::7"), 2268}, 0};

}  // namespace

TEST(ResponseMac, AesCmacKnownAnswers) {
    MacComputer mac(MacAlgorithm::aes_cmac_128, test_key());
    EXPECT_EQ(mac.compute(v4_input), hex_mac("c883027fba71"));
    EXPECT_EQ(mac.compute(v6_input), hex_mac("5e33d5c50270"));
}

TEST(ResponseMac, HmacSha256KnownAnswers) {
    MacComputer mac(MacAlgorithm::hmac_sha256, test_key());
    EXPECT_EQ(mac.compute(v4_input), hex_mac("5acde16cfea4"));
    EXPECT_EQ(mac.compute(v6_input), hex_mac("c9dc53f1d5e2"));
}

TEST(ResponseMac, BatchEqualsOneByOneAcrossBatchBoundaries) {
    for (MacAlgorithm alg : {MacAlgorithm::aes_cmac_128, MacAlgorithm::hmac_sha256}) {
        MacComputer mac(alg, test_key());
        std::vector<MacInput> in;
        for (uint32_t i = 0; i < 150; ++i) {  // more than one internal batch of 64
            in.push_back({{IpAddress::v4(0xc6336400 + i), static_cast<uint16_t>(1000 + i)}, i});
        }
        std::vector<ResponseMac> out(in.size());
        mac.compute_batch(in, out);
        for (size_t i = 0; i < in.size(); ++i)
            EXPECT_EQ(out[i], mac.compute(in[i])) << i;
    }
}

TEST(ResponseMac, EveryInputAndTheSecretChangeTheMac) {
    MacComputer mac(MacAlgorithm::aes_cmac_128, test_key());
    const ResponseMac base = mac.compute(v4_input);
    MacInput port = v4_input, nonce = v4_input, ip = v4_input;
    port.gateway.port++;
    nonce.nonce++;
    ip.gateway.ip = *IpAddress::parse("198.51.100.8");
    EXPECT_NE(mac.compute(port), base);  // NAT rebinding must fail (checklist §2.12)
    EXPECT_NE(mac.compute(nonce), base);
    EXPECT_NE(mac.compute(ip), base);
    MacSecret other = test_key();
    other[0] ^= 1;
    mac.set_secret(other);
    EXPECT_NE(mac.compute(v4_input), base);
    mac.set_secret(test_key());
    EXPECT_EQ(mac.compute(v4_input), base);
}

TEST(ResponseMac, Ipv4AndItsCompatibleFormAreOneInput) {
    // Teardown carries ::a.b.c.d (or ::ffff:a.b.c.d); the Update came from a.b.c.d (§2.4, §2.9).
    MacComputer mac(MacAlgorithm::aes_cmac_128, test_key());
    uint8_t compatible[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 198, 51, 100, 7};
    uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7};
    MacInput a = v4_input, b = v4_input;
    a.gateway.ip = IpAddress::from_gateway_field(compatible);
    b.gateway.ip = IpAddress::from_gateway_field(mapped);
    EXPECT_EQ(mac.compute(a), mac.compute(v4_input));
    EXPECT_EQ(mac.compute(b), mac.compute(v4_input));
}

TEST(ResponseMac, ConstantTimeCompareIsEquality) {
    const ResponseMac a = hex_mac("010203040506");
    ResponseMac b = a;
    EXPECT_TRUE(mac_equal(a, b));
    for (size_t i = 0; i < b.size(); ++i) {
        b = a;
        b[i] ^= 0x80;
        EXPECT_FALSE(mac_equal(a, b)) << i;
    }
}

TEST(ResponseMac, RandomSecretsDiffer) {
    MacSecret a, b;
    random_secret(a);
    random_secret(b);
    EXPECT_NE(a, b);
}

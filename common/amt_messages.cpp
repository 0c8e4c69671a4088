#include "common/amt_messages.hpp"

namespace amt {

namespace {

void write_gateway_fields(uint8_t* p, const UdpEndpoint& gw) {
    store_be16(p, gw.port);
    std::memcpy(p + 2, gw.ip.canonical16().data(), 16);
}

UdpEndpoint read_gateway_fields(const uint8_t* p) {
    return {IpAddress::from_gateway_field(p + 2), load_be16(p)};
}

// MAC and nonce sit at octets 2-11 in Query, Update and Teardown alike.
void write_mac_nonce(uint8_t* msg, const ResponseMac& mac, uint32_t nonce) {
    std::memcpy(msg + 2, mac.data(), mac.size());
    store_be32(msg + 8, nonce);
}

void read_mac_nonce(const uint8_t* msg, ResponseMac& mac, uint32_t& nonce) {
    std::memcpy(mac.data(), msg + 2, mac.size());
    nonce = load_be32(msg + 8);
}

ParseError check_type(ByteView msg, MessageType expected, size_t min_size) {
    MessageType t;
    if (ParseError e = peek_message_type(msg, t); e != ParseError::ok) return e;
    if (t != expected) return ParseError::unknown_type;
    return msg.size() < min_size ? ParseError::truncated_message : ParseError::ok;
}

}  // namespace

ParseError peek_message_type(ByteView msg, MessageType& type) {
    if (msg.empty()) return ParseError::empty_message;
    if ((msg[0] >> 4) != 0) return ParseError::bad_version;
    const uint8_t t = msg[0] & 0x0f;
    if (t < 1 || t > 7) return ParseError::unknown_type;
    type = static_cast<MessageType>(t);
    return ParseError::ok;
}

ParseError parse_discovery(ByteView msg, Discovery& out) {
    if (ParseError e = check_type(msg, MessageType::relay_discovery, discovery_size);
        e != ParseError::ok) {
        return e;
    }
    out.nonce = load_be32(msg.data() + 4);
    return ParseError::ok;
}

ParseError parse_advertisement(ByteView msg, Advertisement& out) {
    if (ParseError e = check_type(msg, MessageType::relay_advertisement, advertisement_size_v4);
        e != ParseError::ok) {
        return e;
    }
    out.nonce = load_be32(msg.data() + 4);
    if (msg.size() == advertisement_size_v4) {
        out.relay = IpAddress::v4_from_bytes(msg.data() + 8);
    } else if (msg.size() == advertisement_size_v6) {
        out.relay = IpAddress::v6_from_bytes(msg.data() + 8);
    } else {
        return ParseError::bad_advertisement_length;
    }
    return ParseError::ok;
}

ParseError parse_request(ByteView msg, Request& out) {
    if (ParseError e = check_type(msg, MessageType::request, request_size); e != ParseError::ok) {
        return e;
    }
    out.flags = msg[1];
    out.nonce = load_be32(msg.data() + 4);
    return ParseError::ok;
}

ParseError parse_membership_query(ByteView msg, MembershipQuery& out) {
    if (ParseError e = check_type(msg, MessageType::membership_query, query_fixed_size);
        e != ParseError::ok) {
        return e;
    }
    out.l_flag = msg[1] & query_l_flag;
    read_mac_nonce(msg.data(), out.mac, out.nonce);
    size_t end = msg.size();
    out.gateway.reset();
    if (msg[1] & query_g_flag) {
        if (msg.size() < query_fixed_size + gateway_fields_size) {
            return ParseError::truncated_message;
        }
        end -= gateway_fields_size;
        out.gateway = read_gateway_fields(msg.data() + end);
        if (out.gateway->ip.is_unspecified()) return ParseError::bad_gateway_address;
    }
    if (end == query_fixed_size) return ParseError::missing_encapsulated_packet;
    out.encapsulated = msg.subspan(query_fixed_size, end - query_fixed_size);
    return ParseError::ok;
}

ParseError parse_membership_update(ByteView msg, MembershipUpdate& out) {
    if (ParseError e = check_type(msg, MessageType::membership_update, update_fixed_size);
        e != ParseError::ok) {
        return e;
    }
    if (msg.size() == update_fixed_size) return ParseError::missing_encapsulated_packet;
    read_mac_nonce(msg.data(), out.mac, out.nonce);
    out.encapsulated = msg.subspan(update_fixed_size);
    return ParseError::ok;
}

ParseError parse_multicast_data(ByteView msg, MulticastData& out) {
    if (ParseError e = check_type(msg, MessageType::multicast_data, data_header_size);
        e != ParseError::ok) {
        return e;
    }
    if (msg.size() == data_header_size) return ParseError::missing_encapsulated_packet;
    out.packet = msg.subspan(data_header_size);
    return ParseError::ok;
}

ParseError parse_teardown(ByteView msg, Teardown& out) {
    if (ParseError e = check_type(msg, MessageType::teardown, teardown_size); e != ParseError::ok) {
        return e;
    }
    read_mac_nonce(msg.data(), out.mac, out.nonce);
    out.gateway = read_gateway_fields(msg.data() + 12);
    if (out.gateway.ip.is_unspecified()) return ParseError::bad_gateway_address;
    return ParseError::ok;
}

size_t build_discovery(MutByteView out, const Discovery& m) {
    if (out.size() < discovery_size) return 0;
    std::memset(out.data(), 0, discovery_size);
    out[0] = static_cast<uint8_t>(MessageType::relay_discovery);
    store_be32(out.data() + 4, m.nonce);
    return discovery_size;
}

size_t build_advertisement(MutByteView out, const Advertisement& m) {
    const size_t size = 8 + m.relay.wire_size();
    if (out.size() < size) return 0;
    std::memset(out.data(), 0, 8);
    out[0] = static_cast<uint8_t>(MessageType::relay_advertisement);
    store_be32(out.data() + 4, m.nonce);
    std::memcpy(out.data() + 8, m.relay.wire().data(), m.relay.wire_size());
    return size;
}

size_t build_request(MutByteView out, const Request& m) {
    if (out.size() < request_size) return 0;
    std::memset(out.data(), 0, request_size);
    out[0] = static_cast<uint8_t>(MessageType::request);
    out[1] = m.flags;
    store_be32(out.data() + 4, m.nonce);
    return request_size;
}

size_t build_membership_query(MutByteView out, const QueryFields& m) {
    const size_t size = membership_query_size(m.query_family, m.gateway.has_value());
    if (out.size() < size) return 0;
    uint8_t* p = out.data();
    p[0] = static_cast<uint8_t>(MessageType::membership_query);
    p[1] = static_cast<uint8_t>((m.l_flag ? query_l_flag : 0) | (m.gateway ? query_g_flag : 0));
    write_mac_nonce(p, m.mac, m.nonce);
    const MutByteView inner = out.subspan(query_fixed_size);
    const size_t n = m.query_family == Family::ipv4 ? build_igmpv3_general_query(inner, m.query)
                                                    : build_mldv2_general_query(inner, m.query);
    if (n == 0) return 0;
    if (m.gateway) write_gateway_fields(p + query_fixed_size + n, *m.gateway);
    return size;
}

size_t build_membership_update(MutByteView out, const ResponseMac& mac, uint32_t nonce,
                               ByteView report_datagram) {
    const size_t size = update_fixed_size + report_datagram.size();
    if (out.size() < size || report_datagram.empty()) return 0;
    out[0] = static_cast<uint8_t>(MessageType::membership_update);
    out[1] = 0;
    write_mac_nonce(out.data(), mac, nonce);
    std::memcpy(out.data() + update_fixed_size, report_datagram.data(), report_datagram.size());
    return size;
}

size_t build_multicast_data_header(MutByteView out) {
    if (out.size() < data_header_size) return 0;
    out[0] = static_cast<uint8_t>(MessageType::multicast_data);
    out[1] = 0;
    return data_header_size;
}

size_t build_multicast_data(MutByteView out, ByteView packet) {
    if (out.size() < data_header_size + packet.size() || packet.empty()) return 0;
    build_multicast_data_header(out);
    std::memcpy(out.data() + data_header_size, packet.data(), packet.size());
    return data_header_size + packet.size();
}

size_t build_teardown(MutByteView out, const Teardown& m) {
    if (out.size() < teardown_size) return 0;
    out[0] = static_cast<uint8_t>(MessageType::teardown);
    out[1] = 0;
    write_mac_nonce(out.data(), m.mac, m.nonce);
    write_gateway_fields(out.data() + 12, m.gateway);
    return teardown_size;
}

}  // namespace amt

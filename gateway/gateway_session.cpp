#include "gateway/gateway_session.hpp"

#include <algorithm>

#include "common/packet_headers.hpp"

namespace amt {

namespace {
constexpr int max_request_retries = 6;  // then back to discovery (RFC 7450 §5.2.3.5.3)
// After a silence probe: the Request and 2 retransmissions, 1 s and then 1-2 s apart (the RFC's
// random backoff, capped at 2 s). A relay that answers none of them in 3-5 s while its stream has
// stopped is taken for dead.
constexpr int probe_retries = 2;
constexpr int64_t probe_backoff_cap_s = 2;
constexpr GwTime second = std::chrono::seconds(1);
}  // namespace

std::string_view to_string(SessionState s) {
    switch (s) {
        case SessionState::discovering:
            return "discovering";
        case SessionState::requesting:
            return "requesting";
        case SessionState::joined:
            return "joined";
        case SessionState::stopped:
            return "stopped";
    }
    return "?";
}

GatewaySession::GatewaySession(const SessionConfig& config, std::function<uint32_t()> random)
    : config_(config),
      random_(std::move(random)),
      relay_(config.relay),
      channel_packets_(config.channels.size(), 0) {
    for (const Family f : {Family::ipv4, Family::ipv6}) {
        if (!channels_of(f).empty()) handshakes_.push_back({f});
    }
}

std::vector<Channel> GatewaySession::channels_of(Family f) const {
    std::vector<Channel> out;
    for (const Channel& c : config_.channels) {
        if (c.group.family() == f) out.push_back(c);
    }
    return out;
}

void GatewaySession::send(const UdpEndpoint& to, std::vector<uint8_t> payload) {
    outgoing_.push_back({to, std::move(payload)});
}

void GatewaySession::start(GwTime now) {
    if (relay_) {
        send_requests(now);
    } else {
        send_discovery(now);
    }
}

// Random exponential backoff in [1 s, min(2^n s, cap)] (checklist §7).
void GatewaySession::schedule_retry(GwTime now, int64_t cap_s) {
    const int64_t max_s =
        std::max<int64_t>(1, std::min<int64_t>(int64_t{1} << std::min(retries_, 7), cap_s));
    const int64_t span_ms = (max_s - 1) * 1000;
    const int64_t delay_ms = 1000 + (span_ms > 0 ? random_() % (span_ms + 1) : 0);
    next_action_ = now + std::chrono::milliseconds(delay_ms);
    ++retries_;
}

void GatewaySession::send_discovery(GwTime now) {
    state_ = SessionState::discovering;
    if (discovery_nonce_ == 0) discovery_nonce_ = random_() | 1;  // MUST be non-zero
    std::vector<uint8_t> msg(discovery_size);
    build_discovery(msg, {discovery_nonce_});
    send({config_.discovery, amt_udp_port}, std::move(msg));
    schedule_retry(now);
}

void GatewaySession::send_requests(GwTime now, int64_t backoff_cap_s) {
    if (state_ != SessionState::joined) state_ = SessionState::requesting;
    for (FamilyHandshake& h : handshakes_) {
        h.nonce = random_();  // a new nonce every cycle (RFC 7450 §5.2.3.5.6)
        h.answered = false;
        std::vector<uint8_t> msg(request_size);
        build_request(msg, {.nonce = h.nonce,
                            .flags = h.family == Family::ipv6 ? request_p_flag : uint8_t{0}});
        send(relay_endpoint(), std::move(msg));
    }
    schedule_retry(now, backoff_cap_s);
}

std::vector<uint8_t> GatewaySession::update_message(const FamilyHandshake& h,
                                                    RecordType type) const {
    std::vector<uint8_t> report(1500);
    ReportBuilder b(report, h.family);
    for (const Channel& c : channels_of(h.family)) {
        const bool any = c.source.is_unspecified();
        // SSM: INCLUDE{S}; ASM: EXCLUDE{} (join) / TO_IN{} (leave).
        RecordType t = type;
        if (any) {
            t = type == RecordType::mode_is_include ? RecordType::mode_is_exclude
                                                    : RecordType::change_to_include;
        }
        if (any) {
            b.add_record(t, c.group, {});
        } else {
            b.add_record(t, c.group, std::span(&c.source, 1));
        }
    }
    report.resize(b.finish());
    std::vector<uint8_t> msg(update_fixed_size + report.size());
    build_membership_update(msg, *h.mac, h.mac_nonce, report);
    return msg;
}

void GatewaySession::send_update(FamilyHandshake& h, RecordType type) {
    send(relay_endpoint(), update_message(h, type));
    h.reported = true;
}

void GatewaySession::send_teardown(const FamilyHandshake& h, const UdpEndpoint& old_gateway) {
    std::vector<uint8_t> msg(teardown_size);
    build_teardown(msg, {*h.mac, h.mac_nonce, old_gateway});
    send(relay_endpoint(), std::move(msg));
}

void GatewaySession::on_datagram(const UdpEndpoint& from, ByteView payload, GwTime now) {
    MessageType type;
    if (state_ == SessionState::stopped || peek_message_type(payload, type) != ParseError::ok) {
        return;
    }
    if (type == MessageType::relay_advertisement && state_ == SessionState::discovering) {
        Advertisement adv;
        if (parse_advertisement(payload, adv) != ParseError::ok || adv.nonce != discovery_nonce_ ||
            from.ip != config_.discovery) {
            return;
        }
        relay_ = adv.relay;
        event("relay " + adv.relay.to_string() + " (Advertisement from " +
              config_.discovery.to_string() + ")");
        discovery_nonce_ = 0;
        retries_ = 0;
        send_requests(now);
        return;
    }
    if (!relay_ || from != relay_endpoint()) {  // only the relay we talk to
        if (type == MessageType::multicast_data && former_relay_ &&
            from == UdpEndpoint{*former_relay_, amt_udp_port}) {
            leave_former_relay(from, now);
        }
        return;
    }
    if (type == MessageType::membership_query) {
        MembershipQuery q;
        GeneralQuery gq;
        if (parse_membership_query(payload, q) != ParseError::ok ||
            parse_general_query(q.encapsulated, gq) != ParseError::ok) {
            return;
        }
        const auto h = std::find_if(handshakes_.begin(), handshakes_.end(), [&](const auto& x) {
            return x.nonce == q.nonce && x.family == gq.family;
        });
        if (h == handshakes_.end()) return;
        // The relay saw us at another address than last time: tear the old tunnel down with the
        // old Query's values (RFC 7450 §5.2.3.4.4), then carry on at the new one.
        if (config_.teardown && q.gateway && h->gateway_seen && *h->gateway_seen != *q.gateway &&
            h->mac) {
            send_teardown(*h, *h->gateway_seen);
        }
        if (q.gateway) h->gateway_seen = q.gateway;
        h->mac = q.mac;
        h->mac_nonce = q.nonce;
        qqic_ = gq.qqic == 0 ? 125 : gq.qqic;
        l_flag_ = q.l_flag;
        ++queries_;
        h->answered = true;
        send_update(*h, RecordType::mode_is_include);
        const bool all = std::all_of(handshakes_.begin(), handshakes_.end(),
                                     [](const auto& x) { return x.answered; });
        if (all) {
            if (probing_) event("relay " + relay_->to_string() + " answers: the source is quiet");
            state_ = SessionState::joined;
            retries_ = 0;
            awaiting_query_ = false;
            probing_ = false;
            last_data_ = now;
            next_action_ = now + std::chrono::seconds(qqic_);
        }
        return;
    }
    if (type == MessageType::multicast_data) {
        MulticastData d;
        if (parse_multicast_data(payload, d) != ParseError::ok || d.packet.size() < 20) return;
        const bool v4 = (d.packet[0] >> 4) == 4;
        if (!v4 && d.packet.size() < ipv6_header_size) return;
        const IpAddress src = v4 ? IpAddress::v4_from_bytes(d.packet.data() + 12)
                                 : IpAddress::v6_from_bytes(d.packet.data() + 8);
        const IpAddress dst = v4 ? IpAddress::v4_from_bytes(d.packet.data() + 16)
                                 : IpAddress::v6_from_bytes(d.packet.data() + 24);
        const auto wanted =
            std::find_if(config_.channels.begin(), config_.channels.end(), [&](const Channel& c) {
                return c.group == dst && (c.source.is_unspecified() || c.source == src);
            });
        // Never hand on what we did not ask for (RFC 7450 §5.2.3.3).
        if (wanted == config_.channels.end()) return;
        ++channel_packets_[static_cast<size_t>(wanted - config_.channels.begin())];
        last_data_ = now;
        data_flowing_ = true;
        ++data_packets_;
        data_bytes_ += d.packet.size();
        if (on_data) on_data(d.packet);
    }
}

void GatewaySession::advance(GwTime now) {
    // Data stopped on a joined tunnel: is the relay still there? Start the refresh cycle now.
    if (state_ == SessionState::joined && !awaiting_query_ && data_flowing_ &&
        config_.data_timeout.count() > 0 && now - last_data_ >= config_.data_timeout) {
        data_flowing_ = false;  // asked once per silence: a live relay is not asked again
        probing_ = true;
        event("no data for " +
              std::to_string(
                  std::chrono::duration_cast<std::chrono::seconds>(now - last_data_).count()) +
              " s: asking relay " + relay_->to_string() + " whether it is still there");
        next_action_ = now;
    }
    if (state_ == SessionState::stopped || now < next_action_) return;
    switch (state_) {
        case SessionState::discovering:
            send_discovery(now);
            return;
        case SessionState::requesting:
            if (retries_ > max_request_retries && !config_.relay) {
                retries_ = 0;
                relay_.reset();
                send_discovery(now);
            } else {
                send_requests(now);
            }
            return;
        case SessionState::joined:
            refresh_or_recover(now);
            return;
        case SessionState::stopped:
            return;
    }
}

void GatewaySession::refresh_or_recover(GwTime now) {
    if (!awaiting_query_) {
        // A new cycle: fresh nonces; the Query's answer refreshes the membership. The first
        // retransmission follows in 1 s if no Query comes.
        retries_ = 0;
        awaiting_query_ = true;
        send_requests(now);
        return;
    }
    // The last Request went unanswered. The relay still has our membership until its timeout,
    // so keep the state (and any data still arriving) while retrying.
    if (retries_ > (probing_ ? probe_retries : max_request_retries) && !config_.relay) {
        give_up_relay(now, probing_ ? "its stream stopped and it does not answer"
                                    : "it does not answer the refresh");
        return;
    }
    // A configured relay is never given up: after the probe, back to the refresh's backoff.
    if (probing_ && retries_ > probe_retries) probing_ = false;
    // Never wait longer than a refresh period between Requests: a restarted relay should get
    // us back within one QQIC, not after a 120 s backoff.
    send_requests(now, probing_ ? probe_backoff_cap_s : qqic_);
}

// Gives the relay up and finds one again (it may have gone away for good), remembering what it
// last accepted from us in case it comes back with our old tunnel.
void GatewaySession::give_up_relay(GwTime now, const char* why) {
    event("relay " + relay_->to_string() + " given up (" + why + "): discovering again");
    ++relays_given_up_;
    former_relay_ = relay_;
    former_handshakes_ = handshakes_;
    retries_ = 0;
    awaiting_query_ = false;
    probing_ = false;
    data_flowing_ = false;
    relay_.reset();
    for (FamilyHandshake& h : handshakes_) {
        h = FamilyHandshake{h.family};
    }
    send_discovery(now);
}

// A relay we gave up sends data again: it restarted and restored our tunnel (its state file). We
// are joined elsewhere, so leave it with the nonce and MAC it last accepted (its sticky MAC or
// restored secrets verify them); at most once a second, since its data may keep coming meanwhile.
void GatewaySession::leave_former_relay(const UdpEndpoint& from, GwTime now) {
    if (stale_leaves_ > 0 && now - former_left_at_ < second) return;
    former_left_at_ = now;
    ++stale_leaves_;
    if (stale_leaves_ == 1)
        event("former relay " + from.ip.to_string() + " sends data again: leaving it");
    for (const FamilyHandshake& h : former_handshakes_) {
        if (h.mac) send(from, update_message(h, RecordType::block_old_sources));
    }
}

void GatewaySession::stop(GwTime now) {
    (void)now;
    for (FamilyHandshake& h : handshakes_) {
        if (h.mac && relay_) send_update(h, RecordType::block_old_sources);
    }
    state_ = SessionState::stopped;
}

}  // namespace amt

#include "dataplane/daemon/ipfix_exporter.hpp"

#include <fixbuf/public.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <optional>

#include "common/bytes.hpp"

namespace amt {

namespace {

// flowEndReason (IANA IPFIX registry, RFC 5102 §5.11.3).
constexpr uint8_t idle_timeout = 0x01;
constexpr uint8_t active_timeout = 0x02;
constexpr uint8_t end_of_flow = 0x03;
constexpr uint8_t forced_end = 0x04;

uint8_t flow_end_reason(SessionEnd why) {
    switch (why) {
        case SessionEnd::expiry:
            return idle_timeout;  // the gateway stopped refreshing
        case SessionEnd::active:
            return active_timeout;
        case SessionEnd::relay_stop:
            return forced_end;
        case SessionEnd::leave:
        case SessionEnd::teardown:
            break;
    }
    return end_of_flow;  // the gateway ended it
}

// The record as libfixbuf reads it (the internal template, same order; widest fields first so
// there is no padding but the last).
struct WireRecord {
    uint64_t flow_start_ms;
    uint64_t flow_end_ms;
    uint64_t packets;
    uint64_t octets;
    uint64_t replicas;
    uint64_t replica_octets;
    uint8_t source_v6[16];
    uint8_t group_v6[16];
    uint8_t relay_v6[16];
    uint8_t gateway_v6[16];
    uint32_t source_v4;  // host order: libfixbuf converts
    uint32_t group_v4;
    uint32_t relay_v4;
    uint32_t gateway_v4;
    uint16_t relay_port;
    uint16_t gateway_port;
    uint8_t protocol;
    uint8_t end_reason;
    uint8_t padding[2];
};
static_assert(sizeof(WireRecord) == 136);

// Lengths are explicit: libfixbuf refuses an internal template with defaulted lengths.
// Which export template an element belongs to: the channel's family and the tunnel's.
constexpr uint32_t channel_v4 = 1, channel_v6 = 2, tunnel_v4 = 4, tunnel_v6 = 8, internal = 16;

// clang-format off
fbInfoElementSpec_t record_spec[] = {
    {const_cast<char*>("flowStartMilliseconds"), 8, 0},
    {const_cast<char*>("flowEndMilliseconds"), 8, 0},
    {const_cast<char*>("packetDeltaCount"), 8, 0},
    {const_cast<char*>("octetDeltaCount"), 8, 0},
    {const_cast<char*>("postMCastPacketDeltaCount"), 8, 0},
    {const_cast<char*>("postMCastOctetDeltaCount"), 8, 0},
    {const_cast<char*>("sourceIPv6Address"), 16, channel_v6},
    {const_cast<char*>("destinationIPv6Address"), 16, channel_v6},
    {const_cast<char*>("postNATSourceIPv6Address"), 16, tunnel_v6},
    {const_cast<char*>("postNATDestinationIPv6Address"), 16, tunnel_v6},
    {const_cast<char*>("sourceIPv4Address"), 4, channel_v4},
    {const_cast<char*>("destinationIPv4Address"), 4, channel_v4},
    {const_cast<char*>("postNATSourceIPv4Address"), 4, tunnel_v4},
    {const_cast<char*>("postNATDestinationIPv4Address"), 4, tunnel_v4},
    {const_cast<char*>("postNAPTSourceTransportPort"), 2, 0},
    {const_cast<char*>("postNAPTDestinationTransportPort"), 2, 0},
    {const_cast<char*>("protocolIdentifier"), 1, 0},
    {const_cast<char*>("flowEndReason"), 1, 0},
    {const_cast<char*>("paddingOctets"), 2, internal},
    FB_IESPEC_NULL};
// clang-format on

constexpr uint16_t internal_tid = 0x1000;
// Export templates 256..259: channel IPv4/IPv6 × tunnel IPv4/IPv6.
uint16_t export_tid(const SessionRecord& r) {
    return static_cast<uint16_t>(256 + (r.flow.group.is_v4() ? 0 : 2) +
                                 (r.gateway.ip.is_v4() ? 0 : 1));
}
uint32_t export_flags(uint16_t tid) {
    const uint16_t i = tid - 256;
    return ((i & 2) ? channel_v6 : channel_v4) | ((i & 1) ? tunnel_v6 : tunnel_v4);
}
// Export record sizes, to keep each message under a typical path MTU.
size_t export_size(uint16_t tid) {
    const uint16_t i = tid - 256;
    return 6 * 8 + ((i & 2) ? 32 : 8) + ((i & 1) ? 32 : 8) + 2 * 2 + 2;
}
constexpr size_t message_budget = 1400 - 28 - 16 - 4;  // UDP/IPv4, message and set headers

void set_address(const IpAddress& a, uint32_t& v4, uint8_t (&v6)[16]) {
    if (a.is_v4()) {
        v4 = load_be32(a.canonical16().data() + 12);
    } else {
        std::memcpy(v6, a.canonical16().data(), 16);
    }
}

WireRecord to_wire(const SessionRecord& r) {
    WireRecord w{};
    w.flow_start_ms = static_cast<uint64_t>(r.start_ms);
    w.flow_end_ms = static_cast<uint64_t>(r.end_ms);
    w.packets = r.packets;
    w.octets = r.octets;
    // Each packet reached the gateway inside outer IP + UDP + AMT Data headers.
    const uint64_t overhead = r.gateway.ip.is_v4() ? 20 + 8 + 2 : 40 + 8 + 2;
    w.replicas = r.packets;
    w.replica_octets = r.octets + r.packets * overhead;
    set_address(r.flow.source, w.source_v4, w.source_v6);
    set_address(r.flow.group, w.group_v4, w.group_v6);
    set_address(r.relay.ip, w.relay_v4, w.relay_v6);
    set_address(r.gateway.ip, w.gateway_v4, w.gateway_v6);
    w.relay_port = r.relay.port;
    w.gateway_port = r.gateway.port;
    w.protocol = 17;  // the tunnel is UDP
    w.end_reason = flow_end_reason(r.reason);
    return w;
}

std::string error_text(GError*& err) {
    std::string text = err != nullptr ? err->message : "unknown error";
    g_clear_error(&err);
    return text;
}

// libfixbuf's session, templates, transport and buffer for one exporter thread.
class FixbufSession {
  public:
    FixbufSession(const IpfixConfig& config, const std::string& host, const std::string& port) {
        model_ = fbInfoModelAlloc();
        session_ = fbSessionAlloc(model_);
        fbSessionSetDomain(session_, config.observation_domain);  // templates live in a domain
        GError* err = nullptr;
        fbTemplate_t* in = fbTemplateAlloc(model_);
        if (!fbTemplateAppendSpecArray(in, record_spec, UINT32_MAX, &err) ||
            fbSessionAddTemplate(session_, TRUE, internal_tid, in, &err) == 0) {
            throw std::runtime_error("ipfix internal template: " + error_text(err));
        }
        for (uint16_t tid = 256; tid < 260; ++tid) {
            fbTemplate_t* t = fbTemplateAlloc(model_);
            if (!fbTemplateAppendSpecArray(t, record_spec, export_flags(tid), &err) ||
                fbSessionAddTemplate(session_, FALSE, tid, t, &err) == 0) {
                throw std::runtime_error("ipfix export template: " + error_text(err));
            }
        }
        host_ = host;
        port_ = port;
        fbConnSpec_t spec{};
        spec.transport = FB_UDP;
        spec.host = host_.data();
        spec.svc = port_.data();
        exporter_ = fbExporterAllocNet(&spec);
        buf_ = fBufAllocForExport(session_, exporter_);  // owns session_ and exporter_ now
    }
    ~FixbufSession() {
        if (buf_ != nullptr) fBufFree(buf_);
        if (model_ != nullptr) fbInfoModelFree(model_);
    }
    FixbufSession(const FixbufSession&) = delete;
    FixbufSession& operator=(const FixbufSession&) = delete;

    // The templates, in a message of their own. False (and `error`) if it could not be sent.
    bool send_templates(std::string& error) {
        GError* err = nullptr;
        if (!fbSessionExportTemplates(session_, &err) || !fBufEmit(buf_, &err)) {
            error = error_text(err);
            return false;
        }
        return true;
    }
    bool append(const SessionRecord& r, std::string& error) {
        GError* err = nullptr;
        const WireRecord w = to_wire(r);
        if (!fBufSetInternalTemplate(buf_, internal_tid, &err) ||
            !fBufSetExportTemplate(buf_, export_tid(r), &err) ||
            !fBufAppend(buf_, reinterpret_cast<uint8_t*>(const_cast<WireRecord*>(&w)), sizeof w,
                        &err)) {
            error = error_text(err);
            return false;
        }
        return true;
    }
    bool emit(std::string& error) {
        GError* err = nullptr;
        if (!fBufEmit(buf_, &err)) {
            error = error_text(err);
            return false;
        }
        return true;
    }

  private:
    fbInfoModel_t* model_ = nullptr;
    fbSession_t* session_ = nullptr;
    fbExporter_t* exporter_ = nullptr;
    fBuf_t* buf_ = nullptr;
    std::string host_, port_;
};

}  // namespace

std::pair<std::string, std::string> split_host_port(const std::string& text) {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return {};
    std::string host = text.substr(0, colon);
    if (host.front() == '[') {
        if (host.back() != ']') return {};
        host = host.substr(1, host.size() - 2);
    }
    return {host, text.substr(colon + 1)};
}

IpfixExporter::IpfixExporter(const IpfixConfig& config)
    : config_(config), ring_(config.queue_records) {
    thread_ = std::thread([this] { run(); });
}

IpfixExporter::~IpfixExporter() {
    finish(std::chrono::milliseconds(0));
}

void IpfixExporter::session_record(const SessionRecord& record) {
    const uint64_t head = head_.load(std::memory_order_relaxed);
    if (head - tail_.load(std::memory_order_acquire) >= ring_.size() ||
        stopping_.load(std::memory_order_relaxed)) {
        stats_.dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    ring_[head % ring_.size()] = record;
    head_.store(head + 1, std::memory_order_release);
    stats_.queued.store(head + 1 - tail_.load(std::memory_order_relaxed),
                        std::memory_order_relaxed);
}

bool IpfixExporter::pop(SessionRecord& out) {
    const uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail == head_.load(std::memory_order_acquire)) return false;
    out = ring_[tail % ring_.size()];
    tail_.store(tail + 1, std::memory_order_release);
    return true;
}

void IpfixExporter::finish(std::chrono::milliseconds max_wait) {
    if (!thread_.joinable()) return;
    deadline_ = std::chrono::steady_clock::now() + max_wait;
    stopping_.store(true, std::memory_order_release);
    thread_.join();
    // What the thread could not send in time.
    const uint64_t left = head_.load() - tail_.load();
    stats_.dropped_queue_full.fetch_add(left, std::memory_order_relaxed);
    tail_.store(head_.load());
    stats_.queued.store(0);
}

// libfixbuf reports through GLib's log, once per failed send ("I/O error on UDP send"): to the
// debug log, since the exporter counts failures and summarises them every 10 s itself.
static void log_glib(const gchar*, GLogLevelFlags level, const gchar* message, gpointer) {
    if ((level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) != 0) {
        spdlog::error("ipfix: libfixbuf: {}", message);
    } else {
        spdlog::debug("ipfix: libfixbuf: {}", message);
    }
}

void IpfixExporter::run() {
    using Clock = std::chrono::steady_clock;
    g_log_set_default_handler(log_glib, nullptr);
    const auto [host, port] = split_host_port(config_.collector);
    std::optional<FixbufSession> fixbuf;
    try {
        fixbuf.emplace(config_, host, port);
    } catch (const std::exception& e) {
        spdlog::error("ipfix: {}; no records will be exported", e.what());
    }
    Clock::time_point last_templates{}, last_log = Clock::now(), first_pending{};
    bool need_templates = true;
    size_t pending = 0, pending_bytes = 0;  // records in the message being built
    uint64_t failures = 0, dropped_logged = 0;
    std::string last_error;
    const auto failed = [&](const std::string& error, size_t lost) {
        stats_.dropped_send_failed.fetch_add(lost, std::memory_order_relaxed);
        ++failures;
        last_error = error;
        need_templates = true;  // a collector that was down may be back: templates first
    };
    const auto emit = [&] {
        if (pending == 0) return;
        std::string error;
        if (fixbuf->emit(error)) {
            stats_.exported.fetch_add(pending, std::memory_order_relaxed);
            stats_.messages.fetch_add(1, std::memory_order_relaxed);
        } else {
            failed(error, pending);
        }
        pending = pending_bytes = 0;
    };
    for (;;) {
        const bool stopping = stopping_.load(std::memory_order_acquire);
        const Clock::time_point now = Clock::now();
        if (stopping && (now >= deadline_ || head_.load() == tail_.load())) break;
        // Templates: first, after a failure (retried every second), and every template_refresh
        // seconds (RFC 7011 §10.3.6: a collector that restarted learns them again).
        const auto since_templates = now - last_templates;
        if (fixbuf && ((need_templates && since_templates >= std::chrono::seconds(1)) ||
                       since_templates >= std::chrono::seconds(config_.template_refresh_seconds))) {
            emit();
            std::string error;
            if (fixbuf->send_templates(error)) {
                stats_.template_sends.fetch_add(1, std::memory_order_relaxed);
                need_templates = false;
            } else {
                failed(error, 0);
            }
            last_templates = now;  // a failed send is retried at the next refresh
        }
        SessionRecord r;
        size_t taken = 0;
        while (taken < 256 && pop(r)) {
            ++taken;
            if (!fixbuf || need_templates) {  // never data the collector cannot decode
                stats_.dropped_send_failed.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            const size_t size = export_size(export_tid(r));
            if (pending_bytes + size > message_budget) emit();
            std::string error;
            if (!fixbuf->append(r, error)) {
                failed(error, 1);
                continue;
            }
            if (pending++ == 0) first_pending = now;
            pending_bytes += size;
        }
        stats_.queued.store(head_.load() - tail_.load(), std::memory_order_relaxed);
        // A record waits at most a second for others to share its message.
        if (pending > 0 && (now - first_pending >= std::chrono::seconds(1) || stopping)) emit();
        if (now - last_log >= std::chrono::seconds(10)) {
            const uint64_t dropped = stats_.dropped_queue_full.load();
            if (failures > 0)
                spdlog::warn("ipfix: {} send failure(s) to {} in the last 10 s (last: {})",
                             failures, config_.collector, last_error);
            if (dropped > dropped_logged)
                spdlog::warn("ipfix: {} record(s) dropped: the export queue ({} records) was full",
                             dropped - dropped_logged, ring_.size());
            failures = 0;
            dropped_logged = dropped;
            last_log = now;
        }
        if (taken == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (fixbuf) emit();
}

}  // namespace amt

#include "gateway/channel_url.hpp"

#include <charconv>

namespace amt {

namespace {

constexpr std::string_view url_forms =
    "use amt://SOURCE@GROUP:PORT (SSM) or amt://GROUP:PORT (ASM), IPv6 in brackets: "
    "amt://[2001:db8::7]@[ff3e::8000:1]:5000";

ParsedChannel error(std::string text) {
    return {std::nullopt, std::move(text)};
}

// "[v6]" or "v4"; the brackets are required around IPv6 so that ":PORT" is not ambiguous.
std::optional<IpAddress> parse_host(std::string_view host, std::string& why) {
    if (host.empty()) {
        why = "an address is missing";
        return std::nullopt;
    }
    if (host.front() == '[') {
        if (host.back() != ']') {
            why = "'" + std::string(host) + "' has no closing ']'";
            return std::nullopt;
        }
        host = host.substr(1, host.size() - 2);
        const auto ip = IpAddress::parse(host);
        if (!ip || !ip->is_v6()) why = "'" + std::string(host) + "' is not an IPv6 address";
        return ip && ip->is_v6() ? ip : std::nullopt;
    }
    const auto ip = IpAddress::parse(host);
    if (!ip) {
        why = "'" + std::string(host) + "' is not an IP address";
    } else if (ip->is_v6()) {
        why = "put the IPv6 address '" + std::string(host) + "' in brackets: [" +
              std::string(host) + "]";
        return std::nullopt;
    }
    return ip;
}

std::optional<uint16_t> parse_port(std::string_view text) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
        return std::nullopt;
    }
    return static_cast<uint16_t>(value);
}

std::string host_text(const IpAddress& ip) {
    return ip.is_v6() ? "[" + ip.to_string() + "]" : ip.to_string();
}

ParsedChannel check(const IpAddress& source, const IpAddress& group, uint16_t port) {
    if (!group.is_multicast()) {
        return error("the group " + group.to_string() +
                     " is not a multicast address (224.0.0.0/4 or ff00::/8)");
    }
    if (!source.is_unspecified()) {
        if (source.family() != group.family()) {
            return error("the source " + source.to_string() + " and the group " +
                         group.to_string() + " are of different IP versions");
        }
        if (source.is_multicast()) {
            return error("the source " + source.to_string() +
                         " is a multicast address: give the sender's unicast address");
        }
    }
    return {ChannelSpec{source, group, port}, {}};
}

}  // namespace

ParsedChannel parse_amt_url(std::string_view text) {
    const std::string original(text);
    if (text.starts_with("amt://")) text.remove_prefix(6);
    while (!text.empty() && text.back() == '/')
        text.remove_suffix(1);
    if (text.empty())
        return error("'" + original + "' names no channel: " + std::string(url_forms));
    if (text.find("://") != std::string_view::npos) {
        return error("'" + original + "' is not an amt:// URL: " + std::string(url_forms));
    }
    std::string why;
    std::optional<IpAddress> source;
    const size_t at = text.find('@');
    if (at != std::string_view::npos) {
        source = parse_host(text.substr(0, at), why);
        if (!source) return error("'" + original + "': source: " + why);
        text.remove_prefix(at + 1);
    }
    // GROUP, GROUP:PORT, [GROUP6] or [GROUP6]:PORT
    std::string_view host = text, port_text;
    if (text.front() == '[') {
        const size_t close = text.find(']');
        if (close == std::string_view::npos) {
            return error("'" + original + "': the group has no closing ']'");
        }
        host = text.substr(0, close + 1);
        const std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                return error("'" + original + "': expected ':PORT' after the group, " +
                             std::string(url_forms));
            }
            port_text = rest.substr(1);
        }
    } else if (const size_t colon = text.find(':'); colon != std::string_view::npos) {
        if (text.find(':', colon + 1) != std::string_view::npos) {
            return error("'" + original + "': put the IPv6 group in brackets, " +
                         std::string(url_forms));
        }
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
    }
    const auto group = parse_host(host, why);
    if (!group) return error("'" + original + "': group: " + why);
    uint16_t port = 0;
    if (!port_text.empty() || (host.size() != text.size())) {
        const auto p = parse_port(port_text);
        if (!p) {
            return error("'" + original + "': the port '" + std::string(port_text) +
                         "' must be a number from 1 to 65535");
        }
        port = *p;
    }
    const IpAddress any = group->is_v4() ? IpAddress::v4(0) : *IpAddress::parse("::");
    ParsedChannel c = check(source.value_or(any), *group, port);
    if (!c.channel) c.error = "'" + original + "': " + c.error;
    return c;
}

ParsedChannel make_channel(std::string_view source, std::string_view group, uint16_t port) {
    const auto g = IpAddress::parse(group);
    if (!g) return error("--group '" + std::string(group) + "' is not an IP address");
    std::optional<IpAddress> s = source.empty()
                                     ? (g->is_v4() ? IpAddress::v4(0) : IpAddress::parse("::"))
                                     : IpAddress::parse(source);
    if (!s) return error("--source '" + std::string(source) + "' is not an IP address");
    return check(*s, *g, port);
}

std::string to_amt_url(const ChannelSpec& c) {
    std::string url = "amt://";
    if (!c.any_source()) url += host_text(c.source) + "@";
    url += host_text(c.group);
    if (c.port != 0) url += ":" + std::to_string(c.port);
    return url;
}

std::string stream_path(const ChannelSpec& c) {
    return "/" + (c.any_source() ? std::string("any") : c.source.to_string()) + "/" +
           c.group.to_string() + "/" + (c.port == 0 ? std::string("any") : std::to_string(c.port)) +
           ".ts";
}

std::optional<ChannelSpec> parse_stream_path(std::string_view path) {
    if (!path.starts_with("/") || !path.ends_with(".ts")) return std::nullopt;
    path = path.substr(1, path.size() - 4);
    const size_t a = path.find('/');
    const size_t b = a == std::string_view::npos ? a : path.find('/', a + 1);
    if (b == std::string_view::npos) return std::nullopt;
    const std::string_view s = path.substr(0, a), g = path.substr(a + 1, b - a - 1),
                           p = path.substr(b + 1);
    uint16_t port = 0;
    if (p != "any") {
        const auto parsed = parse_port(p);
        if (!parsed) return std::nullopt;
        port = *parsed;
    }
    const ParsedChannel c = make_channel(s == "any" ? std::string_view() : s, g, port);
    return c.channel;
}

}  // namespace amt

// A channel as a person names it: VLC's amt:// URL form, and the stable HTTP path amtgw serves it
// at. amt://S@G:PORT is SSM (S,G); amt://G:PORT is ASM (*,G); IPv6 addresses go in brackets,
// amt://[2001:db8::7]@[ff3e::8000:1]:5000. Without :PORT every UDP port of the group is handed on.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/ip_address.hpp"

namespace amt {

struct ChannelSpec {
    IpAddress source;  // unspecified: any source (ASM)
    IpAddress group;
    uint16_t port = 0;  // 0: every UDP port

    bool any_source() const { return source.is_unspecified(); }
    auto operator<=>(const ChannelSpec&) const = default;
};

// Either a channel or a sentence that says what is wrong and what the right form is.
struct ParsedChannel {
    std::optional<ChannelSpec> channel;
    std::string error;
};

// amt://S@G:PORT, amt://G:PORT, amt://S@G, amt://G (and the same without "amt://").
ParsedChannel parse_amt_url(std::string_view text);
// From separate fields (the command line's --source/--group/--port; empty source: ASM).
ParsedChannel make_channel(std::string_view source, std::string_view group, uint16_t port);

std::string to_amt_url(const ChannelSpec& c);
// "/S/G/PORT.ts" ("any" for an ASM source or a missing port): the channel's HTTP stream.
std::string stream_path(const ChannelSpec& c);
// The inverse of stream_path, for the HTTP server's router (nullopt: not a stream path).
std::optional<ChannelSpec> parse_stream_path(std::string_view path);

}  // namespace amt

// amtgw --http: each channel as a continuous MPEG-TS stream at stream_path() (VLC, mpv, ffplay,
// ffprobe open it directly), the page for people at /, the same state as /status.json, and
// POST /join and /leave for the page's form. Runs cpp-httplib on its own threads; all shared state
// is in the ChannelHub.
// Why cpp-httplib (Debian libcpp-httplib-dev) over civetweb (libcivetweb-dev), measured on this
// 2-core machine with a minimal streaming server each: one client got 62 MB/s from cpp-httplib
// (chunked) and 217 MB/s from civetweb (raw writes); idle RSS 8 MB against 3.4 MB. A channel is
// 0.5-10 Mbit/s, so either serves hundreds of viewers per core; cpp-httplib won on what matters
// here: routing, form decoding and chunked streaming with disconnect detection in a C++ API,
// where civetweb would need hand-written HTTP headers and form parsing in C.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "gateway/channel_hub.hpp"

namespace httplib {
class Server;
}

namespace amt {

class GatewayHttp {
  public:
    // web_dir holds index.html and node_modules/mpegts.js (gateway/web after `npm ci`).
    GatewayHttp(ChannelHub& hub, std::string web_dir);
    ~GatewayHttp();
    // Binds ADDR:PORT and serves in the background; false (with `error`) if it cannot bind.
    bool start(const std::string& address, int port, std::string& error);
    void stop();

  private:
    void routes();

    ChannelHub& hub_;
    std::string web_dir_;
    std::unique_ptr<httplib::Server> server_;
    std::thread thread_;
};

// "[ADDR:]PORT" (ADDR defaults to 127.0.0.1; IPv6 in brackets). False: `error` says why.
bool parse_listen(const std::string& text, std::string& address, int& port, std::string& error);

// /status.json's document.
std::string status_json(const std::vector<ChannelView>& channels);

}  // namespace amt

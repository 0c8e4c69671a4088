#include "gateway/http_server.hpp"

#include <httplib.h>

#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace amt {

namespace {

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return {};
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

// The form sends either url=amt://... or source/group/port fields.
ParsedChannel channel_from_form(const httplib::Request& req) {
    if (req.has_param("url") && !req.get_param_value("url").empty()) {
        return parse_amt_url(req.get_param_value("url"));
    }
    const std::string port_text = req.get_param_value("port");
    unsigned port = 0;
    if (!port_text.empty()) {
        const auto [end, ec] =
            std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
            return {std::nullopt, "the port '" + port_text + "' must be a number from 1 to 65535"};
        }
    }
    if (req.get_param_value("group").empty()) {
        return {std::nullopt, "give an amt:// URL or a group address"};
    }
    return make_channel(req.get_param_value("source"), req.get_param_value("group"),
                        static_cast<uint16_t>(port));
}

void reply_json(httplib::Response& res, int status, const nlohmann::json& j) {
    res.status = status;
    res.set_content(j.dump(), "application/json");
}

}  // namespace

bool parse_listen(const std::string& text, std::string& address, int& port, std::string& error) {
    address = "127.0.0.1";
    std::string port_text = text;
    const size_t colon = text.rfind(':');
    if (colon != std::string::npos) {
        address = text.substr(0, colon);
        if (address.size() > 2 && address.front() == '[' && address.back() == ']') {
            address = address.substr(1, address.size() - 2);
        }
        port_text = text.substr(colon + 1);
        if (!IpAddress::parse(address)) {
            error = "--http " + text + ": '" + address +
                    "' is not an IP address (e.g. --http 8080, --http 0.0.0.0:8080, "
                    "--http [::1]:8080)";
            return false;
        }
    }
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 1 ||
        port > 65535) {
        error = "--http " + text + ": the port must be a number from 1 to 65535 (e.g. --http 8080)";
        return false;
    }
    return true;
}

std::string status_json(const std::vector<ChannelView>& channels) {
    nlohmann::json list = nlohmann::json::array();
    for (const ChannelView& v : channels) {
        const ChannelStatus& s = v.status;
        list.push_back({
            {"url", to_amt_url(v.spec)},
            {"path", stream_path(v.spec)},
            {"source", v.spec.any_source() ? "*" : v.spec.source.to_string()},
            {"group", v.spec.group.to_string()},
            {"port", v.spec.port},
            {"state", s.state},
            {"relay", s.relay},
            {"packets", s.packets},
            {"bytes", s.bytes},
            {"mbit_per_s", s.mbit_per_s},
            {"ts_continuity_errors", s.ts_errors},
            {"data_seen", s.data_seen},
            {"mpeg_ts", s.mpeg_ts},
            {"relay_refuses_new_gateways", s.relay_refuses},
            {"seconds_since_data", s.seconds_since_data},
            {"viewers", v.viewers},
            {"pinned", v.pinned},
            {"problem", s.problem},
        });
    }
    return nlohmann::json{{"channels", list}}.dump(1);
}

GatewayHttp::GatewayHttp(ChannelHub& hub, std::string web_dir)
    : hub_(hub), web_dir_(std::move(web_dir)), server_(std::make_unique<httplib::Server>()) {
    // Every viewer holds a worker thread for as long as it watches.
    server_->new_task_queue = [] { return new httplib::ThreadPool(64); };
    routes();
}

GatewayHttp::~GatewayHttp() {
    stop();
}

void GatewayHttp::routes() {
    httplib::Server& s = *server_;
    s.Get("/", [this](const httplib::Request&, httplib::Response& res) {
        const std::string page = read_file(web_dir_ + "/index.html");
        if (page.empty()) {
            res.status = 500;
            res.set_content("amtgw: the page is missing: no index.html in " + web_dir_ +
                                " (give --web DIR, the gateway/web folder)\n",
                            "text/plain");
            return;
        }
        res.set_content(page, "text/html; charset=utf-8");
    });
    s.Get("/mpegts.js", [this](const httplib::Request&, httplib::Response& res) {
        const std::string js = read_file(web_dir_ + "/node_modules/mpegts.js/dist/mpegts.js");
        if (js.empty()) {
            res.status = 404;
            res.set_content(
                "// mpegts.js is not installed: run `npm ci` in gateway/web "
                "(sudo scripts/setup does)\n",
                "text/javascript");
            return;
        }
        res.set_content(js, "text/javascript");
    });
    s.Get("/status.json", [this](const httplib::Request&, httplib::Response& res) {
        res.set_header("Cache-Control", "no-store");
        res.set_content(status_json(hub_.snapshot()), "application/json");
    });
    s.Post("/join", [this](const httplib::Request& req, httplib::Response& res) {
        const ParsedChannel c = channel_from_form(req);
        if (!c.channel) return reply_json(res, 400, {{"error", c.error}});
        hub_.pin(*c.channel);
        reply_json(res, 200, {{"url", to_amt_url(*c.channel)}, {"path", stream_path(*c.channel)}});
    });
    s.Post("/leave", [this](const httplib::Request& req, httplib::Response& res) {
        const ParsedChannel c = channel_from_form(req);
        if (!c.channel) return reply_json(res, 400, {{"error", c.error}});
        hub_.unpin(*c.channel);
        reply_json(res, 200, {{"url", to_amt_url(*c.channel)}});
    });
    // /S/G/PORT.ts: a viewer of the channel for as long as the connection lasts.
    s.Get(R"(/([^/]+)/([^/]+)/([^/]+)\.ts)", [this](const httplib::Request& req,
                                                    httplib::Response& res) {
        const auto spec = parse_stream_path(req.path);
        if (!spec) {
            res.status = 404;
            res.set_content("amtgw: " + req.path +
                                " is not a channel: use /SOURCE/GROUP/PORT.ts, 'any' for an "
                                "ASM source or every port\n",
                            "text/plain");
            return;
        }
        const uint64_t viewer = hub_.add_viewer(*spec);
        res.set_header("Cache-Control", "no-store");
        res.set_chunked_content_provider(
            "video/mp2t",
            [this, spec = *spec, viewer, buffer = std::vector<uint8_t>()](
                size_t, httplib::DataSink& sink) mutable {
                buffer.clear();
                if (!hub_.read(spec, viewer, buffer, std::chrono::milliseconds(500))) {
                    sink.done();
                    return false;
                }
                if (buffer.empty()) return sink.is_writable();
                return sink.write(reinterpret_cast<const char*>(buffer.data()), buffer.size());
            },
            [this, spec = *spec, viewer](bool) { hub_.remove_viewer(spec, viewer); });
    });
}

bool GatewayHttp::start(const std::string& address, int port, std::string& error) {
    if (!server_->bind_to_port(address, port)) {
        error = "cannot listen on " + address + ":" + std::to_string(port) +
                " (in use, or not an address of this host): choose another with --http";
        return false;
    }
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    return true;
}

void GatewayHttp::stop() {
    hub_.close_all();
    if (thread_.joinable()) {
        server_->stop();
        thread_.join();
    }
}

}  // namespace amt

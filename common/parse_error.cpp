#include "common/parse_error.hpp"

#include <array>

namespace amt {

std::string_view to_string(ParseError e) {
    static constexpr std::array<std::string_view, parse_error_count> names = {
#define AMT_NAME(name) #name,
        AMT_PARSE_ERRORS(AMT_NAME)
#undef AMT_NAME
    };
    const auto i = static_cast<size_t>(e);
    return i < names.size() ? names[i] : "invalid";
}

}  // namespace amt

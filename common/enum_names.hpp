// Enums whose values have stable snake_case names (drop reasons, parse errors): declared once as
// an X-macro list, from which both the enum and its name table are generated.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#define AMT_ENUM_VALUE(name) name,
#define AMT_ENUM_STRING(name) #name,

namespace amt {

template <typename Enum, size_t N>
constexpr std::string_view enum_name(const std::array<std::string_view, N>& names, Enum e) {
    const auto i = static_cast<size_t>(e);
    return i < N ? names[i] : "invalid";
}

}  // namespace amt

#include "controlplane/drop_reason.hpp"

#include <array>

namespace amt {

std::string_view to_string(DropReason r) {
    static constexpr std::array<std::string_view, drop_reason_count> names = {
#define AMT_NAME(name) #name,
        AMT_DROP_REASONS(AMT_NAME)
#undef AMT_NAME
    };
    const auto i = static_cast<size_t>(r);
    return i < names.size() ? names[i] : "invalid";
}

}  // namespace amt

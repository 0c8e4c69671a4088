#include "dataplane/worker_counters.hpp"

namespace amt {

std::string_view to_string(DataplaneDrop d) {
    static constexpr std::array<std::string_view, dataplane_drop_count> names = {
#define AMT_NAME(name) #name,
        AMT_DATAPLANE_DROPS(AMT_NAME)
#undef AMT_NAME
    };
    const auto i = static_cast<size_t>(d);
    return i < names.size() ? names[i] : "invalid";
}

}  // namespace amt

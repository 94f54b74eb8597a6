// Statistics in the Prometheus text exposition format.
#include <cstring>

#include "capi/handles.hpp"
#include "store/metrics.hpp"

using namespace daxkv;
using daxkv::capi::store_of;

extern "C" {

DAXKV_API int daxkv_stats_prometheus(daxkv_store *s, char *buf, size_t cap, size_t *needed) {
    return guarded([&] {
        Store &st = store_of(s);
        if (!buf && cap)
            return set_error(-EINVAL, "buf is NULL but cap is %zu", cap);
        struct daxkv_stats x;
        std::memset(&x, 0, sizeof x);
        x.struct_size = sizeof x;
        st.stats(x);
        std::string text = prometheus_text(x);
        if (needed)
            *needed = text.size() + 1;
        if (cap < text.size() + 1)
            return set_error(-ENOBUFS, "the metrics need %zu bytes, the buffer holds %zu",
                             text.size() + 1, cap);
        std::memcpy(buf, text.c_str(), text.size() + 1);
        return 0;
    });
}

} // extern "C"

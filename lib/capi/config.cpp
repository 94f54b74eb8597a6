// daxkv_config_*: the configuration builder.
#include "capi/handles.hpp"

using namespace daxkv;

extern "C" {

DAXKV_API int daxkv_config_new(daxkv_config **out) {
    return guarded([&] {
        if (!out)
            return set_error(-EINVAL, "out is NULL");
        *out = new daxkv_config();
        return 0;
    });
}

DAXKV_API void daxkv_config_free(daxkv_config *cfg) { delete cfg; }

DAXKV_API int daxkv_config_set(daxkv_config *cfg, const char *key, const char *value) {
    return guarded([&] {
        if (!cfg)
            return set_error(-EINVAL, "config is NULL");
        if (!key || !value)
            return set_error(-EINVAL, "%s is NULL", key ? "value" : "key");
        // Validate on a copy so that a rejected value leaves cfg unchanged.
        Config next = cfg->cfg;
        next.set(key, value);
        cfg->cfg = std::move(next);
        return 0;
    });
}

DAXKV_API int daxkv_config_add_device(daxkv_config *cfg, const char *path, uint64_t bytes) {
    return guarded([&] {
        if (!cfg)
            return set_error(-EINVAL, "config is NULL");
        if (!path)
            return set_error(-EINVAL, "path is NULL");
        cfg->cfg.add_device(path, bytes);
        return 0;
    });
}

DAXKV_API int daxkv_config_from_json(daxkv_config **out, const char *json) {
    return guarded([&] {
        if (!out)
            return set_error(-EINVAL, "out is NULL");
        *out = nullptr;
        if (!json)
            return set_error(-EINVAL, "json is NULL");
        auto c = std::make_unique<daxkv_config>();
        c->cfg = Config::from_json(json);
        *out = c.release();
        return 0;
    });
}

} // extern "C"

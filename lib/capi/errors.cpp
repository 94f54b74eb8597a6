// Versions, error strings, the thread-local message, logging.
#include "capi/handles.hpp"

using namespace daxkv;

extern "C" {

DAXKV_API unsigned daxkv_version_number(void) { return DAXKV_VERSION_NUMBER; }

DAXKV_API const char *daxkv_version_string(void) { return DAXKV_VERSION_STRING; }

DAXKV_API const char *daxkv_strerror(int err) { return error_text(err); }

DAXKV_API const char *daxkv_errmsg(void) { return last_error_message(); }

DAXKV_API void daxkv_set_log_fn(daxkv_log_fn fn, int max_level, void *arg) {
    set_log_fn(fn, max_level, arg);
}

} // extern "C"

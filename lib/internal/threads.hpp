// Starting the library's own threads whose failure fails a call (copy
// workers, the statistics publisher, the asynchronous dispatcher).
#pragma once

#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "internal/error.hpp"

namespace daxkv {

// A thread running fn. One the system cannot start (EAGAIN: the process's
// limit of threads or of address space) throws Error naming `what`, where
// std::thread's own exception says only "Resource temporarily unavailable".
template <typename F>
std::thread start_thread(const std::string &what, F &&fn) {
    try {
        return std::thread(std::forward<F>(fn));
    } catch (const std::system_error &e) {
        const int code = e.code().value();
        fail(code > 0 ? -code : -EAGAIN, "cannot start %s: %s", what.c_str(),
             std::strerror(code > 0 ? code : EAGAIN));
    }
}

} // namespace daxkv

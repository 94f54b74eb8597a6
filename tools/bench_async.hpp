// Pieces of daxkv bench kept apart from the main store/restore run.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "daxkv.h"

namespace daxkv_cli {

// Submit + completion of a 1-item get batch of key (stored, value_len
// bytes), rounds times: with a destination of value_len bytes (a batch run
// inline by daxkv_submit), waiting by polling and by poll(2) on the event
// fd, and with a destination of cap bytes (above the inline limit: run by
// the dispatcher thread); next to the synchronous daxkv_get_batch. Medians
// and p99 in microseconds; null with *error set on failure.
nlohmann::json bench_async_overhead(daxkv_store *s, const std::string &key, void *buf,
                                    size_t value_len, size_t cap, size_t rounds,
                                    std::string *error);

} // namespace daxkv_cli

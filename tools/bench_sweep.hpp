// daxkv bench --sweep (value sizes x worker counts, --plot) and
// --workload lmcache (long documents in 256-token chunks, prefix restores).
#pragma once

#include "cli.hpp"

namespace daxkv_cli {

int cmd_bench_sweep(const Args &a);
int cmd_bench_lmcache(const Args &a);

} // namespace daxkv_cli

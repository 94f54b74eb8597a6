# libdaxkv.so: the layers of lib/, bottom to top. They are built as two
# convenience libraries, which the shared library wraps and the unit tests
# link directly (to reach internals the version script hides):
#   libdaxkv_arena: errors and sizes, the platform layer (discovery, mapping,
#     copy routines), the SIGBUS guard over them (engine/fault.cpp, which
#     recovery and `daxkv check` read slots under) and the on-device format.
#     The daxkv command links it next to libdaxkv.so: info, check and format
#     read the on-device format through the arena's internal API, which the
#     shared library does not export.
#   libdaxkv_core: the arena layers plus the copy engine, CUDA, the store and
#     the C API.
noinst_LTLIBRARIES += lib/libdaxkv_arena.la lib/libdaxkv_core.la
lib_LTLIBRARIES += lib/libdaxkv.la

lib_libdaxkv_arena_la_SOURCES = \
	lib/internal/error.cpp lib/internal/error.hpp lib/internal/error_text.cpp \
	lib/internal/util.cpp lib/internal/util.hpp lib/internal/undo.hpp \
	lib/internal/take_turns.cpp lib/internal/take_turns.hpp \
	lib/internal/process_mutex.cpp lib/internal/process_mutex.hpp \
	lib/internal/threads.hpp \
	lib/internal/json_text.cpp lib/internal/json_text.hpp \
	lib/platform/cpu.cpp lib/platform/cpu.hpp \
	lib/platform/device.hpp \
	lib/platform/discovery.cpp lib/platform/discovery_testing.hpp \
	lib/platform/fork.cpp lib/platform/fork.hpp \
	lib/platform/devdax_open.cpp lib/platform/devdax_open.hpp \
	lib/platform/copy.cpp lib/platform/copy.hpp \
	lib/engine/fault.cpp lib/engine/fault.hpp \
	lib/platform/mapping.cpp lib/platform/mapping.hpp \
	lib/platform/numa.cpp lib/platform/numa.hpp \
	lib/arena/format.hpp \
	lib/arena/checksum.cpp lib/arena/checksum.hpp \
	lib/arena/arena.cpp lib/arena/arena.hpp lib/arena/layout.cpp \
	lib/arena/inspect.cpp lib/arena/inspect.hpp \
	lib/arena/slot_parts.cpp lib/arena/slot_parts.hpp
lib_libdaxkv_arena_la_CPPFLAGS = $(AM_CPPFLAGS) $(XXHASH_CFLAGS) $(DAXCTL_CFLAGS) $(UUID_CFLAGS)
lib_libdaxkv_arena_la_CXXFLAGS = $(AM_CXXFLAGS) -fvisibility=hidden -fvisibility-inlines-hidden
lib_libdaxkv_arena_la_LIBADD = $(XXHASH_LIBS) $(DAXCTL_LIBS) $(NUMA_LIBS) $(UUID_LIBS) -lpthread

lib_libdaxkv_core_la_SOURCES = \
	lib/engine/copy_engine.cpp lib/engine/copy_engine.hpp \
	lib/cuda/cuda_decls.hpp \
	lib/cuda/runtime.cpp lib/cuda/runtime.hpp \
	lib/cuda/registration.cpp lib/cuda/registration.hpp \
	lib/cuda/staging.cpp lib/cuda/staging.hpp \
	lib/store/config.cpp lib/store/config.hpp \
	lib/store/slot_allocator.cpp lib/store/slot_allocator.hpp \
	lib/store/metrics.cpp lib/store/metrics.hpp \
	lib/store/stats_page.cpp lib/store/stats_page.hpp \
	lib/store/item.hpp lib/store/counters.hpp lib/store/gate.hpp \
	lib/store/events.cpp lib/store/events.hpp \
	lib/store/pool.cpp lib/store/pool.hpp \
	lib/store/slot_states.cpp lib/store/slot_states.hpp \
	lib/store/history.cpp lib/store/history.hpp \
	lib/store/index.cpp lib/store/index.hpp lib/store/entry_table.hpp \
	lib/store/copies.cpp lib/store/copies.hpp \
	lib/store/core.hpp \
	lib/store/entries.cpp lib/store/entries.hpp \
	lib/store/recovery.cpp lib/store/recovery.hpp \
	lib/store/writes.cpp lib/store/writes.hpp \
	lib/store/reservations.cpp lib/store/reservations.hpp \
	lib/store/reads.cpp lib/store/reads.hpp lib/store/held_slots.hpp \
	lib/store/gpu.cpp lib/store/gpu.hpp lib/store/gpu_state.hpp \
	lib/store/gpu_transfer.cpp \
	lib/store/async.cpp lib/store/async.hpp \
	lib/store/reports.cpp lib/store/reports.hpp \
	lib/store/hotplug.cpp lib/store/hotplug.hpp \
	lib/store/migrate.cpp \
	lib/store/store.cpp lib/store/store.hpp \
	lib/store/keys.cpp lib/store/keys.hpp \
	lib/capi/handles.hpp \
	lib/capi/convert.cpp lib/capi/convert.hpp \
	lib/capi/constants.cpp \
	lib/capi/prometheus.cpp lib/capi/prometheus.hpp \
	lib/capi/errors.cpp \
	lib/capi/config.cpp \
	lib/capi/store.cpp \
	lib/capi/zero_copy.cpp \
	lib/capi/memcpy.cpp \
	lib/capi/async.cpp \
	lib/capi/metrics.cpp \
	lib/capi/devices.cpp \
	lib/capi/cuda.cpp \
	lib/capi/hotplug.cpp \
	lib/capi/keys.cpp

lib_libdaxkv_core_la_CPPFLAGS = $(AM_CPPFLAGS) $(XXHASH_CFLAGS) $(JSON_CFLAGS) $(DAXCTL_CFLAGS) \
	$(UUID_CFLAGS)
lib_libdaxkv_core_la_CXXFLAGS = $(AM_CXXFLAGS) -fvisibility=hidden -fvisibility-inlines-hidden
lib_libdaxkv_core_la_LIBADD = lib/libdaxkv_arena.la $(XXHASH_LIBS) $(DAXCTL_LIBS) $(NUMA_LIBS) \
	$(UUID_LIBS) -lpthread

# With the CUDA headers at hand, a compile-time comparison of the library's
# own CUDA declarations with them (no code; see lib/cuda/header_check.cpp).
if HAVE_CUDA_HEADERS
noinst_LTLIBRARIES += lib/libdaxkv_cudacheck.la
lib_libdaxkv_cudacheck_la_SOURCES = lib/cuda/header_check.cpp
lib_libdaxkv_cudacheck_la_CPPFLAGS = $(AM_CPPFLAGS) $(CUDA_CPPFLAGS)
else
EXTRA_DIST += lib/cuda/header_check.cpp
endif

lib_libdaxkv_la_SOURCES =
# Link as C++ although every object comes from the convenience library.
nodist_EXTRA_lib_libdaxkv_la_SOURCES = lib/link-as-cxx.cpp
lib_libdaxkv_la_LIBADD = lib/libdaxkv_core.la
lib_libdaxkv_la_LDFLAGS = $(AM_LDFLAGS) \
	-version-info $(DAXKV_LT_CURRENT):$(DAXKV_LT_REVISION):$(DAXKV_LT_AGE) \
	-Wl,--version-script=$(top_srcdir)/lib/libdaxkv.map $(DAXKV_ZDEFS) -Wl,-z,relro -Wl,-z,now
EXTRA_lib_libdaxkv_la_DEPENDENCIES = lib/libdaxkv.map
EXTRA_DIST += lib/libdaxkv.map

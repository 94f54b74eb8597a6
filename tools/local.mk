# The daxkv command. It links the core convenience library (the layers of
# lib/, like the unit tests) rather than libdaxkv.so: info, check and format
# read and write the on-device format through the internal arena API.
bin_PROGRAMS += tools/daxkv
# bench --gpu loads the CUDA runtime with the library's loader (lib/cuda).
tools_daxkv_SOURCES = tools/daxkv.cpp tools/bench.cpp tools/bench_gpu.cpp tools/bench_migrate.cpp \
	tools/bench_async.cpp tools/bench_async.hpp tools/bench_sweep.cpp tools/bench_sweep.hpp \
	tools/bench_util.hpp tools/devices.cpp tools/arena_cmds.cpp tools/bench_durability.cpp \
	tools/cli.hpp
tools_daxkv_CPPFLAGS = $(AM_CPPFLAGS) $(JSON_CFLAGS) $(XXHASH_CFLAGS)
tools_daxkv_LDADD = lib/libdaxkv_core.la -lpthread

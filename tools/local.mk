# The daxkv command. It runs the shipped library: every store operation goes
# through libdaxkv.so. info, check and format read and write the on-device
# format through the arena's internal API, which libdaxkv.so does not
# export; those layers come from the private convenience library
# lib/libdaxkv_arena.la, linked into the program.
bin_PROGRAMS += tools/daxkv
# bench --gpu loads the CUDA runtime with the library's loader (compiled in,
# as tests/gpu/gpu_check does), for cudaMalloc and the cudaMemcpy reference.
tools_daxkv_SOURCES = tools/daxkv.cpp tools/bench.cpp tools/bench_gpu.cpp tools/bench_migrate.cpp \
	tools/bench_async.cpp tools/bench_async.hpp tools/bench_sweep.cpp tools/bench_sweep.hpp \
	tools/bench_util.hpp tools/bench_arena.hpp tools/devices.cpp tools/arena_cmds.cpp tools/bench_durability.cpp \
	tools/cli.cpp tools/cli.hpp tools/live.cpp tools/bench_limit.cpp tools/bench_limit.hpp \
	tools/interrupt.cpp tools/interrupt.hpp lib/cuda/runtime.cpp
tools_daxkv_CPPFLAGS = $(AM_CPPFLAGS) $(JSON_CFLAGS) $(XXHASH_CFLAGS) $(UUID_CFLAGS)
tools_daxkv_LDADD = lib/libdaxkv.la lib/libdaxkv_arena.la $(UUID_LIBS) -lpthread

# Bash completion of the commands and options (daxkv --list-cmds and
# COMMAND --list-opts keep it in step with the program).
dist_bashcompletion_DATA = tools/bash-completion/daxkv

# The udev rule of the packages (the group daxkv may open Device-DAX devices);
# installed by debian/ and rpm/, not by make install (udev reads only its own
# directories, outside any --prefix).
EXTRA_DIST += tools/udev/60-daxkv-tools.rules

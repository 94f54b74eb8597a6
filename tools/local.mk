# The daxkv command.
bin_PROGRAMS += tools/daxkv
# bench --gpu loads the CUDA runtime with the library's loader, built in.
tools_daxkv_SOURCES = tools/daxkv.cpp tools/bench.cpp tools/bench_gpu.cpp tools/devices.cpp \
	tools/cli.hpp lib/cuda/runtime.cpp
tools_daxkv_CPPFLAGS = $(AM_CPPFLAGS) $(JSON_CFLAGS)
tools_daxkv_LDADD = lib/libdaxkv.la -lpthread

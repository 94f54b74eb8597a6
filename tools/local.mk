# The daxkv command.
bin_PROGRAMS += tools/daxkv
tools_daxkv_SOURCES = tools/daxkv.cpp tools/bench.cpp tools/bench_async.cpp tools/bench_async.hpp \
	tools/bench_sweep.cpp tools/bench_sweep.hpp tools/bench_util.hpp \
	tools/devices.cpp tools/cli.hpp
tools_daxkv_CPPFLAGS = $(AM_CPPFLAGS) $(JSON_CFLAGS)
tools_daxkv_LDADD = lib/libdaxkv.la -lpthread

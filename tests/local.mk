# Tests run by `make check`. The per-suite scripts in tests/suites/ (run by
# tests/run-all.sh) add the sanitizer builds, the guest rig and the bindings.

# The C API, compiled as C99 against the installed-layout header.
check_PROGRAMS += tests/capi/capi_test
tests_capi_capi_test_SOURCES = tests/capi/capi_test.c
tests_capi_capi_test_CFLAGS = $(AM_CFLAGS) -std=c99 -pedantic -Werror
tests_capi_capi_test_LDADD = lib/libdaxkv.la
TESTS += tests/capi/capi_test

# The exported symbols are exactly the map file's.
TESTS += tests/abi/check-symbols.sh
EXTRA_DIST += tests/abi/check-symbols.sh
TESTS_ENVIRONMENT = top_srcdir=$(top_srcdir) top_builddir=$(top_builddir); export top_srcdir top_builddir;

# The fake CUDA runtime the GPU-transfer tests load through DAXKV_TEST_CUDART
# (a shared object: libtool needs -rpath to build one for check).
check_LTLIBRARIES += tests/fakecuda/libfakecudart.la
tests_fakecuda_libfakecudart_la_SOURCES = tests/fakecuda/fakecudart.cpp tests/fakecuda/fakecuda.h
tests_fakecuda_libfakecudart_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-rpath $(abs_top_builddir)/tests/fakecuda
tests_fakecuda_libfakecudart_la_LIBADD = -lpthread
FAKECUDART = $(abs_top_builddir)/tests/fakecuda/.libs/libfakecudart.so

if HAVE_GTEST
check_PROGRAMS += tests/unit/daxkv_unit
tests_unit_daxkv_unit_SOURCES = \
	tests/unit/helpers.hpp \
	tests/unit/test_config.cpp \
	tests/unit/test_store.cpp \
	tests/unit/test_batch.cpp \
	tests/unit/test_lifetime.cpp \
	tests/unit/test_arena.cpp \
	tests/unit/test_discovery.cpp \
	tests/unit/test_cuda.cpp
tests_unit_daxkv_unit_CPPFLAGS = $(AM_CPPFLAGS) $(GTEST_CFLAGS) $(XXHASH_CFLAGS) $(JSON_CFLAGS) \
	-I$(top_srcdir)/tests/fakecuda -DFAKECUDART_PATH='"$(FAKECUDART)"'
EXTRA_tests_unit_daxkv_unit_DEPENDENCIES = tests/fakecuda/libfakecudart.la
tests_unit_daxkv_unit_LDADD = lib/libdaxkv_core.la $(GTEST_LIBS) -lpthread
TESTS += tests/unit/daxkv_unit
endif

# GPU checks, built everywhere, run on a GPU machine by tests/gpu/run-gpu-tests.sh.
check_PROGRAMS += tests/gpu/gpu_check
tests_gpu_gpu_check_SOURCES = tests/gpu/gpu_check.cpp lib/cuda/runtime.cpp
tests_gpu_gpu_check_LDADD = lib/libdaxkv.la -lpthread
EXTRA_DIST += tests/gpu/run-gpu-tests.sh tests/gpu/README.md tests/fakecuda/fakecuda.h

# Built for the real-device rig (tests/vm): run inside the QEMU guest by
# tests/suites/30-guest.sh, not by make check.
if HAVE_GTEST
check_PROGRAMS += tests/vm/guest_devdax_test
tests_vm_guest_devdax_test_SOURCES = tests/vm/guest_devdax_test.cpp
tests_vm_guest_devdax_test_CPPFLAGS = $(AM_CPPFLAGS) $(GTEST_CFLAGS)
tests_vm_guest_devdax_test_LDADD = lib/libdaxkv_core.la $(GTEST_LIBS) -lpthread
check_PROGRAMS += tests/vm/guest_store_crash
tests_vm_guest_store_crash_SOURCES = tests/vm/guest_store_crash.cpp
tests_vm_guest_store_crash_LDADD = lib/libdaxkv_core.la -lpthread
endif
EXTRA_DIST += tests/vm/run-guest-tests.sh tests/vm/guest-list-check.sh tests/vm/README.md

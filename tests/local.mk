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
	tests/unit/test_async.cpp \
	tests/unit/test_faults.cpp \
	tests/unit/test_metrics.cpp \
	tests/unit/test_numa.cpp
tests_unit_daxkv_unit_CPPFLAGS = $(AM_CPPFLAGS) $(GTEST_CFLAGS) $(XXHASH_CFLAGS) $(JSON_CFLAGS)
tests_unit_daxkv_unit_LDADD = lib/libdaxkv_core.la $(GTEST_LIBS) -lpthread
TESTS += tests/unit/daxkv_unit
endif

# Built for the real-device rig (tests/vm): run inside the QEMU guest by
# tests/suites/30-guest.sh, not by make check.
if HAVE_GTEST
check_PROGRAMS += tests/vm/guest_devdax_test
tests_vm_guest_devdax_test_SOURCES = tests/vm/guest_devdax_test.cpp
tests_vm_guest_devdax_test_CPPFLAGS = $(AM_CPPFLAGS) $(GTEST_CFLAGS)
tests_vm_guest_devdax_test_LDADD = lib/libdaxkv_core.la $(GTEST_LIBS) -lpthread
endif
EXTRA_DIST += tests/vm/run-guest-tests.sh tests/vm/guest-list-check.sh tests/vm/README.md

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
	tests/unit/alloc_failure.hpp \
	tests/unit/alloc_failure.cpp \
	tests/unit/call_failure.hpp \
	tests/unit/call_failure.cpp \
	tests/unit/test_out_of_memory.cpp \
	tests/unit/test_config.cpp \
	tests/unit/test_store.cpp \
	tests/unit/test_batch.cpp \
	tests/unit/test_lifetime.cpp \
	tests/unit/test_entry_table.cpp \
	tests/unit/test_arena.cpp \
	tests/unit/test_discovery.cpp \
	tests/unit/test_cuda.cpp \
	tests/unit/test_hotplug.cpp \
	tests/unit/test_async.cpp \
	tests/unit/test_faults.cpp \
	tests/unit/test_metrics.cpp \
	tests/unit/test_numa.cpp \
	tests/unit/test_engine.cpp \
	tests/unit/test_keys.cpp \
	tests/unit/test_copy.cpp \
	tests/unit/test_large_values.cpp \
	tests/unit/test_commit.cpp \
	tests/unit/test_stats_page.cpp
tests_unit_daxkv_unit_CPPFLAGS = $(AM_CPPFLAGS) $(GTEST_CFLAGS) $(XXHASH_CFLAGS) $(JSON_CFLAGS) $(UUID_CFLAGS) \
	-I$(top_srcdir)/tests/fakecuda -DFAKECUDART_PATH='"$(FAKECUDART)"' \
	-DDAXKV_SOURCE_DIR='"$(abs_top_srcdir)"'
EXTRA_tests_unit_daxkv_unit_DEPENDENCIES = tests/fakecuda/libfakecudart.la
tests_unit_daxkv_unit_LDADD = lib/libdaxkv_core.la $(GTEST_LIBS) -lpthread
# The fake CUDA runtime looks this up to keep its own allocations out of the
# out-of-memory injection (alloc_failure.hpp).
tests_unit_daxkv_unit_LDFLAGS = $(AM_LDFLAGS) \
	-Wl,--export-dynamic-symbol=daxkv_test_pause_allocation_failures
TESTS += tests/unit/daxkv_unit
endif

if HAVE_GTEST
# The adversarial suite (tests/adversarial): the library attacked from
# outside, as a hostile or unlucky caller would. Run by
# tests/suites/16-adversarial.sh and, under ASan+UBSan and TSan, by
# 20-sanitizers.sh.
check_PROGRAMS += tests/adversarial/daxkv_adversarial
tests_adversarial_daxkv_adversarial_SOURCES = \
	tests/adversarial/common.hpp \
	tests/adversarial/test_sizes.cpp \
	tests/adversarial/test_paths.cpp \
	tests/adversarial/test_lifetimes.cpp \
	tests/adversarial/test_copies.cpp \
	tests/adversarial/test_history.cpp \
	tests/adversarial/test_damage.cpp \
	tests/adversarial/test_input.cpp \
	tests/adversarial/test_hotplug_model.cpp \
	tests/adversarial/test_inplace_model.cpp \
	tests/adversarial/test_users.cpp \
	tests/adversarial/test_async_races.cpp \
	tests/adversarial/test_contracts.cpp
tests_adversarial_daxkv_adversarial_CPPFLAGS = $(AM_CPPFLAGS) $(GTEST_CFLAGS) $(XXHASH_CFLAGS) \
	$(JSON_CFLAGS) -I$(top_srcdir)/tests/fakecuda -DFAKECUDART_PATH='"$(FAKECUDART)"'
EXTRA_tests_adversarial_daxkv_adversarial_DEPENDENCIES = tests/fakecuda/libfakecudart.la
tests_adversarial_daxkv_adversarial_LDADD = lib/libdaxkv_core.la $(GTEST_LIBS) -lpthread
endif

# GPU checks, built everywhere, run on a GPU machine by tests/gpu/run-gpu-tests.sh.
check_PROGRAMS += tests/gpu/gpu_check
tests_gpu_gpu_check_SOURCES = tests/gpu/gpu_check.cpp lib/cuda/runtime.cpp \
	lib/internal/process_mutex.cpp
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

# Kill test (tests/crash): SIGKILL a writer at random moments, reopen, check
# every acknowledged operation. Run by tests/suites/15-crash.sh (200 rounds);
# `make check-long` runs KILL_ROUNDS of them.
check_PROGRAMS += tests/crash/kill_test
tests_crash_kill_test_SOURCES = tests/crash/kill_test.cpp tests/crash/kill_common.hpp
tests_crash_kill_test_LDADD = lib/libdaxkv.la
KILL_ROUNDS = 5000
# The same across the histories of a pool: hotplug calls killed, devices
# missing at some opens and back at later ones.
check_PROGRAMS += tests/crash/pool_kill_test
tests_crash_pool_kill_test_SOURCES = tests/crash/pool_kill_test.cpp tests/crash/kill_common.hpp
tests_crash_pool_kill_test_LDADD = lib/libdaxkv.la
# Opens that create their file arena killed: the path holds a whole arena
# or nothing.
check_PROGRAMS += tests/crash/create_kill_test
tests_crash_create_kill_test_SOURCES = tests/crash/create_kill_test.cpp tests/crash/kill_common.hpp
tests_crash_create_kill_test_LDADD = lib/libdaxkv.la

check-long: tests/crash/kill_test$(EXEEXT) tests/crash/pool_kill_test$(EXEEXT) \
		tests/crash/create_kill_test$(EXEEXT)
	$(top_builddir)/tests/crash/kill_test --rounds $(KILL_ROUNDS)
	$(top_builddir)/tests/crash/pool_kill_test --rounds $(KILL_ROUNDS)
	$(top_builddir)/tests/crash/create_kill_test --rounds $(KILL_ROUNDS)

# The libFuzzer targets (tests/fuzz): the recovery parser, with the program
# that writes its seed corpus, and the statistics page and configuration
# readers. The targets are built only in a tree configured with
# --enable-fuzzer (clang); `make fuzz` and `make fuzz-peek` there run them
# for FUZZ_SECONDS each. From any tree, `make fuzz-long` builds such a tree next to
# this one and fuzzes for an hour (tests/suites/25-fuzz.sh).
check_PROGRAMS += tests/fuzz/make_seeds
tests_fuzz_make_seeds_SOURCES = tests/fuzz/make_seeds.cpp
tests_fuzz_make_seeds_CPPFLAGS = $(AM_CPPFLAGS) $(XXHASH_CFLAGS)
tests_fuzz_make_seeds_LDADD = lib/libdaxkv_core.la -lpthread
FUZZ_SECONDS = 60
FUZZ_DIR = fuzz-work
if FUZZER
check_PROGRAMS += tests/fuzz/fuzz_recovery
tests_fuzz_fuzz_recovery_SOURCES = tests/fuzz/fuzz_recovery.cpp
tests_fuzz_fuzz_recovery_CPPFLAGS = $(AM_CPPFLAGS) $(XXHASH_CFLAGS)
tests_fuzz_fuzz_recovery_LDADD = lib/libdaxkv_core.la -lpthread
tests_fuzz_fuzz_recovery_LDFLAGS = $(AM_LDFLAGS) $(FUZZER_LDFLAGS)
check_PROGRAMS += tests/fuzz/fuzz_peek
tests_fuzz_fuzz_peek_SOURCES = tests/fuzz/fuzz_peek.cpp
tests_fuzz_fuzz_peek_CPPFLAGS = $(AM_CPPFLAGS) $(JSON_CFLAGS)
tests_fuzz_fuzz_peek_LDADD = lib/libdaxkv_core.la -lpthread
tests_fuzz_fuzz_peek_LDFLAGS = $(AM_LDFLAGS) $(FUZZER_LDFLAGS)

# Each target removes only its own files under $(FUZZ_DIR), so that the two
# can run at once (the fuzz suite runs them side by side).
fuzz: tests/fuzz/fuzz_recovery$(EXEEXT) tests/fuzz/make_seeds$(EXEEXT)
	rm -rf $(FUZZ_DIR)/seeds $(FUZZ_DIR)/corpus $(FUZZ_DIR)/recovery-*
	mkdir -p $(FUZZ_DIR)/seeds $(FUZZ_DIR)/corpus
	tests/fuzz/make_seeds $(FUZZ_DIR)/seeds
	tests/fuzz/fuzz_recovery -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=20 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/recovery- \
		$(FUZZ_DIR)/corpus $(FUZZ_DIR)/seeds

# The page and configuration readers (fuzz_peek.cpp), seeded by the target.
fuzz-peek: tests/fuzz/fuzz_peek$(EXEEXT)
	rm -rf $(FUZZ_DIR)/peek-*
	mkdir -p $(FUZZ_DIR)/peek-seeds $(FUZZ_DIR)/peek-corpus
	DAXKV_FUZZ_SEEDS=$(FUZZ_DIR)/peek-seeds tests/fuzz/fuzz_peek
	tests/fuzz/fuzz_peek -max_total_time=$(FUZZ_SECONDS) -max_len=32768 -timeout=20 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/peek- \
		$(FUZZ_DIR)/peek-corpus $(FUZZ_DIR)/peek-seeds
else
fuzz fuzz-peek:
	@echo "make $@: this tree was configured without --enable-fuzzer; use make fuzz-long" >&2
	@exit 1
endif

fuzz-long:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-3600} bash $(top_srcdir)/tests/suites/25-fuzz.sh $(abs_top_builddir)

.PHONY: check-long fuzz fuzz-peek fuzz-long
# Listed file by file: a directory here would also ship the objects a build
# tree keeps under the same name.
EXTRA_DIST += tests/adversarial/cli.sh
EXTRA_DIST += tests/crash/kill_test.cpp tests/crash/pool_kill_test.cpp tests/crash/create_kill_test.cpp \
	tests/crash/kill_common.hpp tests/fuzz/fuzz_recovery.cpp \
	tests/fuzz/make_seeds.cpp tests/fuzz/fuzz_peek.cpp

# The store that tests/suites/12-tools.sh reads with daxkv stats and status.
EXTRA_DIST += tests/tools/live_writer.py

# The LMCache conformance harness, its stand-ins and daxkv's own tests of
# the integration (run by tests/suites/55-lmcache.sh), file by file.
EXTRA_DIST += \
	tests/lmcache/README.md \
	tests/lmcache/daxkv_tests/conftest.py \
	tests/lmcache/daxkv_tests/dk_helpers.py \
	tests/lmcache/daxkv_tests/test_daxkv_backend.py \
	tests/lmcache/daxkv_tests/test_daxkv_core.py \
	tests/lmcache/daxkv_tests/test_daxkv_core_concurrent.py \
	tests/lmcache/daxkv_tests/test_daxkv_core_differential.py \
	tests/lmcache/daxkv_tests/test_daxkv_core_open.py \
	tests/lmcache/daxkv_tests/test_daxkv_core_persist.py \
	tests/lmcache/daxkv_tests/test_daxkv_key_identity.py \
	tests/lmcache/daxkv_tests/test_daxkv_keys.py \
	tests/lmcache/daxkv_tests/test_daxkv_l2.py \
	tests/lmcache/run.py \
	tests/lmcache/shims/dax_l2_adapter_on_daxkv.py \
	tests/lmcache/standins/lmcache/__init__.py \
	tests/lmcache/standins/lmcache/c_ops.py \
	tests/lmcache/standins/lmcache/lmcache_native.py \
	tests/lmcache/standins/lmcache/logging.py \
	tests/lmcache/standins/lmcache/native_storage_ops.py \
	tests/lmcache/standins/lmcache/utils.py \
	tests/lmcache/standins/lmcache/v1/__init__.py \
	tests/lmcache/standins/lmcache/v1/config.py \
	tests/lmcache/standins/lmcache/v1/distributed/__init__.py \
	tests/lmcache/standins/lmcache/v1/distributed/api.py \
	tests/lmcache/standins/lmcache/v1/distributed/config.py \
	tests/lmcache/standins/lmcache/v1/distributed/error.py \
	tests/lmcache/standins/lmcache/v1/distributed/internal_api.py \
	tests/lmcache/standins/lmcache/v1/distributed/l2_adapters/__init__.py \
	tests/lmcache/standins/lmcache/v1/distributed/l2_adapters/base.py \
	tests/lmcache/standins/lmcache/v1/distributed/l2_adapters/config.py \
	tests/lmcache/standins/lmcache/v1/distributed/serde.py \
	tests/lmcache/standins/lmcache/v1/distributed/storage_controllers/__init__.py \
	tests/lmcache/standins/lmcache/v1/distributed/storage_controllers/store_policy.py \
	tests/lmcache/standins/lmcache/v1/distributed/storage_manager.py \
	tests/lmcache/standins/lmcache/v1/kv_layer_groups.py \
	tests/lmcache/standins/lmcache/v1/memory_allocators/__init__.py \
	tests/lmcache/standins/lmcache/v1/memory_allocators/ad_hoc_memory_allocator.py \
	tests/lmcache/standins/lmcache/v1/memory_allocators/mixed_memory_allocator.py \
	tests/lmcache/standins/lmcache/v1/memory_allocators/tensor_memory_allocator.py \
	tests/lmcache/standins/lmcache/v1/memory_management.py \
	tests/lmcache/standins/lmcache/v1/metadata.py \
	tests/lmcache/standins/lmcache/v1/mp_observability/__init__.py \
	tests/lmcache/standins/lmcache/v1/mp_observability/event_bus.py \
	tests/lmcache/standins/lmcache/v1/platform/__init__.py \
	tests/lmcache/standins/lmcache/v1/storage_backend/__init__.py \
	tests/lmcache/standins/lmcache/v1/storage_backend/abstract_backend.py \
	tests/lmcache/standins/lmcache/v1/storage_backend/dax/__init__.py \
	tests/lmcache/standins/lmcache/v1/storage_backend/local_cpu_backend.py \
	tests/lmcache/standins/lmcache/v1/storage_backend/plugins/__init__.py \
	tests/lmcache/standins/tests/harness_conftest.py \
	tests/lmcache/standins/tests/v1/distributed/utils.py

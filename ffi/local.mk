# The language bindings: built and tested by tests/suites/5*.sh, shipped in
# the source tarball.
EXTRA_DIST += \
	ffi/go/daxkv/README.md \
	ffi/go/daxkv/daxkv.go \
	ffi/go/daxkv/daxkv_test.go \
	ffi/go/daxkv/go.mod \
	ffi/python/README.md \
	ffi/python/bench.py \
	ffi/python/bench_lmcache.py \
	ffi/python/daxkv/__init__.py \
	ffi/python/daxkv/_core.py \
	ffi/python/daxkv/_lib.py \
	ffi/python/daxkv/_version.py \
	ffi/python/daxkv/errors.py \
	ffi/python/daxkv/lmcache/__init__.py \
	ffi/python/daxkv/lmcache/_native.py \
	ffi/python/daxkv/lmcache/backend.py \
	ffi/python/daxkv/lmcache/core.py \
	ffi/python/daxkv/lmcache/keys.py \
	ffi/python/daxkv/lmcache/l2.py \
	ffi/python/daxkv/lmcache/meta.py \
	ffi/python/daxkv/py.typed \
	ffi/python/pyproject.toml \
	ffi/python/tests/conftest.py \
	ffi/python/tests/test_async.py \
	ffi/python/tests/test_batch.py \
	ffi/python/tests/test_errors.py \
	ffi/python/tests/test_header.py \
	ffi/python/tests/test_keys.py \
	ffi/python/tests/test_metrics.py \
	ffi/python/tests/test_pool.py \
	ffi/python/tests/test_store.py \
	ffi/python/tests/test_threads.py \
	ffi/python/tests/test_zero_copy.py \
	ffi/rust/Cargo.lock \
	ffi/rust/Cargo.toml \
	ffi/rust/README.md \
	ffi/rust/daxkv-sys/Cargo.toml \
	ffi/rust/daxkv-sys/build.rs \
	ffi/rust/daxkv-sys/src/lib.rs \
	ffi/rust/daxkv-sys/tests/header.rs \
	ffi/rust/daxkv/Cargo.toml \
	ffi/rust/daxkv/src/lib.rs \
	ffi/rust/daxkv/tests/store.rs

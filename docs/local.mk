# Manual pages: hand-written roff, installed as they are (no doc toolchain).
# Every exported function has a page: its family page or a .so alias
# (tests/suites/40-abi.sh checks that, and that groff finds nothing to warn
# about). Every daxkv command has its daxkv-COMMAND(1), which
# tests/suites/12-tools.sh checks lists each of the command's options.
dist_man_MANS = \
	docs/man/daxkv-bench.1 \
	docs/man/daxkv-check.1 \
	docs/man/daxkv-format.1 \
	docs/man/daxkv-info.1 \
	docs/man/daxkv-list.1 \
	docs/man/daxkv-probe.1 \
	docs/man/daxkv-stats.1 \
	docs/man/daxkv-status.1 \
	docs/man/daxkv-version.1 \
	docs/man/daxkv.1 \
	docs/man/daxkv_abort.3 \
	docs/man/daxkv_close.3 \
	docs/man/daxkv_commit.3 \
	docs/man/daxkv_config_add_device.3 \
	docs/man/daxkv_config_free.3 \
	docs/man/daxkv_config_from_json.3 \
	docs/man/daxkv_config_new.3 \
	docs/man/daxkv_config_set.3 \
	docs/man/daxkv_contains.3 \
	docs/man/daxkv_contains_batch.3 \
	docs/man/daxkv_cuda_available.3 \
	docs/man/daxkv_cuda_register.3 \
	docs/man/daxkv_cuda_unregister.3 \
	docs/man/daxkv_cursor_close.3 \
	docs/man/daxkv_cursor_next.3 \
	docs/man/daxkv_cursor_open.3 \
	docs/man/daxkv_device_add.3 \
	docs/man/daxkv_device_describe.3 \
	docs/man/daxkv_device_remove.3 \
	docs/man/daxkv_device_resize.3 \
	docs/man/daxkv_device_wait_drained.3 \
	docs/man/daxkv_errmsg.3 \
	docs/man/daxkv_event_fd.3 \
	docs/man/daxkv_get.3 \
	docs/man/daxkv_get_batch.3 \
	docs/man/daxkv_get_batch_cuda.3 \
	docs/man/daxkv_lease_acquire.3 \
	docs/man/daxkv_lease_data.3 \
	docs/man/daxkv_lease_meta.3 \
	docs/man/daxkv_lease_read_batch.3 \
	docs/man/daxkv_lease_release.3 \
	docs/man/daxkv_lease_size.3 \
	docs/man/daxkv_lease_batch.3 \
	docs/man/daxkv_lease_slot.3 \
	docs/man/daxkv_list_devices.3 \
	docs/man/daxkv_memcpy_batch.3 \
	docs/man/daxkv_open.3 \
	docs/man/daxkv_pin.3 \
	docs/man/daxkv_poll.3 \
	docs/man/daxkv_pool_status_json.3 \
	docs/man/daxkv_probe.3 \
	docs/man/daxkv_put.3 \
	docs/man/daxkv_put_batch.3 \
	docs/man/daxkv_put_batch_cuda.3 \
	docs/man/daxkv_remove.3 \
	docs/man/daxkv_remove_batch.3 \
	docs/man/daxkv_reservation_data.3 \
	docs/man/daxkv_reservation_set_meta.3 \
	docs/man/daxkv_reservation_size.3 \
	docs/man/daxkv_reservation_slot.3 \
	docs/man/daxkv_reserve.3 \
	docs/man/daxkv_reserve_meta.3 \
	docs/man/daxkv_set_log_fn.3 \
	docs/man/daxkv_shutdown.3 \
	docs/man/daxkv_stats.3 \
	docs/man/daxkv_stats_peek.3 \
	docs/man/daxkv_stats_prometheus.3 \
	docs/man/daxkv_stats_prometheus_peek.3 \
	docs/man/daxkv_status_json.3 \
	docs/man/daxkv_status_peek.3 \
	docs/man/daxkv_strerror.3 \
	docs/man/daxkv_submit.3 \
	docs/man/daxkv_unpin.3 \
	docs/man/daxkv_unpin_batch.3 \
	docs/man/daxkv_version_number.3 \
	docs/man/daxkv_version_string.3 \
	docs/man/libdaxkv.3

# The guides, shipped in the release tarball (and by the packages as documentation).
EXTRA_DIST += \
	docs/architecture.md \
	docs/hacking.md \
	docs/lmcache-integration.md \
	docs/on-device-format.md \
	docs/operations.md \
	docs/versioning.md \
	docs/bench-sweep.png

package daxkv

// The C compiler's view of every struct of daxkv.h, and the Go types cgo
// generated for them. layout_test.go compares the two and checks that the
// binding's own types carry every member; test files cannot use cgo, so
// the C side has to live here.

/*
#include <stddef.h>
#include "dk.h"

typedef struct {
	const char *type, *field;
	size_t offset, size;
} dk_layout_row;

#define DK_T(T) { #T, "", 0, sizeof(struct T) }
#define DK_F(T, F) { #T, #F, offsetof(struct T, F), sizeof(((struct T *)0)->F) }

static const dk_layout_row dk_layout[] = {
	DK_T(daxkv_item), DK_F(daxkv_item, key), DK_F(daxkv_item, key_len), DK_F(daxkv_item, data),
	DK_F(daxkv_item, len), DK_F(daxkv_item, meta), DK_F(daxkv_item, meta_len), DK_F(daxkv_item, status),

	DK_T(daxkv_completion), DK_F(daxkv_completion, tag), DK_F(daxkv_completion, op),
	DK_F(daxkv_completion, result),

	DK_T(daxkv_histogram), DK_F(daxkv_histogram, count), DK_F(daxkv_histogram, sum),
	DK_F(daxkv_histogram, bucket),

	DK_T(daxkv_stats), DK_F(daxkv_stats, struct_size), DK_F(daxkv_stats, devices),
	DK_F(daxkv_stats, slot_bytes), DK_F(daxkv_stats, meta_bytes), DK_F(daxkv_stats, capacity_bytes),
	DK_F(daxkv_stats, slots_total), DK_F(daxkv_stats, slots_used), DK_F(daxkv_stats, slots_free),
	DK_F(daxkv_stats, entries), DK_F(daxkv_stats, entries_pinned), DK_F(daxkv_stats, slots_inflight),
	DK_F(daxkv_stats, slots_pending_free), DK_F(daxkv_stats, leases_active), DK_F(daxkv_stats, hits),
	DK_F(daxkv_stats, misses), DK_F(daxkv_stats, puts), DK_F(daxkv_stats, puts_existed),
	DK_F(daxkv_stats, puts_failed), DK_F(daxkv_stats, removes), DK_F(daxkv_stats, evictions),
	DK_F(daxkv_stats, bytes_written), DK_F(daxkv_stats, bytes_read), DK_F(daxkv_stats, verify_failures),
	DK_F(daxkv_stats, recovered_entries), DK_F(daxkv_stats, recovery_dropped_torn),
	DK_F(daxkv_stats, recovery_dropped_corrupt), DK_F(daxkv_stats, recovery_dropped_stale),
	DK_F(daxkv_stats, recovery_usec), DK_F(daxkv_stats, copy_faults), DK_F(daxkv_stats, batches),
	DK_F(daxkv_stats, async_submitted), DK_F(daxkv_stats, async_completed),
	DK_F(daxkv_stats, async_cancelled), DK_F(daxkv_stats, put_latency), DK_F(daxkv_stats, get_latency),
	DK_F(daxkv_stats, batch_latency), DK_F(daxkv_stats, item_bytes), DK_F(daxkv_stats, slots_leased),

	DK_T(daxkv_device_info), DK_F(daxkv_device_info, struct_size), DK_F(daxkv_device_info, kind),
	DK_F(daxkv_device_info, mode), DK_F(daxkv_device_info, numa_node), DK_F(daxkv_device_info, target_node),
	DK_F(daxkv_device_info, reserved0), DK_F(daxkv_device_info, size), DK_F(daxkv_device_info, align),
	DK_F(daxkv_device_info, path), DK_F(daxkv_device_info, name),

	DK_T(daxkv_hotplug_result), DK_F(daxkv_hotplug_result, struct_size), DK_F(daxkv_hotplug_result, state),
	DK_F(daxkv_hotplug_result, device_index), DK_F(daxkv_hotplug_result, reserved0),
	DK_F(daxkv_hotplug_result, moved_keys), DK_F(daxkv_hotplug_result, moved_bytes),
	DK_F(daxkv_hotplug_result, deleted_keys), DK_F(daxkv_hotplug_result, source_slots_freed),
	DK_F(daxkv_hotplug_result, old_size_bytes), DK_F(daxkv_hotplug_result, new_size_bytes),
	DK_F(daxkv_hotplug_result, evicted_keys),

	DK_T(daxkv_slot_info), DK_F(daxkv_slot_info, struct_size), DK_F(daxkv_slot_info, device_id),
	DK_F(daxkv_slot_info, slot), DK_F(daxkv_slot_info, generation), DK_F(daxkv_slot_info, offset),
	DK_F(daxkv_slot_info, payload_base),

	DK_T(daxkv_lease_item), DK_F(daxkv_lease_item, key), DK_F(daxkv_lease_item, key_len),
	DK_F(daxkv_lease_item, lease), DK_F(daxkv_lease_item, data), DK_F(daxkv_lease_item, size),
	DK_F(daxkv_lease_item, meta), DK_F(daxkv_lease_item, meta_len), DK_F(daxkv_lease_item, slot),
	DK_F(daxkv_lease_item, generation), DK_F(daxkv_lease_item, offset), DK_F(daxkv_lease_item, device_id),
	DK_F(daxkv_lease_item, status),

	DK_T(daxkv_device_layout), DK_F(daxkv_device_layout, struct_size), DK_F(daxkv_device_layout, device_id),
	DK_F(daxkv_device_layout, state), DK_F(daxkv_device_layout, device_index),
	DK_F(daxkv_device_layout, slot_bytes), DK_F(daxkv_device_layout, layout_slots),
	DK_F(daxkv_device_layout, usable_slots), DK_F(daxkv_device_layout, used_end),
	DK_F(daxkv_device_layout, arena_bytes), DK_F(daxkv_device_layout, data_offset),
	DK_F(daxkv_device_layout, payload_base),

	DK_T(daxkv_key_info), DK_F(daxkv_key_info, struct_size), DK_F(daxkv_key_info, device_id),
	DK_F(daxkv_key_info, key), DK_F(daxkv_key_info, key_len), DK_F(daxkv_key_info, meta),
	DK_F(daxkv_key_info, meta_len), DK_F(daxkv_key_info, value_len), DK_F(daxkv_key_info, slot),
	DK_F(daxkv_key_info, seq), DK_F(daxkv_key_info, pins), DK_F(daxkv_key_info, leases),
};

static size_t dk_layout_rows(void) { return sizeof dk_layout / sizeof dk_layout[0]; }
static const dk_layout_row *dk_layout_at(size_t i) { return &dk_layout[i]; }
*/
import "C"

import "reflect"

// cLayoutRow is the C compiler's size of a struct (Field "") or the offset
// and size of one member.
type cLayoutRow struct {
	Type, Field  string
	Offset, Size uintptr
}

func cLayout() []cLayoutRow {
	n := int(C.dk_layout_rows())
	out := make([]cLayoutRow, n)
	for i := range out {
		r := C.dk_layout_at(C.size_t(i))
		out[i] = cLayoutRow{C.GoString(r._type), C.GoString(r.field), uintptr(r.offset), uintptr(r.size)}
	}
	return out
}

// cgoStructs are the Go types cgo generated from daxkv.h, through which
// the binding reads and writes the library's structs.
func cgoStructs() map[string]reflect.Type {
	return map[string]reflect.Type{
		"daxkv_item":           reflect.TypeOf(C.struct_daxkv_item{}),
		"daxkv_completion":     reflect.TypeOf(C.struct_daxkv_completion{}),
		"daxkv_histogram":      reflect.TypeOf(C.struct_daxkv_histogram{}),
		"daxkv_stats":          reflect.TypeOf(C.struct_daxkv_stats{}),
		"daxkv_device_info":    reflect.TypeOf(C.struct_daxkv_device_info{}),
		"daxkv_hotplug_result": reflect.TypeOf(C.struct_daxkv_hotplug_result{}),
		"daxkv_slot_info":      reflect.TypeOf(C.struct_daxkv_slot_info{}),
		"daxkv_lease_item":     reflect.TypeOf(C.struct_daxkv_lease_item{}),
		"daxkv_device_layout":  reflect.TypeOf(C.struct_daxkv_device_layout{}),
		"daxkv_key_info":       reflect.TypeOf(C.struct_daxkv_key_info{}),
	}
}

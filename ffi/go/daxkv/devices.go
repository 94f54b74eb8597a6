package daxkv

// The host's devices: list every DAX device, probe one path.

/*
#include "dk.h"

// Every device (out NULL: the count only), each entry sized for this build.
static int dk_list_devices(daxkv_device_info *out, size_t cap, size_t *count, char **msg) {
	for (size_t i = 0; i < cap; i++)
		out[i].struct_size = sizeof out[i];
	int rc = daxkv_list_devices(out, cap, count);
	*msg = dk_msg(rc);
	return rc;
}
static int dk_probe(const char *p, daxkv_device_info *out, char **msg) {
	out->struct_size = sizeof *out;
	int rc = daxkv_probe(p, out);
	*msg = dk_msg(rc);
	return rc;
}
*/
import "C"

import "unsafe"

// DeviceKind is what a device is (DAXKV_KIND_*).
type DeviceKind uint32

// Device kinds.
const (
	KindDevDax DeviceKind = C.DAXKV_KIND_DEVDAX // a Device-DAX character device
	KindFile   DeviceKind = C.DAXKV_KIND_FILE   // a regular file (file arena)
	KindMemory DeviceKind = C.DAXKV_KIND_MEMORY // "mem:" anonymous memory
)

// DaxMode is how a DAX device is set up (DAXKV_MODE_*).
type DaxMode uint32

// DAX modes.
const (
	ModeNone      DaxMode = C.DAXKV_MODE_NONE       // not a DAX device
	ModeDevDax    DaxMode = C.DAXKV_MODE_DEVDAX     // usable through its /dev node
	ModeSystemRAM DaxMode = C.DAXKV_MODE_SYSTEM_RAM // onlined as system RAM (kmem)
)

// DeviceInfo is a device as the library sees it.
type DeviceInfo struct {
	Kind       DeviceKind
	Mode       DaxMode
	NumaNode   int32 // -1 unknown
	TargetNode int32 // -1 unknown
	Size       uint64
	Align      uint64 // mapping alignment in bytes
	Path       string // /dev/daxX.Y, the file path, or "mem:"
	Name       string // daxX.Y for DAX devices
}

func deviceInfo(d *C.daxkv_device_info) DeviceInfo {
	return DeviceInfo{
		Kind:       DeviceKind(d.kind),
		Mode:       DaxMode(d.mode),
		NumaNode:   int32(d.numa_node),
		TargetNode: int32(d.target_node),
		Size:       uint64(d.size),
		Align:      uint64(d.align),
		Path:       C.GoString(&d.path[0]),
		Name:       C.GoString(&d.name[0]),
	}
}

// ListDevices returns every DAX device of the host (devdax and system-ram
// modes).
func ListDevices() ([]DeviceInfo, error) {
	var count C.size_t
	var msg *C.char
	if rc := C.dk_list_devices(nil, 0, &count, &msg); rc < 0 && rc != -C.ENOBUFS {
		return nil, mkerr(rc, "daxkv_list_devices", msg)
	} else if msg != nil {
		C.free(unsafe.Pointer(msg))
	}
	// Devices can appear between the calls: retry with the new count.
	for try := 0; try < 8; try++ {
		n := int(count)
		buf := make([]C.daxkv_device_info, n+1)
		rc := C.dk_list_devices(&buf[0], C.size_t(len(buf)), &count, &msg)
		if rc == -C.ENOBUFS {
			C.free(unsafe.Pointer(msg))
			continue
		}
		if rc < 0 {
			return nil, mkerr(rc, "daxkv_list_devices", msg)
		}
		out := make([]DeviceInfo, int(count))
		for i := range out {
			out[i] = deviceInfo(&buf[i])
		}
		return out, nil
	}
	return nil, invalid("daxkv_list_devices", "the device list kept changing while it was read")
}

// Probe says what an open would see at path: ErrNotFound when it is
// missing, ErrNoDevice when it is not usable.
func Probe(path string) (DeviceInfo, error) {
	p, err := cstr("daxkv_probe", "device path", path)
	if err != nil {
		return DeviceInfo{}, err
	}
	defer C.free(unsafe.Pointer(p))
	var d C.daxkv_device_info
	var msg *C.char
	if rc := C.dk_probe(p, &d, &msg); rc < 0 {
		return DeviceInfo{}, mkerr(rc, "daxkv_probe", msg)
	}
	return deviceInfo(&d), nil
}

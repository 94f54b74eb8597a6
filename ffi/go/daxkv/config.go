package daxkv

// The store configuration (daxkv_config): keys set one by one and devices
// added, or LMCache's JSON parsed, before Open.

/*
#include "dk.h"

// Each helper returns the code and, on failure, the message (see dk.h).
static int dk_config_new(daxkv_config **out, char **msg) { int rc = daxkv_config_new(out); *msg = dk_msg(rc); return rc; }
static int dk_config_from_json(daxkv_config **out, const char *j, char **msg) { int rc = daxkv_config_from_json(out, j); *msg = dk_msg(rc); return rc; }
static int dk_config_set(daxkv_config *c, const char *k, const char *v, char **msg) { int rc = daxkv_config_set(c, k, v); *msg = dk_msg(rc); return rc; }
static int dk_config_add_device(daxkv_config *c, const char *p, uint64_t n, char **msg) { int rc = daxkv_config_add_device(c, p, n); *msg = dk_msg(rc); return rc; }
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// Config is a store configuration. It is not safe for concurrent use.
type Config struct {
	c *C.daxkv_config
}

// NewConfig returns an empty configuration; Free it when done.
func NewConfig() (*Config, error) {
	var c *C.daxkv_config
	var msg *C.char
	if rc := C.dk_config_new(&c, &msg); rc < 0 {
		return nil, mkerr(rc, "daxkv_config_new", msg)
	}
	cfg := &Config{c: c}
	runtime.SetFinalizer(cfg, (*Config).Free)
	return cfg, nil
}

// ConfigFromJSON parses LMCache's dax adapter JSON.
func ConfigFromJSON(json string) (*Config, error) {
	// C would parse only the text before a NUL byte and ignore the rest.
	if hasNUL(json) {
		return nil, invalid("daxkv_config_from_json", "JSON contains a NUL byte")
	}
	cs := C.CString(json)
	defer C.free(unsafe.Pointer(cs))
	var c *C.daxkv_config
	var msg *C.char
	if rc := C.dk_config_from_json(&c, cs, &msg); rc < 0 {
		return nil, mkerr(rc, "daxkv_config_from_json", msg)
	}
	cfg := &Config{c: c}
	runtime.SetFinalizer(cfg, (*Config).Free)
	return cfg, nil
}

// Set sets a key (slot_bytes, eviction, durability, ...).
func (cfg *Config) Set(key, value string) error {
	if cfg.c == nil {
		return invalid("daxkv_config_set", "the configuration was freed")
	}
	if hasNUL(key) || hasNUL(value) {
		return invalid("daxkv_config_set", "key or value contains a NUL byte")
	}
	k, v := C.CString(key), C.CString(value)
	defer C.free(unsafe.Pointer(k))
	defer C.free(unsafe.Pointer(v))
	var msg *C.char
	rc := C.dk_config_set(cfg.c, k, v, &msg)
	runtime.KeepAlive(cfg) // its finalizer (Free) must not run during the call
	if rc < 0 {
		return mkerr(rc, "daxkv_config_set", msg)
	}
	return nil
}

// AddDevice adds /dev/daxX.Y, a regular file or "mem:"; bytes 0 = whole device.
func (cfg *Config) AddDevice(path string, bytes uint64) error {
	if cfg.c == nil {
		return invalid("daxkv_config_add_device", "the configuration was freed")
	}
	if hasNUL(path) {
		return invalid("daxkv_config_add_device", "path contains a NUL byte")
	}
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	var msg *C.char
	rc := C.dk_config_add_device(cfg.c, p, C.uint64_t(bytes), &msg)
	runtime.KeepAlive(cfg) // its finalizer (Free) must not run during the call
	if rc < 0 {
		return mkerr(rc, "daxkv_config_add_device", msg)
	}
	return nil
}

// Free releases the configuration. Idempotent.
func (cfg *Config) Free() {
	if cfg.c != nil {
		C.daxkv_config_free(cfg.c)
		cfg.c = nil
		runtime.SetFinalizer(cfg, nil)
	}
}

package daxkv

import (
	"reflect"
	"strings"
	"testing"
)

// The cgo types the binding uses must agree with the C compiler on sizes
// and offsets, and cover every struct of daxkv.h.
func TestLayoutsMatchTheCCompiler(t *testing.T) {
	rows := map[string]map[string]cLayoutRow{}
	for _, r := range cLayout() {
		if rows[r.Type] == nil {
			rows[r.Type] = map[string]cLayoutRow{}
		}
		rows[r.Type][r.Field] = r
	}
	types := cgoStructs()
	for _, tag := range headerStructs(headerText(t)) {
		if types[tag] == nil || rows[tag] == nil {
			t.Errorf("struct %s of daxkv.h has no layout check", tag)
		}
	}
	for tag, typ := range types {
		c := rows[tag]
		if c[""].Size != typ.Size() {
			t.Errorf("sizeof %s: C %d, cgo %d", tag, c[""].Size, typ.Size())
		}
		seen := 0
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if f.Name == "_" {
				continue // padding cgo makes explicit
			}
			name := strings.TrimPrefix(f.Name, "_") // cgo renames Go keywords (type -> _type)
			r, ok := c[name]
			if !ok {
				t.Errorf("%s.%s: not in the C layout table", tag, name)
				continue
			}
			seen++
			if r.Offset != f.Offset || r.Size != f.Type.Size() {
				t.Errorf("%s.%s: C offset %d size %d, cgo offset %d size %d", tag, name, r.Offset, r.Size,
					f.Offset, f.Type.Size())
			}
		}
		if seen != len(c)-1 {
			t.Errorf("%s: %d members in the C table, %d in the cgo type", tag, len(c)-1, seen)
		}
	}
}

// The binding's own types for each C struct, and the C members they leave
// out on purpose.
var wrappers = map[string]struct {
	typ     reflect.Type
	omitted map[string]string // member -> why
}{
	"daxkv_stats":         {reflect.TypeOf(Stats{}), map[string]string{"struct_size": "set by the binding"}},
	"daxkv_histogram":     {reflect.TypeOf(Histogram{}), nil},
	"daxkv_key_info":      {reflect.TypeOf(KeyInfo{}), map[string]string{"struct_size": "set by the binding", "key_len": "len(Key)", "meta_len": "len(Meta)"}},
	"daxkv_slot_info":     {reflect.TypeOf(SlotInfo{}), map[string]string{"struct_size": "set by the binding"}},
	"daxkv_device_layout": {reflect.TypeOf(DeviceLayout{}), map[string]string{"struct_size": "set by the binding"}},
}

// goName is the Go spelling of a C member: device_id -> DeviceID.
func goName(c string) string {
	parts := strings.Split(c, "_")
	for i, p := range parts {
		if p == "id" {
			parts[i] = "ID"
		} else if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

// A member appended to a C struct must show up in the Go type too.
func TestGoTypesCarryEveryMember(t *testing.T) {
	for tag, w := range wrappers {
		typ := cgoStructs()[tag]
		for i := 0; i < typ.NumField(); i++ {
			m := typ.Field(i).Name
			if m == "_" || w.omitted[m] != "" {
				continue
			}
			if _, ok := w.typ.FieldByName(goName(m)); !ok {
				t.Errorf("%s.%s has no field %s in %s", tag, m, goName(m), w.typ)
			}
		}
	}
}

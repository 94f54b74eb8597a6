package daxkv

// The Go function the library calls for each log message. A file with
// //export may only declare C in its preamble, so the code that installs
// it lives in log.go.

/*
#include <stdlib.h>
*/
import "C"

import "unsafe"

//export daxkvGoLog
func daxkvGoLog(level C.int, msg *C.char, arg unsafe.Pointer) {
	deliverLog(int(level), msg)
}

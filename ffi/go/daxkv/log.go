package daxkv

/*
#include "dk.h"

// The exported Go function (logexport.go); cgo declares its message as
// char *, the library's callback type as const char *.
extern void daxkvGoLog(int level, char *msg, void *arg);

static void dk_set_log(int on, int max_level) {
	daxkv_set_log_fn(on ? (daxkv_log_fn)daxkvGoLog : NULL, max_level, NULL);
}
*/
import "C"

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
)

// LogLevel is a message's severity (syslog's levels).
type LogLevel int

// Log levels.
const (
	LogErr     LogLevel = C.DAXKV_LOG_ERR
	LogWarning LogLevel = C.DAXKV_LOG_WARNING
	LogInfo    LogLevel = C.DAXKV_LOG_INFO
	LogDebug   LogLevel = C.DAXKV_LOG_DEBUG
)

func (l LogLevel) String() string {
	switch {
	case l <= LogErr:
		return "error"
	case l <= LogWarning:
		return "warning"
	case l <= LogInfo:
		return "info"
	}
	return "debug"
}

// The logger is process-wide, as the library's. C gets a fixed exported
// function and no argument: it never holds a Go pointer, and a message
// delivered while the logger changes sees either the old or the new one.
var (
	logger  atomic.Value // func(LogLevel, string), or a nil one
	setting sync.Mutex   // keeps the library's level and the logger in step
)

type logFunc func(LogLevel, string)

// SetLogger sends the library's messages up to maxLevel to fn, process-wide
// (replacing any earlier logger); a nil fn turns logging off (the default:
// the library never prints by itself). fn runs on a goroutine of its own
// while the thread that logs (a goroutine's or one of the library's own)
// waits for it, with no library lock held, and must not block for long; a
// panic in it is recovered and the message dropped, since it cannot unwind
// through the library's C frames, and a runtime.Goexit in it ends only
// that goroutine.
func SetLogger(maxLevel LogLevel, fn func(level LogLevel, msg string)) {
	setting.Lock()
	defer setting.Unlock()
	if fn == nil {
		C.dk_set_log(0, 0)
		logger.Store(logFunc(nil))
		return
	}
	logger.Store(logFunc(fn))
	// Past a C int the level was cut to another (1<<32|3 to LogErr): a
	// level above every level is all of them, one below every level none.
	level := int64(maxLevel)
	if level > math.MaxInt32 {
		level = math.MaxInt32
	} else if level < math.MinInt32 {
		level = math.MinInt32
	}
	C.dk_set_log(1, C.int(level))
}

// The threads running the logger now, by thread id. The goroutine that
// runs the logger is locked to its thread, so a goroutine in a log
// callback finds its thread here: Store.Close uses it not to wait for the
// call whose message is being delivered.
var (
	logThreadsMu sync.Mutex
	logThreads   = map[int]int{}
)

func inLogCallback() bool {
	tid := syscall.Gettid()
	logThreadsMu.Lock()
	defer logThreadsMu.Unlock()
	return logThreads[tid] > 0
}

func deliverLog(level int, msg *C.char) {
	fn, _ := logger.Load().(logFunc)
	if fn == nil || msg == nil {
		return
	}
	// The message is only valid during the call: copy it.
	text := C.GoString(msg)
	// fn runs on a goroutine of its own, which this callback waits for: a
	// runtime.Goexit in fn (t.FailNow, t.Fatal) would otherwise end the
	// goroutine that is inside the library call, abandoning the library's
	// frames (the call never returns, and what it holds is never freed).
	// The helper keeps to one thread, registered as a logging thread, so
	// that a Close in fn does not wait for the call being logged.
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := syscall.Gettid()
		logThreadsMu.Lock()
		logThreads[tid]++
		logThreadsMu.Unlock()
		defer func() {
			logThreadsMu.Lock()
			if logThreads[tid]--; logThreads[tid] == 0 {
				delete(logThreads, tid)
			}
			logThreadsMu.Unlock()
		}()
		defer func() { _ = recover() }()
		fn(LogLevel(level), text)
	}()
	<-done
}

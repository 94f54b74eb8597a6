package daxkv

import (
	"os"
	"syscall"
)

// absentPaths are the paths that do not exist now (as anything, dangling
// links included): the ones a failed open or add may create.
func absentPaths(paths []string) []string {
	var out []string
	for _, p := range paths {
		if p == "mem:" {
			continue
		}
		if _, err := os.Lstat(p); err != nil {
			out = append(out, p)
		}
	}
	return out
}

// removeLeftovers removes the regular files among paths that a failed open
// or add left behind. A file another store holds (its flock, which the
// library takes on every arena, is held) stays: another process may have
// created the same path meanwhile. The lock is held while the file is
// unlinked, and the path must still name the locked file.
func removeLeftovers(paths []string) {
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			held, err1 := f.Stat()
			now, err2 := os.Lstat(p)
			if err1 == nil && err2 == nil && os.SameFile(held, now) {
				os.Remove(p)
			}
		}
		f.Close() // releases the lock
	}
}

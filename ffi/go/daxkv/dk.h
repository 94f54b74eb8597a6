/*
 * C helpers shared by the cgo preambles of this package. Goroutines move
 * between OS threads between cgo calls, so the thread-local daxkv_errmsg()
 * must be read inside the same C call as the failing function: dk_msg
 * returns, on failure, a malloc'ed copy of the message that Go frees.
 */
#ifndef DAXKV_GO_DK_H
#define DAXKV_GO_DK_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <daxkv.h>

static inline char *dk_msg(int rc) {
	if (rc >= 0)
		return NULL;
	const char *m = daxkv_errmsg();
	return strdup(m && *m ? m : daxkv_strerror(rc));
}

/* dk_msg of a batch: also when the call succeeded but an item failed
 * (a miss or a busy key is no failure), the library's message of the last
 * item with a negative status (batchDetail says whose it is). */
static inline char *dk_batch_msg(int rc, const int *status, size_t n) {
	if (rc < 0)
		return dk_msg(rc);
	for (size_t i = 0; i < n; i++)
		if (status[i] < 0 && status[i] != -ENOENT && status[i] != -EBUSY) {
			const char *m = daxkv_errmsg();
			return m && *m ? strdup(m) : NULL;
		}
	return NULL;
}

#endif

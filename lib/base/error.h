/* error.h - the thread-local error message and the status helpers every layer uses.
 * The place that knows what went wrong calls lmrt_fail() once; callers pass the
 * status up unchanged. Nothing here allocates. */
#ifndef LMRT_BASE_ERROR_H
#define LMRT_BASE_ERROR_H

#include "lmrt.h"

#if defined(__GNUC__) || defined(__clang__)
#define LMRT_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#define LMRT_UNUSED_RESULT __attribute__((warn_unused_result))
#else
#define LMRT_PRINTF(fmt_idx, arg_idx)
#define LMRT_UNUSED_RESULT
#endif

/* Sets this thread's error message and returns `status`, so that
 * `return lmrt_fail(LMRT_E_FORMAT, "...", ...);` reads naturally. */
lmrt_status lmrt_fail(lmrt_status status, const char *fmt, ...) LMRT_PRINTF(2, 3);

/* Replaces the message with "<prefix>: <old message>", keeping the status. */
lmrt_status lmrt_fail_prefix(lmrt_status status, const char *fmt, ...) LMRT_PRINTF(2, 3);

/* Clears the message (at the start of each public call). */
void lmrt_error_clear(void);

#endif

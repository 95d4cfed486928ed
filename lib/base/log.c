/* log.c - the process-wide log callback. lmrt never writes to stdout/stderr itself;
 * without a callback every message is dropped. */
#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

/* The three settings change together under a lock-free snapshot: callers set the
 * callback once at start-up; a racing reader sees either the old or the new trio. */
typedef struct log_sink {
    lmrt_log_fn fn;
    void *user;
    int32_t max_level;
} log_sink;

static log_sink sinks[2];
static atomic_int active_sink;

void lmrt_set_log_callback(lmrt_log_fn fn, void *user, int32_t max_level)
{
    int next = 1 - atomic_load(&active_sink);
    sinks[next].fn = fn;
    sinks[next].user = user;
    sinks[next].max_level = max_level;
    atomic_store(&active_sink, next);
}

void lmrt_log(int32_t level, const char *fmt, ...)
{
    log_sink sink = sinks[atomic_load(&active_sink)];
    if (!sink.fn || level > sink.max_level)
        return;
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    sink.fn(sink.user, level, message);
}

/* error.c - thread-local error text, status names and the version functions.
 * Owns no other state; never prints. */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ERROR_TEXT_MAX 1024

static _Thread_local char error_text[ERROR_TEXT_MAX];

lmrt_status lmrt_fail(lmrt_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_text, sizeof error_text, fmt, ap);
    va_end(ap);
    return status;
}

lmrt_status lmrt_fail_prefix(lmrt_status status, const char *fmt, ...)
{
    char old[ERROR_TEXT_MAX];
    memcpy(old, error_text, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(error_text, sizeof error_text, fmt, ap);
    va_end(ap);
    /* Append ": <old>" by hand, cut to what is left of the buffer. */
    size_t used = n < 0 ? 0 : (size_t)n;
    if (used + 2 < sizeof error_text) {
        memcpy(error_text + used, ": ", 2);
        used += 2;
        size_t room = sizeof error_text - used - 1;
        size_t len = strnlen(old, sizeof old - 1);
        if (len > room)
            len = room;
        memcpy(error_text + used, old, len);
        error_text[used + len] = '\0';
    }
    return status;
}

void lmrt_error_clear(void)
{
    error_text[0] = '\0';
}

const char *lmrt_last_error(void)
{
    return error_text;
}

const char *lmrt_status_str(lmrt_status status)
{
    switch (status) {
    case LMRT_OK: return "LMRT_OK";
    case LMRT_E_INVALID_ARG: return "LMRT_E_INVALID_ARG";
    case LMRT_E_NOMEM: return "LMRT_E_NOMEM";
    case LMRT_E_IO: return "LMRT_E_IO";
    case LMRT_E_FORMAT: return "LMRT_E_FORMAT";
    case LMRT_E_UNSUPPORTED: return "LMRT_E_UNSUPPORTED";
    case LMRT_E_NOT_FOUND: return "LMRT_E_NOT_FOUND";
    case LMRT_E_NOT_LICENSED: return "LMRT_E_NOT_LICENSED";
    case LMRT_E_CONTEXT_FULL: return "LMRT_E_CONTEXT_FULL";
    case LMRT_E_ABORTED: return "LMRT_E_ABORTED";
    case LMRT_E_BUFFER_TOO_SMALL: return "LMRT_E_BUFFER_TOO_SMALL";
    case LMRT_E_MISMATCH: return "LMRT_E_MISMATCH";
    case LMRT_E_BACKEND: return "LMRT_E_BACKEND";
    case LMRT_E_INVALID_STATE: return "LMRT_E_INVALID_STATE";
    case LMRT_E_INTERNAL: return "LMRT_E_INTERNAL";
    }
    return "LMRT_E_UNKNOWN";
}

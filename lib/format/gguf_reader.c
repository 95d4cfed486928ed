/* gguf_reader.c - the bounded cursor gguf.c reads files through.
 * Checks every length against the bytes left before touching them; allocates
 * only the name copies it is asked for. */
#include "format/gguf_reader.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"

lmrt_status gguf_bad(const gguf_reader *r, uint64_t off, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    lmrt_fail(LMRT_E_FORMAT, "%s: offset %" PRIu64 ": %s", r->path, off, what);
    return LMRT_E_FORMAT;
}

lmrt_status gguf_nomem(const gguf_reader *r, const char *what)
{
    lmrt_fail(LMRT_E_NOMEM, "%s: offset %" PRIu64 ": out of memory for %s", r->path, r->pos,
              what);
    return LMRT_E_NOMEM;
}

lmrt_status gguf_take(gguf_reader *r, uint64_t n, const char *what, const uint8_t **out)
{
    if (n > gguf_left(r)) {
        gguf_bad(r, r->pos, "%s needs %" PRIu64 " bytes but only %" PRIu64 " remain", what, n,
                 gguf_left(r));
        return LMRT_E_FORMAT;   /* a constant, so that analyzers see *out is not needed */
    }
    *out = r->base + r->pos;
    r->pos += n;
    return LMRT_OK;
}

lmrt_status gguf_read_u32(gguf_reader *r, const char *what, uint32_t *out)
{
    const uint8_t *p = NULL;
    lmrt_status st = gguf_take(r, 4, what, &p);
    if (st == LMRT_OK)
        *out = (uint32_t)gguf_load_le(p, 4);
    return st;
}

lmrt_status gguf_read_u64(gguf_reader *r, const char *what, uint64_t *out)
{
    const uint8_t *p = NULL;
    lmrt_status st = gguf_take(r, 8, what, &p);
    if (st == LMRT_OK)
        *out = gguf_load_le(p, 8);
    return st;
}

lmrt_status gguf_read_str(gguf_reader *r, const char *what, gguf_str *out)
{
    uint64_t at = r->pos, len = 0;
    const uint8_t *p = NULL;
    lmrt_status st = gguf_read_u64(r, what, &len);
    if (st != LMRT_OK)
        return st;
    if (len > gguf_left(r))
        return gguf_bad(r, at, "%s length %" PRIu64 " exceeds the %" PRIu64 " bytes left",
                        what, len, gguf_left(r));
    if ((st = gguf_take(r, len, what, &p)) != LMRT_OK)
        return st;
    out->ptr = (const char *)p;
    out->len = len;
    return LMRT_OK;
}

lmrt_status gguf_read_name(gguf_reader *r, const char *what, char **out)
{
    uint64_t at = r->pos;
    gguf_str s = {0};
    lmrt_status st = gguf_read_str(r, what, &s);
    if (st != LMRT_OK)
        return st;
    if (s.len == 0)
        return gguf_bad(r, at, "empty %s", what);
    if (s.len > GGUF_MAX_NAME)
        return gguf_bad(r, at, "%s is %" PRIu64 " bytes long (at most %u allowed)", what,
                        s.len, GGUF_MAX_NAME);
    if (memchr(s.ptr, '\0', (size_t)s.len))
        return gguf_bad(r, at, "%s '%s' contains a NUL byte", what, s.ptr);
    char *copy = lmrt_strndup(s.ptr, (size_t)s.len);
    if (!copy)
        return gguf_nomem(r, what);
    *out = copy;
    return LMRT_OK;
}

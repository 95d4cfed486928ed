/* gguf_reader.h - a bounded little-endian cursor over a GGUF file in memory.
 * Every read checks the bytes left first and fails with LMRT_E_FORMAT naming
 * the path and byte offset; nothing here knows the GGUF layout beyond strings. */
#ifndef LMRT_FORMAT_GGUF_READER_H
#define LMRT_FORMAT_GGUF_READER_H

#include <stdint.h>

#include "base/error.h"
#include "format/gguf.h"

#define GGUF_MAX_NAME 65535u      /* longest key or tensor name, as the GGUF spec allows */

typedef struct gguf_reader {
    const char *path;             /* for messages */
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;                 /* <= size, always */
} gguf_reader;

static inline uint64_t gguf_left(const gguf_reader *r)
{
    return r->size - r->pos;
}

/* n (<= 8) little-endian bytes at p as an unsigned number. */
static inline uint64_t gguf_load_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    while (n--)
        v = v << 8 | p[n];
    return v;
}

/* LMRT_E_FORMAT with the message "<path>: offset <off>: <what>". */
lmrt_status gguf_bad(const gguf_reader *r, uint64_t off, const char *fmt, ...) LMRT_PRINTF(3, 4);
/* LMRT_E_NOMEM naming the path, the current offset and `what`. */
lmrt_status gguf_nomem(const gguf_reader *r, const char *what);

/* n bytes at the cursor, which advances past them. `what` names them in messages. */
lmrt_status gguf_take(gguf_reader *r, uint64_t n, const char *what, const uint8_t **out);
lmrt_status gguf_read_u32(gguf_reader *r, const char *what, uint32_t *out);
lmrt_status gguf_read_u64(gguf_reader *r, const char *what, uint64_t *out);
/* A string (u64 length + bytes), left in place. */
lmrt_status gguf_read_str(gguf_reader *r, const char *what, gguf_str *out);
/* A key or tensor name: non-empty, at most GGUF_MAX_NAME bytes, NUL-free;
 * returned as a NUL-terminated copy from lmrt_strndup. */
lmrt_status gguf_read_name(gguf_reader *r, const char *what, char **out);

#endif

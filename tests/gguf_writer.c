/* gguf_writer.c - the in-memory GGUF builder of the tests and fuzz seeds.
 * Checks nothing about what it writes (tests need broken files); knows only
 * the byte layout and the tensor block sizes. */
#include "gguf_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "tensor/types.h"

struct gguf_writer {
    char magic[4];
    uint32_t version;
    bool counts_set;
    uint64_t n_kv_override, n_tensors_override;
    uint32_t alignment;
    uint64_t n_kv, n_tensors;
    gw_buf kv;       /* encoded kv pairs */
    gw_buf infos;    /* encoded tensor infos */
    gw_buf data;     /* the data section */
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "gguf_writer: out of memory\n");
        abort();
    }
    return q;
}

void gw_buf_put(gw_buf *b, const void *bytes, size_t n)
{
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, bytes, n);
    b->len += n;
}

static void put_le(gw_buf *b, uint64_t v, unsigned n)
{
    uint8_t bytes[8];
    for (unsigned i = 0; i < n; i++)
        bytes[i] = (uint8_t)(v >> (8 * i));
    gw_buf_put(b, bytes, n);
}

void gw_buf_u8(gw_buf *b, uint8_t v) { put_le(b, v, 1); }
void gw_buf_u32(gw_buf *b, uint32_t v) { put_le(b, v, 4); }
void gw_buf_u64(gw_buf *b, uint64_t v) { put_le(b, v, 8); }

void gw_buf_strn(gw_buf *b, const void *s, uint64_t len)
{
    gw_buf_u64(b, len);
    gw_buf_put(b, s, (size_t)len);
}

void gw_buf_str(gw_buf *b, const char *s)
{
    gw_buf_strn(b, s, strlen(s));
}

void gw_buf_zeros(gw_buf *b, size_t n)
{
    static const uint8_t zeros[64];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        gw_buf_put(b, zeros, k);
        n -= k;
    }
}

void gw_buf_free(gw_buf *b)
{
    free(b->data);
    *b = (gw_buf){0};
}

gguf_writer *gw_new(void)
{
    gguf_writer *w = xrealloc(NULL, sizeof *w);
    *w = (gguf_writer){.magic = {'G', 'G', 'U', 'F'}, .version = 3,
                       .alignment = GGUF_DEFAULT_ALIGNMENT};
    return w;
}

void gw_free(gguf_writer *w)
{
    if (!w)
        return;
    gw_buf_free(&w->kv);
    gw_buf_free(&w->infos);
    gw_buf_free(&w->data);
    free(w);
}

void gw_set_magic(gguf_writer *w, const char magic[4]) { memcpy(w->magic, magic, 4); }
void gw_set_version(gguf_writer *w, uint32_t version) { w->version = version; }

void gw_set_counts(gguf_writer *w, uint64_t n_kv, uint64_t n_tensors)
{
    w->counts_set = true;
    w->n_kv_override = n_kv;
    w->n_tensors_override = n_tensors;
}

void gw_set_alignment(gguf_writer *w, uint32_t alignment)
{
    gw_kv_u32(w, "general.alignment", alignment);
    w->alignment = alignment;
}

static void kv_head(gguf_writer *w, const char *key, uint32_t type)
{
    gw_buf_str(&w->kv, key);
    gw_buf_u32(&w->kv, type);
    w->n_kv++;
}

static void kv_scalar(gguf_writer *w, const char *key, uint32_t type, uint64_t bits)
{
    kv_head(w, key, type);
    put_le(&w->kv, bits, (unsigned)gguf_type_size(type));
}

/* Signed values go out as their two's-complement bits. */
void gw_kv_u8(gguf_writer *w, const char *k, uint8_t v) { kv_scalar(w, k, GGUF_TYPE_UINT8, v); }
void gw_kv_i8(gguf_writer *w, const char *k, int8_t v)
{
    kv_scalar(w, k, GGUF_TYPE_INT8, (uint8_t)v);
}
void gw_kv_u16(gguf_writer *w, const char *k, uint16_t v) { kv_scalar(w, k, GGUF_TYPE_UINT16, v); }
void gw_kv_i16(gguf_writer *w, const char *k, int16_t v)
{
    kv_scalar(w, k, GGUF_TYPE_INT16, (uint16_t)v);
}
void gw_kv_u32(gguf_writer *w, const char *k, uint32_t v) { kv_scalar(w, k, GGUF_TYPE_UINT32, v); }
void gw_kv_i32(gguf_writer *w, const char *k, int32_t v)
{
    kv_scalar(w, k, GGUF_TYPE_INT32, (uint32_t)v);
}
void gw_kv_u64(gguf_writer *w, const char *k, uint64_t v) { kv_scalar(w, k, GGUF_TYPE_UINT64, v); }
void gw_kv_i64(gguf_writer *w, const char *k, int64_t v)
{
    kv_scalar(w, k, GGUF_TYPE_INT64, (uint64_t)v);
}
void gw_kv_bool(gguf_writer *w, const char *k, bool v) { kv_scalar(w, k, GGUF_TYPE_BOOL, v); }

void gw_kv_f32(gguf_writer *w, const char *key, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    kv_scalar(w, key, GGUF_TYPE_FLOAT32, bits);
}

void gw_kv_f64(gguf_writer *w, const char *key, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    kv_scalar(w, key, GGUF_TYPE_FLOAT64, bits);
}

void gw_kv_strn(gguf_writer *w, const char *key, const void *s, uint64_t len)
{
    kv_head(w, key, GGUF_TYPE_STRING);
    gw_buf_strn(&w->kv, s, len);
}

void gw_kv_str(gguf_writer *w, const char *key, const char *s)
{
    gw_kv_strn(w, key, s, strlen(s));
}

void gw_kv_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *elems,
               uint64_t count)
{
    size_t size = gguf_type_size(elem_type);
    kv_head(w, key, GGUF_TYPE_ARRAY);
    gw_buf_u32(&w->kv, elem_type);
    gw_buf_u64(&w->kv, count);
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *p = (const uint8_t *)elems + i * size;
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;
        uint64_t u64 = 0;
        switch (size) {
        case 1: memcpy(&u8, p, 1); u64 = u8; break;
        case 2: memcpy(&u16, p, 2); u64 = u16; break;
        case 4: memcpy(&u32, p, 4); u64 = u32; break;
        case 8: memcpy(&u64, p, 8); break;
        default: break;
        }
        put_le(&w->kv, u64, (unsigned)size);
    }
}

void gw_kv_arr_str(gguf_writer *w, const char *key, const char *const *strs, uint64_t count)
{
    kv_head(w, key, GGUF_TYPE_ARRAY);
    gw_buf_u32(&w->kv, GGUF_TYPE_STRING);
    gw_buf_u64(&w->kv, count);
    for (uint64_t i = 0; i < count; i++)
        gw_buf_str(&w->kv, strs[i]);
}

void gw_kv_raw(gguf_writer *w, const char *key, uint32_t type, const void *value, size_t len)
{
    kv_head(w, key, type);
    gw_buf_put(&w->kv, value, len);
}

void gw_raw_kv(gguf_writer *w, const void *bytes, size_t len)
{
    gw_buf_put(&w->kv, bytes, len);
    w->n_kv++;
}

uint64_t gw_next_offset(const gguf_writer *w)
{
    uint64_t a = w->alignment ? w->alignment : 1;
    return (w->data.len + a - 1) / a * a;
}

void gw_data_pad(gguf_writer *w, size_t n)
{
    gw_buf_zeros(&w->data, n);
}

void gw_tensor_raw(gguf_writer *w, const void *name, size_t name_len, uint32_t type,
                   uint32_t n_dims, const uint64_t *dims, uint64_t offset)
{
    gw_buf_strn(&w->infos, name, name_len);
    gw_buf_u32(&w->infos, n_dims);
    for (uint32_t d = 0; d < n_dims && d < GW_MAX_DIMS; d++)
        gw_buf_u64(&w->infos, dims[d]);
    gw_buf_u32(&w->infos, type);
    gw_buf_u64(&w->infos, offset);
    w->n_tensors++;
}

void gw_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
               const int64_t *dims, const void *data)
{
    const tensor_type_traits *tt = tensor_type_get(type);
    uint64_t udims[GW_MAX_DIMS], n_elements = 1;
    if (!tt || n_dims > GW_MAX_DIMS) {
        fprintf(stderr, "gguf_writer: gw_tensor('%s'): bad type or n_dims\n", name);
        abort();
    }
    for (uint32_t d = 0; d < n_dims; d++) {
        udims[d] = (uint64_t)dims[d];
        n_elements *= udims[d];
    }
    size_t n_bytes = (size_t)(n_elements / tt->block_elems * tt->block_bytes);
    uint64_t offset = gw_next_offset(w);
    gw_buf_zeros(&w->data, (size_t)(offset - w->data.len));
    gw_tensor_raw(w, name, strlen(name), type, n_dims, udims, offset);
    if (data) {
        gw_buf_put(&w->data, data, n_bytes);
    } else {
        for (size_t i = 0; i < n_bytes; i++)
            gw_buf_u8(&w->data, (uint8_t)(i * 7 + w->n_tensors));
    }
}

uint8_t *gw_finish(const gguf_writer *w, size_t *out_size)
{
    gw_buf out = {0};
    uint64_t a = w->alignment ? w->alignment : 1;
    gw_buf_put(&out, w->magic, 4);
    gw_buf_u32(&out, w->version);
    gw_buf_u64(&out, w->counts_set ? w->n_tensors_override : w->n_tensors);
    gw_buf_u64(&out, w->counts_set ? w->n_kv_override : w->n_kv);
    gw_buf_put(&out, w->kv.data, w->kv.len);
    gw_buf_put(&out, w->infos.data, w->infos.len);
    gw_buf_zeros(&out, (size_t)((a - out.len % a) % a));
    gw_buf_put(&out, w->data.data, w->data.len);
    *out_size = out.len;
    return out.data ? out.data : xrealloc(NULL, 1);
}

int gw_write_file(const gguf_writer *w, const char *path)
{
    size_t size;
    uint8_t *bytes = gw_finish(w, &size);
    FILE *fp = fopen(path, "wb");
    int ok = fp && fwrite(bytes, 1, size, fp) == size;
    if (fp && fclose(fp) != 0)
        ok = 0;
    free(bytes);
    return ok ? 0 : -1;
}

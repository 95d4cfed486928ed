/* gguf.c - parse and validate GGUF v2/v3 files (metadata, tensor table, data offset).
 * Trusts nothing in the file: every size and offset is checked against the mapping
 * before use. Knows nothing about models; model/ binds tensors by name. */
#include "format/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "format/gguf_reader.h"
#include "tensor/types.h"

/* The fewest bytes each item can take: they bound counts before anything is allocated. */
#define GGUF_MIN_KV_BYTES 14u     /* u64 key length + 1-byte key + u32 type + 1-byte value */
#define GGUF_MIN_TENSOR_BYTES 33u /* u64 name length + 1-byte name + u32 n_dims + one u64 dim
                                     + u32 type + u64 offset */
#define GGUF_MIN_STR_BYTES 8u     /* the u64 length of an empty string */

/* One fixed-size scalar of `type` at p (little-endian) into v. */
static void decode_scalar(uint32_t type, const uint8_t *p, gguf_value *v)
{
    uint64_t bits = gguf_load_le(p, (unsigned)gguf_type_size(type));
    switch (type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
        v->v.u64 = bits;
        break;
    case GGUF_TYPE_INT8: v->v.i64 = (int8_t)bits; break;
    case GGUF_TYPE_INT16: v->v.i64 = (int16_t)bits; break;
    case GGUF_TYPE_INT32: v->v.i64 = (int32_t)bits; break;
    case GGUF_TYPE_INT64: v->v.i64 = (int64_t)bits; break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t b32 = (uint32_t)bits;
        float x;
        memcpy(&x, &b32, sizeof x);
        v->v.f64 = x;
        break;
    }
    case GGUF_TYPE_FLOAT64: memcpy(&v->v.f64, &bits, sizeof v->v.f64); break;
    case GGUF_TYPE_BOOL: v->v.b = bits != 0; break;
    default: break;
    }
}

static lmrt_status read_array(gguf_reader *r, const char *key, gguf_value *v)
{
    uint64_t at = r->pos, count = 0;
    uint32_t et = 0;
    lmrt_status st = gguf_read_u32(r, "array element type", &et);
    if (st != LMRT_OK)
        return st;
    if (et == GGUF_TYPE_ARRAY)
        return gguf_bad(r, at, "key '%s' is an array of arrays (nested arrays are not supported)",
                        key);
    if (et >= GGUF_TYPE_COUNT)
        return gguf_bad(r, at, "key '%s' is an array of unknown value type %" PRIu32, key, et);
    if ((st = gguf_read_u64(r, "array length", &count)) != LMRT_OK)
        return st;
    v->v.arr.elem_type = et;
    v->v.arr.count = count;
    v->v.arr.data = r->base + r->pos;
    size_t esize = gguf_type_size(et);
    if (esize) {
        uint64_t bytes;
        if (__builtin_mul_overflow(count, (uint64_t)esize, &bytes) || bytes > gguf_left(r))
            return gguf_bad(r, at, "key '%s': array of %" PRIu64 " %s needs more than the %"
                            PRIu64 " bytes left", key, count, gguf_type_name(et), gguf_left(r));
        if (et == GGUF_TYPE_BOOL) {
            const uint8_t *p = v->v.arr.data;
            for (uint64_t i = 0; i < count; i++)
                if (p[i] > 1)
                    return gguf_bad(r, r->pos + i, "key '%s': bool element %" PRIu64
                                    " is %u, not 0 or 1", key, i, p[i]);
        }
        r->pos += bytes;
        return LMRT_OK;
    }
    /* strings: each needs at least its 8-byte length, which bounds the allocation */
    if (count > gguf_left(r) / GGUF_MIN_STR_BYTES)
        return gguf_bad(r, at, "key '%s': %" PRIu64 " strings cannot fit in the %" PRIu64
                        " bytes left", key, count, gguf_left(r));
    if (count == 0)
        return LMRT_OK;
    v->v.arr.strs = lmrt_calloc((size_t)count, sizeof *v->v.arr.strs);
    if (!v->v.arr.strs)
        return gguf_nomem(r, "a string array");
    for (uint64_t i = 0; i < count; i++)
        if ((st = gguf_read_str(r, "array string", &v->v.arr.strs[i])) != LMRT_OK)
            return st;
    return LMRT_OK;
}

static lmrt_status read_value(gguf_reader *r, const char *key, gguf_value *v)
{
    uint64_t at = r->pos;
    lmrt_status st = gguf_read_u32(r, "value type", &v->type);
    if (st != LMRT_OK)
        return st;
    if (v->type == GGUF_TYPE_STRING)
        return gguf_read_str(r, "string value", &v->v.str);
    if (v->type == GGUF_TYPE_ARRAY)
        return read_array(r, key, v);
    size_t size = gguf_type_size(v->type);
    if (size == 0)
        return gguf_bad(r, at, "key '%s' has unknown value type %" PRIu32, key, v->type);
    const uint8_t *p = NULL;
    if ((st = gguf_take(r, size, "value", &p)) != LMRT_OK)
        return st;
    if (v->type == GGUF_TYPE_BOOL && p[0] > 1)
        return gguf_bad(r, at + 4, "key '%s': bool value is %u, not 0 or 1", key, p[0]);
    decode_scalar(v->type, p, v);
    return LMRT_OK;
}

static lmrt_status read_kvs(gguf_reader *r, gguf_file *f)
{
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        kv->offset = r->pos;
        lmrt_status st = gguf_read_name(r, "key", &kv->key);
        if (st == LMRT_OK)
            st = read_value(r, kv->key, &kv->value);
        if (st != LMRT_OK)
            return st;
        if (strcmp(kv->key, "general.alignment") == 0) {
            if (kv->value.type != GGUF_TYPE_UINT32)
                return gguf_bad(r, kv->offset, "general.alignment has type %s, not UINT32",
                                gguf_type_name(kv->value.type));
            uint64_t a = kv->value.v.u64;
            if (a == 0 || (a & (a - 1)) != 0)
                return gguf_bad(r, kv->offset, "general.alignment %" PRIu64
                                " is not a nonzero power of two", a);
            f->alignment = a;
        }
    }
    return LMRT_OK;
}

static lmrt_status read_tensor_info(gguf_reader *r, const gguf_file *f, gguf_tensor *t)
{
    uint64_t at = r->pos, dim = 0;
    lmrt_status st = gguf_read_name(r, "tensor name", &t->name);
    if (st != LMRT_OK)
        return st;
    uint64_t dims_at = r->pos;
    if ((st = gguf_read_u32(r, "tensor n_dims", &t->n_dims)) != LMRT_OK)
        return st;
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return gguf_bad(r, dims_at, "tensor '%s' has %" PRIu32 " dimensions (1 to %d allowed)",
                        t->name, t->n_dims, GGUF_MAX_DIMS);
    t->n_elements = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t dim_at = r->pos;
        if ((st = gguf_read_u64(r, "tensor dimension", &dim)) != LMRT_OK)
            return st;
        if (dim == 0 || dim > INT64_MAX)
            return gguf_bad(r, dim_at, "tensor '%s' dimension %" PRIu32 " is %" PRIu64
                            " (must be 1 to INT64_MAX)", t->name, d, dim);
        t->ne[d] = (int64_t)dim;
        if (__builtin_mul_overflow(t->n_elements, t->ne[d], &t->n_elements))
            return gguf_bad(r, dim_at, "tensor '%s' element count overflows at dimension %" PRIu32,
                            t->name, d);
    }
    uint64_t type_at = r->pos;
    if ((st = gguf_read_u32(r, "tensor type", &t->type)) != LMRT_OK)
        return st;
    const tensor_type_traits *tt = tensor_type_get(t->type);
    if (!tt)
        return gguf_bad(r, type_at, "tensor '%s' has unknown ggml type %" PRIu32, t->name, t->type);
    if (t->ne[0] % tt->block_elems != 0)
        return gguf_bad(r, dims_at, "tensor '%s': row of %" PRId64 " elements is not a multiple of "
                        "the %s block size %" PRIu32, t->name, t->ne[0], tt->name, tt->block_elems);
    uint64_t blocks = (uint64_t)t->n_elements / tt->block_elems;
    if (__builtin_mul_overflow(blocks, (uint64_t)tt->block_bytes, &t->n_bytes))
        return gguf_bad(r, at, "tensor '%s' byte size overflows", t->name);
    uint64_t off_at = r->pos;
    if ((st = gguf_read_u64(r, "tensor data offset", &t->offset)) != LMRT_OK)
        return st;
    if (t->offset % f->alignment != 0)
        return gguf_bad(r, off_at, "tensor '%s' data offset %" PRIu64 " is not a multiple of the "
                        "alignment %" PRIu64, t->name, t->offset, f->alignment);
    return LMRT_OK;
}

/* A kv or tensor with the file offset that names it in messages, for sorting. */
typedef struct ref {
    const void *item;
    uint64_t at;
} ref;

static int cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

static int cmp_key(const void *a, const void *b)
{
    const ref *x = a, *y = b;
    int c = strcmp(((const gguf_kv *)x->item)->key, ((const gguf_kv *)y->item)->key);
    return c ? c : cmp_u64(x->at, y->at);
}

static int cmp_name(const void *a, const void *b)
{
    const ref *x = a, *y = b;
    int c = strcmp(((const gguf_tensor *)x->item)->name, ((const gguf_tensor *)y->item)->name);
    return c ? c : cmp_u64(x->at, y->at);
}

static int cmp_data(const void *a, const void *b)
{
    const ref *x = a, *y = b;
    int c = cmp_u64(((const gguf_tensor *)x->item)->offset, ((const gguf_tensor *)y->item)->offset);
    return c ? c : cmp_u64(x->at, y->at);
}

/* Keys are unique; sorting keeps the check O(n log n) for hostile counts. */
static lmrt_status check_keys(const gguf_reader *r, const gguf_file *f, ref *refs)
{
    for (uint64_t i = 0; i < f->n_kv; i++)
        refs[i] = (ref){&f->kv[i], f->kv[i].offset};
    qsort(refs, (size_t)f->n_kv, sizeof *refs, cmp_key);
    for (uint64_t i = 1; i < f->n_kv; i++) {
        const gguf_kv *a = refs[i - 1].item, *b = refs[i].item;
        if (strcmp(a->key, b->key) == 0)
            return gguf_bad(r, b->offset, "duplicate key '%s' (first at offset %" PRIu64 ")",
                            b->key, a->offset);
    }
    return LMRT_OK;
}

/* Tensor names are unique and tensor data ranges are disjoint. refs[i].at holds
 * the offset of tensor i's info. */
static lmrt_status check_tensors(const gguf_reader *r, const gguf_file *f, ref *refs)
{
    uint64_t n = f->n_tensors;
    qsort(refs, (size_t)n, sizeof *refs, cmp_name);
    for (uint64_t i = 1; i < n; i++) {
        const gguf_tensor *a = refs[i - 1].item, *b = refs[i].item;
        if (strcmp(a->name, b->name) == 0)
            return gguf_bad(r, refs[i].at, "duplicate tensor name '%s' (first at offset %"
                            PRIu64 ")", b->name, refs[i - 1].at);
    }
    qsort(refs, (size_t)n, sizeof *refs, cmp_data);
    for (uint64_t i = 1; i < n; i++) {
        const gguf_tensor *a = refs[i - 1].item, *b = refs[i].item;
        if (a->offset + a->n_bytes > b->offset)   /* both end inside the file: no overflow */
            return gguf_bad(r, f->data_offset + b->offset, "tensor '%s' data [+%" PRIu64
                            ") overlaps tensor '%s' data [%" PRIu64 ", +%" PRIu64 ")", b->name,
                            b->n_bytes, a->name, f->data_offset + a->offset, a->n_bytes);
    }
    return LMRT_OK;
}

static lmrt_status check_data(const gguf_reader *r, gguf_file *f)
{
    uint64_t a = f->alignment, start;
    if (__builtin_add_overflow(r->pos, a - 1, &start))
        return gguf_bad(r, r->pos, "data section start overflows");
    f->data_offset = start & ~(a - 1);
    if (f->data_offset > f->size) {
        if (f->n_tensors > 0)
            return gguf_bad(r, r->pos, "data section starts at %" PRIu64 ", past the end of "
                            "the file (%" PRIu64 " bytes)", f->data_offset, f->size);
        f->data_offset = f->size;   /* no tensors: the (empty) data section may be unpadded */
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        uint64_t begin, end;
        if (__builtin_add_overflow(f->data_offset, t->offset, &begin) || begin > f->size)
            return gguf_bad(r, f->data_offset, "tensor '%s' data offset %" PRIu64 " is past "
                            "the end of the file (%" PRIu64 " bytes)", t->name, t->offset,
                            f->size);
        if (__builtin_add_overflow(begin, t->n_bytes, &end) || end > f->size)
            return gguf_bad(r, begin, "tensor '%s' data [+%" PRIu64 ") ends past the end of "
                            "the file (%" PRIu64 " bytes)", t->name, t->n_bytes, f->size);
        t->data = f->base + begin;
    }
    return LMRT_OK;
}

/* Everything after the kv pairs: tensor infos, data section, uniqueness. */
static lmrt_status read_tensors(gguf_reader *r, gguf_file *f, ref *refs)
{
    lmrt_status st = check_keys(r, f, refs);
    if (st != LMRT_OK)
        return st;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        refs[i] = (ref){&f->tensors[i], r->pos};
        if ((st = read_tensor_info(r, f, &f->tensors[i])) != LMRT_OK)
            return st;
    }
    if ((st = check_data(r, f)) != LMRT_OK)
        return st;
    return check_tensors(r, f, refs);
}

static lmrt_status parse(gguf_file *f)
{
    gguf_reader r = {f->path, f->base, f->size, 0};
    const uint8_t *magic = NULL;
    uint64_t n_tensors = 0, n_kv = 0;
    lmrt_status st = gguf_take(&r, 4, "magic", &magic);
    if (st != LMRT_OK)
        return st;
    if (memcmp(magic, "GGUF", 4) != 0)
        return gguf_bad(&r, 0, "not a GGUF file (magic %02x %02x %02x %02x, expected \"GGUF\")",
                        magic[0], magic[1], magic[2], magic[3]);
    if ((st = gguf_read_u32(&r, "version", &f->version)) != LMRT_OK)
        return st;
    uint32_t v = f->version, swapped = __builtin_bswap32(v);
    if (v == 1)
        return gguf_bad(&r, 4, "GGUF version 1 is not supported (only versions 2 and 3)");
    if (v != 2 && v != 3 && swapped >= 1 && swapped <= 3)
        return gguf_bad(&r, 4, "big-endian GGUF (version %" PRIu32 ") is not supported", swapped);
    if (v != 2 && v != 3)
        return gguf_bad(&r, 4, "unsupported GGUF version %" PRIu32 " (only 2 and 3)", v);
    if ((st = gguf_read_u64(&r, "tensor count", &n_tensors)) != LMRT_OK ||
        (st = gguf_read_u64(&r, "kv count", &n_kv)) != LMRT_OK)
        return st;
    if (n_kv > gguf_left(&r) / GGUF_MIN_KV_BYTES)
        return gguf_bad(&r, 16, "kv count %" PRIu64 " is impossible: only %" PRIu64 " bytes remain "
                        "(at least %u per kv)", n_kv, gguf_left(&r), GGUF_MIN_KV_BYTES);
    if (n_tensors > gguf_left(&r) / GGUF_MIN_TENSOR_BYTES)
        return gguf_bad(&r, 8, "tensor count %" PRIu64 " is impossible: only %" PRIu64
                        " bytes remain (at least %u per tensor)", n_tensors, gguf_left(&r),
                        GGUF_MIN_TENSOR_BYTES);
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    f->kv = lmrt_calloc((size_t)n_kv, sizeof *f->kv);
    if (!f->kv)
        return gguf_nomem(&r, "the kv table");
    f->n_kv = n_kv;
    if ((st = read_kvs(&r, f)) != LMRT_OK)
        return st;
    if (n_tensors > gguf_left(&r) / GGUF_MIN_TENSOR_BYTES)
        return gguf_bad(&r, 8, "tensor count %" PRIu64 " is impossible: only %" PRIu64
                        " bytes remain after the metadata", n_tensors, gguf_left(&r));
    f->tensors = lmrt_calloc((size_t)n_tensors, sizeof *f->tensors);
    if (!f->tensors)
        return gguf_nomem(&r, "the tensor table");
    f->n_tensors = n_tensors;
    ref *refs = lmrt_calloc((size_t)(n_kv > n_tensors ? n_kv : n_tensors), sizeof *refs);
    if (!refs)
        return gguf_nomem(&r, "the duplicate check");
    st = read_tensors(&r, f, refs);
    lmrt_mem_free(refs);
    return st;
}

static gguf_file *new_file(const char *path)
{
    gguf_file *f = lmrt_calloc(1, sizeof *f);
    if (f && !(f->path = lmrt_strdup(path))) {
        lmrt_mem_free(f);
        f = NULL;
    }
    if (!f)
        lmrt_fail(LMRT_E_NOMEM, "%s: out of memory opening the file", path);
    return f;
}

/* The read() fallback: the whole file into a heap buffer. */
static lmrt_status read_all(int fd, gguf_file *f)
{
    size_t size = (size_t)f->size, done = 0;
    f->heap = lmrt_malloc(size);
    if (!f->heap)
        return lmrt_fail(LMRT_E_NOMEM, "%s: out of memory reading %zu bytes", f->path, size);
    while (done < size) {
        size_t chunk = size - done < ((size_t)1 << 30) ? size - done : (size_t)1 << 30;
        ssize_t n = read(fd, (uint8_t *)f->heap + done, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return lmrt_fail(LMRT_E_IO, "%s: offset %zu: read failed: %s", f->path, done,
                             strerror(errno));
        if (n == 0)
            return lmrt_fail(LMRT_E_IO, "%s: offset %zu: file ended early (expected %zu bytes)",
                             f->path, done, size);
        done += (size_t)n;
    }
    f->base = f->heap;
    return LMRT_OK;
}

lmrt_status gguf_open(const char *path, bool use_mmap, gguf_file **out)
{
    if (!path || !out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "gguf_open: NULL %s", path ? "out" : "path");
    gguf_file *f = new_file(path);
    if (!f)
        return LMRT_E_NOMEM;
    lmrt_status st;
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = lmrt_fail(LMRT_E_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &sb) != 0) {
        st = lmrt_fail(LMRT_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = lmrt_fail(LMRT_E_IO, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        st = lmrt_fail(LMRT_E_IO, "%s: too large for this address space", path);
        goto fail;
    }
    f->size = (uint64_t)sb.st_size;
    if (use_mmap && f->size > 0) {
        void *m = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            f->map = m;
            f->map_size = (size_t)f->size;
            f->base = m;
        }
    }
    if (!f->base && (st = read_all(fd, f)) != LMRT_OK)
        goto fail;
    close(fd);
    fd = -1;
    if ((st = parse(f)) != LMRT_OK)
        goto fail;
    *out = f;
    return LMRT_OK;
fail:
    if (fd >= 0)
        close(fd);
    gguf_close(f);
    return st;
}

lmrt_status gguf_open_memory(const void *data, size_t size, const char *name, gguf_file **out)
{
    if (!out || (!data && size > 0))
        return lmrt_fail(LMRT_E_INVALID_ARG, "gguf_open_memory: NULL %s", out ? "data" : "out");
    gguf_file *f = new_file(name ? name : "<memory>");
    if (!f)
        return LMRT_E_NOMEM;
    static const uint8_t empty[1];
    f->base = data ? data : empty;
    f->size = size;
    lmrt_status st = parse(f);
    if (st != LMRT_OK) {
        gguf_close(f);
        return st;
    }
    *out = f;
    return LMRT_OK;
}

void gguf_close(gguf_file *f)
{
    if (!f)
        return;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        lmrt_mem_free(f->kv[i].key);
        if (f->kv[i].value.type == GGUF_TYPE_ARRAY)
            lmrt_mem_free(f->kv[i].value.v.arr.strs);
    }
    lmrt_mem_free(f->kv);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        lmrt_mem_free(f->tensors[i].name);
    lmrt_mem_free(f->tensors);
    if (f->map)
        munmap(f->map, f->map_size);
    lmrt_mem_free(f->heap);
    lmrt_mem_free(f->path);
    lmrt_mem_free(f);
}

const gguf_kv *gguf_find(const gguf_file *f, const char *key)
{
    for (uint64_t i = 0; f && key && i < f->n_kv; i++)
        if (strcmp(f->kv[i].key, key) == 0)
            return &f->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
    for (uint64_t i = 0; f && name && i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

static lmrt_status not_found(const gguf_file *f, const char *key)
{
    return lmrt_fail(LMRT_E_NOT_FOUND, "%s: key '%s' not found", f ? f->path : "(null)",
                     key ? key : "(null)");
}

static lmrt_status wrong_type(const gguf_file *f, const gguf_kv *kv, const char *want)
{
    return lmrt_fail(LMRT_E_FORMAT, "%s: offset %" PRIu64 ": key '%s' is %s, not %s", f->path,
                     kv->offset, kv->key, gguf_type_name(kv->value.type), want);
}

static bool is_unsigned(uint32_t t)
{
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 ||
           t == GGUF_TYPE_UINT64;
}

static bool is_signed(uint32_t t)
{
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 ||
           t == GGUF_TYPE_INT64;
}

lmrt_status gguf_get_int(const gguf_file *f, const char *key, int64_t *out)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return not_found(f, key);
    uint32_t t = kv->value.type;
    if (is_signed(t)) {
        *out = kv->value.v.i64;
        return LMRT_OK;
    }
    if (!is_unsigned(t))
        return wrong_type(f, kv, "an integer");
    if (kv->value.v.u64 > INT64_MAX)
        return wrong_type(f, kv, "an integer that fits int64");
    *out = (int64_t)kv->value.v.u64;
    return LMRT_OK;
}

/* Floats, and integers too: writers store e.g. rope.freq_base either way. */
lmrt_status gguf_get_float(const gguf_file *f, const char *key, double *out)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return not_found(f, key);
    uint32_t t = kv->value.type;
    if (t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64)
        *out = kv->value.v.f64;
    else if (is_signed(t))
        *out = (double)kv->value.v.i64;
    else if (is_unsigned(t))
        *out = (double)kv->value.v.u64;
    else
        return wrong_type(f, kv, "a number");
    return LMRT_OK;
}

lmrt_status gguf_get_bool(const gguf_file *f, const char *key, bool *out)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return not_found(f, key);
    if (kv->value.type != GGUF_TYPE_BOOL)
        return wrong_type(f, kv, "BOOL");
    *out = kv->value.v.b;
    return LMRT_OK;
}

lmrt_status gguf_get_str(const gguf_file *f, const char *key, gguf_str *out)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return not_found(f, key);
    if (kv->value.type != GGUF_TYPE_STRING)
        return wrong_type(f, kv, "STRING");
    *out = kv->value.v.str;
    return LMRT_OK;
}

static gguf_value array_elem(const gguf_value *arr, uint64_t i)
{
    gguf_value v = {.type = arr->v.arr.elem_type};
    size_t size = gguf_type_size(v.type);
    if (size)
        decode_scalar(v.type, arr->v.arr.data + i * size, &v);
    return v;
}

int64_t gguf_array_int(const gguf_value *arr, uint64_t i)
{
    gguf_value v = array_elem(arr, i);
    if (is_signed(v.type))
        return v.v.i64;
    if (is_unsigned(v.type))
        return v.v.u64 > INT64_MAX ? INT64_MAX : (int64_t)v.v.u64;
    if (v.type == GGUF_TYPE_BOOL)
        return v.v.b;
    if (v.type == GGUF_TYPE_FLOAT32 || v.type == GGUF_TYPE_FLOAT64) {
        if (!(v.v.f64 > -9.2e18 && v.v.f64 < 9.2e18))   /* NaN and out of range */
            return v.v.f64 > 0 ? INT64_MAX : v.v.f64 < 0 ? INT64_MIN : 0;
        return (int64_t)v.v.f64;
    }
    return 0;
}

double gguf_array_float(const gguf_value *arr, uint64_t i)
{
    gguf_value v = array_elem(arr, i);
    if (v.type == GGUF_TYPE_FLOAT32 || v.type == GGUF_TYPE_FLOAT64)
        return v.v.f64;
    if (is_signed(v.type))
        return (double)v.v.i64;
    if (is_unsigned(v.type))
        return (double)v.v.u64;
    return v.type == GGUF_TYPE_BOOL ? (double)v.v.b : 0.0;
}

size_t gguf_type_size(uint32_t type)
{
    static const uint8_t sizes[GGUF_TYPE_COUNT] = {
        [GGUF_TYPE_UINT8] = 1, [GGUF_TYPE_INT8] = 1, [GGUF_TYPE_UINT16] = 2,
        [GGUF_TYPE_INT16] = 2, [GGUF_TYPE_UINT32] = 4, [GGUF_TYPE_INT32] = 4,
        [GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1, [GGUF_TYPE_UINT64] = 8,
        [GGUF_TYPE_INT64] = 8, [GGUF_TYPE_FLOAT64] = 8,
    };
    return type < GGUF_TYPE_COUNT ? sizes[type] : 0;
}

const char *gguf_type_name(uint32_t type)
{
    static const char *const names[GGUF_TYPE_COUNT] = {
        "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
        "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64",
    };
    return type < GGUF_TYPE_COUNT ? names[type] : "unknown";
}

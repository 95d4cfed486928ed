/* meta_api.c - public read access to a model's GGUF metadata: keys in file order,
 * typed reads with widening, array elements, and a one-line rendering for tools. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/handles.h"

/* Finds `key` in a live model; sets *out_index to its position. */
static lmrt_status find_kv(const lmrt_model *model, const char *key, const char *function,
                           const gguf_kv **out, uint64_t *out_index)
{
    lmrt_status st;
    if ((st = api_model_live(model, function)) || (st = api_require(key, function, "key")))
        return st;
    const gguf_kv *kv = gguf_find(model->m->file, key);
    if (!kv)
        return lmrt_fail(LMRT_E_NOT_FOUND, "%s: %s has no metadata key '%s'", function,
                         model->m->file->path, key);
    *out = kv;
    if (out_index)
        *out_index = (uint64_t)(kv - model->m->file->kv);
    return LMRT_OK;
}

static bool type_is_int(uint32_t t)
{
    return t <= GGUF_TYPE_INT32 || t == GGUF_TYPE_BOOL || t == GGUF_TYPE_UINT64 ||
           t == GGUF_TYPE_INT64;
}
static bool type_is_unsigned(uint32_t t)
{
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 ||
           t == GGUF_TYPE_UINT64;
}
static bool type_is_float(uint32_t t)
{
    return t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64;
}

lmrt_status lmrt_model_meta_key(const lmrt_model *model, int64_t index, const char **out_key)
{
    lmrt_error_clear();
    lmrt_status st;
    if ((st = api_model_live(model, "lmrt_model_meta_key")) ||
        (st = api_require(out_key, "lmrt_model_meta_key", "out_key")))
        return st;
    const gguf_file *f = model->m->file;
    if (index < 0 || (uint64_t)index >= f->n_kv)
        return lmrt_fail(LMRT_E_NOT_FOUND, "lmrt_model_meta_key: index %" PRId64
                         " is outside 0..%" PRIu64, index, f->n_kv);
    *out_key = f->kv[index].key;
    return LMRT_OK;
}

lmrt_status lmrt_model_meta_type(const lmrt_model *model, const char *key, int32_t *out_type,
                                 int32_t *out_elem_type, int64_t *out_count)
{
    lmrt_error_clear();
    const gguf_kv *kv;
    lmrt_status st = find_kv(model, key, "lmrt_model_meta_type", &kv, NULL);
    if (st)
        return st;
    if (out_type)
        *out_type = (int32_t)kv->value.type;
    bool arr = kv->value.type == GGUF_TYPE_ARRAY;
    if (out_elem_type)
        *out_elem_type = arr ? (int32_t)kv->value.v.arr.elem_type : -1;
    if (out_count)
        *out_count = arr ? (int64_t)kv->value.v.arr.count : 0;
    return LMRT_OK;
}

/* Widens a scalar integer value; uint64 above INT64_MAX does not fit. */
static lmrt_status value_int(const gguf_value *v, const char *key, int64_t *out)
{
    if (v->type == GGUF_TYPE_BOOL) {
        *out = v->v.b;
        return LMRT_OK;
    }
    if (type_is_unsigned(v->type)) {
        if (v->v.u64 > INT64_MAX)
            return lmrt_fail(LMRT_E_INVALID_ARG, "key '%s': value %" PRIu64
                             " does not fit in int64", key, v->v.u64);
        *out = (int64_t)v->v.u64;
        return LMRT_OK;
    }
    *out = v->v.i64;
    return LMRT_OK;
}

lmrt_status lmrt_model_meta_int(const lmrt_model *model, const char *key, int64_t *out)
{
    lmrt_error_clear();
    const gguf_kv *kv;
    lmrt_status st;
    if ((st = find_kv(model, key, "lmrt_model_meta_int", &kv, NULL)) ||
        (st = api_require(out, "lmrt_model_meta_int", "out")))
        return st;
    if (!type_is_int(kv->value.type))
        return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_model_meta_int: key '%s' holds a %s, not "
                         "an integer", key, gguf_type_name(kv->value.type));
    int64_t v = 0;
    if ((st = value_int(&kv->value, key, &v)))
        return st;
    *out = v;
    return LMRT_OK;
}

lmrt_status lmrt_model_meta_float(const lmrt_model *model, const char *key, double *out)
{
    lmrt_error_clear();
    const gguf_kv *kv;
    lmrt_status st;
    if ((st = find_kv(model, key, "lmrt_model_meta_float", &kv, NULL)) ||
        (st = api_require(out, "lmrt_model_meta_float", "out")))
        return st;
    if (!type_is_float(kv->value.type))
        return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_model_meta_float: key '%s' holds a %s, not "
                         "a float", key, gguf_type_name(kv->value.type));
    *out = kv->value.v.f64;
    return LMRT_OK;
}

lmrt_status lmrt_model_meta_string(const lmrt_model *model, const char *key, const char **out)
{
    lmrt_error_clear();
    const gguf_kv *kv;
    uint64_t index;
    lmrt_status st;
    if ((st = find_kv(model, key, "lmrt_model_meta_string", &kv, &index)) ||
        (st = api_require(out, "lmrt_model_meta_string", "out")))
        return st;
    if (kv->value.type != GGUF_TYPE_STRING)
        return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_model_meta_string: key '%s' holds a %s, "
                         "not a string", key, gguf_type_name(kv->value.type));
    *out = model->m->meta_strings[index];
    return LMRT_OK;
}

/* The array behind `key`, with `index` checked against its count. */
static lmrt_status array_elem(const lmrt_model *model, const char *key, int64_t index,
                              const char *function, const gguf_value **out)
{
    const gguf_kv *kv;
    lmrt_status st = find_kv(model, key, function, &kv, NULL);
    if (st)
        return st;
    if (kv->value.type != GGUF_TYPE_ARRAY)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s: key '%s' holds a %s, not an array", function,
                         key, gguf_type_name(kv->value.type));
    if (index < 0 || (uint64_t)index >= kv->value.v.arr.count)
        return lmrt_fail(LMRT_E_NOT_FOUND, "%s: index %" PRId64 " is outside the %" PRIu64
                         " elements of '%s'", function, index, kv->value.v.arr.count, key);
    *out = &kv->value;
    return LMRT_OK;
}

lmrt_status lmrt_model_meta_array_int(const lmrt_model *model, const char *key, int64_t index,
                                      int64_t *out)
{
    lmrt_error_clear();
    const gguf_value *arr;
    lmrt_status st;
    if ((st = array_elem(model, key, index, "lmrt_model_meta_array_int", &arr)) ||
        (st = api_require(out, "lmrt_model_meta_array_int", "out")))
        return st;
    uint32_t et = arr->v.arr.elem_type;
    if (!type_is_int(et))
        return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_model_meta_array_int: '%s' is an array of "
                         "%s, not of integers", key, gguf_type_name(et));
    if (et == GGUF_TYPE_UINT64) {
        uint64_t u;
        memcpy(&u, arr->v.arr.data + (size_t)index * 8, sizeof u);
        if (u > INT64_MAX)
            return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_model_meta_array_int: '%s'[%" PRId64
                             "] = %" PRIu64 " does not fit in int64", key, index, u);
    }
    *out = gguf_array_int(arr, (uint64_t)index);
    return LMRT_OK;
}

lmrt_status lmrt_model_meta_array_float(const lmrt_model *model, const char *key, int64_t index,
                                        double *out)
{
    lmrt_error_clear();
    const gguf_value *arr;
    lmrt_status st;
    if ((st = array_elem(model, key, index, "lmrt_model_meta_array_float", &arr)) ||
        (st = api_require(out, "lmrt_model_meta_array_float", "out")))
        return st;
    if (!type_is_float(arr->v.arr.elem_type))
        return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_model_meta_array_float: '%s' is an array "
                         "of %s, not of floats", key, gguf_type_name(arr->v.arr.elem_type));
    *out = gguf_array_float(arr, (uint64_t)index);
    return LMRT_OK;
}

lmrt_status lmrt_model_meta_array_string(const lmrt_model *model, const char *key,
                                         int64_t index, const char **out_bytes, size_t *out_len)
{
    lmrt_error_clear();
    const gguf_value *arr;
    lmrt_status st;
    if ((st = array_elem(model, key, index, "lmrt_model_meta_array_string", &arr)) ||
        (st = api_require(out_bytes, "lmrt_model_meta_array_string", "out_bytes")) ||
        (st = api_require(out_len, "lmrt_model_meta_array_string", "out_len")))
        return st;
    if (arr->v.arr.elem_type != GGUF_TYPE_STRING)
        return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_model_meta_array_string: '%s' is an array "
                         "of %s, not of strings", key, gguf_type_name(arr->v.arr.elem_type));
    *out_bytes = arr->v.arr.strs[index].ptr;
    *out_len = (size_t)arr->v.arr.strs[index].len;
    return LMRT_OK;
}

/* A growing text that counts its full length even past the buffer's end. */
typedef struct text_out {
    char *buf;
    size_t cap;
    size_t len;
} text_out;

static void put_bytes(text_out *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, t->len++)
        if (t->len + 1 < t->cap)
            t->buf[t->len] = s[i];
}

static void put_fmt(text_out *t, const char *fmt, ...) LMRT_PRINTF(2, 3);
static void put_fmt(text_out *t, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put_bytes(t, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A quoted string with control bytes, quotes and backslashes escaped. */
static void put_quoted(text_out *t, gguf_str s)
{
    put_bytes(t, "\"", 1);
    for (uint64_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\')
            put_fmt(t, "\\%c", c);
        else if (c == '\n')
            put_bytes(t, "\\n", 2);
        else if (c < 0x20 || c == 0x7f)
            put_fmt(t, "\\x%02x", c);
        else
            put_bytes(t, (const char *)&c, 1);
    }
    put_bytes(t, "\"", 1);
}

static void put_number(text_out *t, uint32_t type, int64_t i, uint64_t u, double f, bool b)
{
    if (type == GGUF_TYPE_BOOL)
        put_fmt(t, "%s", b ? "true" : "false");
    else if (type_is_float(type))
        put_fmt(t, "%.9g", f);
    else if (type_is_unsigned(type))
        put_fmt(t, "%" PRIu64, u);
    else
        put_fmt(t, "%" PRId64, i);
}

static void put_value(text_out *t, const gguf_value *v, int64_t max_elems)
{
    if (v->type == GGUF_TYPE_STRING) {
        put_quoted(t, v->v.str);
    } else if (v->type == GGUF_TYPE_ARRAY) {
        uint64_t n = v->v.arr.count;
        uint64_t shown = max_elems >= 0 && (uint64_t)max_elems < n ? (uint64_t)max_elems : n;
        uint32_t et = v->v.arr.elem_type;
        put_bytes(t, "[", 1);
        for (uint64_t i = 0; i < shown; i++) {
            if (i)
                put_bytes(t, ", ", 2);
            if (et == GGUF_TYPE_STRING)
                put_quoted(t, v->v.arr.strs[i]);
            else if (type_is_float(et))
                put_number(t, et, 0, 0, gguf_array_float(v, i), false);
            else if (et == GGUF_TYPE_UINT64) {
                uint64_t u;
                memcpy(&u, v->v.arr.data + i * 8, sizeof u);
                put_number(t, et, 0, u, 0, false);
            } else {
                int64_t x = gguf_array_int(v, i);
                put_number(t, et, x, (uint64_t)x, 0, x != 0);
            }
        }
        if (shown < n)
            put_fmt(t, "%s... %" PRIu64 " more", shown ? ", " : "", n - shown);
        put_bytes(t, "]", 1);
    } else if (v->type == GGUF_TYPE_BOOL) {
        put_number(t, v->type, 0, 0, 0, v->v.b);
    } else if (type_is_float(v->type)) {
        put_number(t, v->type, 0, 0, v->v.f64, false);
    } else if (type_is_unsigned(v->type)) {
        put_number(t, v->type, 0, v->v.u64, 0, false);
    } else {
        put_number(t, v->type, v->v.i64, 0, 0, false);
    }
}

lmrt_status lmrt_model_meta_format(const lmrt_model *model, const char *key, int64_t max_elems,
                                   char *buf, size_t cap, size_t *out_len)
{
    lmrt_error_clear();
    const gguf_kv *kv;
    lmrt_status st;
    if ((st = find_kv(model, key, "lmrt_model_meta_format", &kv, NULL)) ||
        (st = api_require(out_len, "lmrt_model_meta_format", "out_len")))
        return st;
    if (!buf && cap)
        return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_model_meta_format: buf is NULL with cap %zu",
                         cap);
    /* Measure first, so that a buffer that is too small is left untouched. */
    text_out measure = {NULL, 0, 0};
    put_value(&measure, &kv->value, max_elems);
    if (measure.len >= cap) {
        *out_len = measure.len;
        return lmrt_fail(LMRT_E_BUFFER_TOO_SMALL, "lmrt_model_meta_format: '%s' needs %zu "
                         "bytes plus the NUL, the buffer holds %zu", key, measure.len, cap);
    }
    text_out t = {buf, cap, 0};
    put_value(&t, &kv->value, max_elems);
    buf[t.len] = '\0';
    *out_len = t.len;
    return LMRT_OK;
}

/* gguf.h - read-only view of a validated GGUF v2/v3 file.
 * After gguf_open*() succeeds every offset, size, count and string in the
 * returned gguf_file has been checked against the mapping, so users may index
 * freely within the stated bounds. Knows nothing about models. */
#ifndef LMRT_FORMAT_GGUF_H
#define LMRT_FORMAT_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmrt.h"

/* Metadata value types, numbered as in the GGUF spec (= LMRT_META_*). */
enum gguf_value_type {
    GGUF_TYPE_UINT8 = 0, GGUF_TYPE_INT8 = 1, GGUF_TYPE_UINT16 = 2, GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4, GGUF_TYPE_INT32 = 5, GGUF_TYPE_FLOAT32 = 6, GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8, GGUF_TYPE_ARRAY = 9, GGUF_TYPE_UINT64 = 10, GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT = 13
};

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

/* A string inside the file: not NUL-terminated, may contain any byte. */
typedef struct gguf_str {
    const char *ptr;
    uint64_t len;
} gguf_str;

typedef struct gguf_value {
    uint32_t type;                 /* enum gguf_value_type */
    union {
        uint64_t u64;              /* UINT8/16/32/64 */
        int64_t i64;               /* INT8/16/32/64 */
        double f64;                /* FLOAT32/64 */
        bool b;                    /* BOOL */
        gguf_str str;              /* STRING */
        struct {
            uint32_t elem_type;    /* any type but ARRAY (nested arrays are rejected) */
            uint64_t count;
            const uint8_t *data;   /* count packed elements of a fixed-size type */
            gguf_str *strs;        /* [count] for STRING elements, else NULL */
        } arr;                     /* ARRAY */
    } v;
} gguf_value;

typedef struct gguf_kv {
    char *key;                     /* NUL-terminated copy; keys are unique */
    uint64_t offset;               /* file offset of the key's length field */
    gguf_value value;
} gguf_kv;

typedef struct gguf_tensor {
    char *name;                    /* NUL-terminated copy; names are unique */
    uint32_t type;                 /* GGML type number, known to tensor/types */
    uint32_t n_dims;               /* 1..GGUF_MAX_DIMS */
    int64_t ne[GGUF_MAX_DIMS];     /* elements per dim; ne[0] contiguous; unused = 1 */
    int64_t n_elements;
    uint64_t offset;               /* relative to data_offset, aligned */
    uint64_t n_bytes;
    const uint8_t *data;           /* base + data_offset + offset, n_bytes readable */
} gguf_tensor;

typedef struct gguf_file {
    char *path;                    /* for messages; "<memory>" for buffers */
    const uint8_t *base;           /* the whole file, size bytes */
    uint64_t size;
    uint32_t version;              /* 2 or 3 */
    uint64_t alignment;
    uint64_t data_offset;          /* where tensor data starts */
    uint64_t n_kv;
    gguf_kv *kv;                   /* [n_kv], file order */
    uint64_t n_tensors;
    gguf_tensor *tensors;          /* [n_tensors], file order */
    /* how base is owned: */
    void *map;                     /* mmap'd region or NULL */
    size_t map_size;
    void *heap;                    /* read() fallback buffer or NULL */
} gguf_file;

/* Opens `path` through mmap (use_mmap) or read(). */
lmrt_status gguf_open(const char *path, bool use_mmap, gguf_file **out);
/* Parses a caller-owned buffer that outlives the returned file. */
lmrt_status gguf_open_memory(const void *data, size_t size, const char *name, gguf_file **out);
void gguf_close(gguf_file *f);

const gguf_kv *gguf_find(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Scalar reads with type widening; they fail with LMRT_E_FORMAT naming the key
 * when the stored type does not fit. Missing key: LMRT_E_NOT_FOUND. */
lmrt_status gguf_get_int(const gguf_file *f, const char *key, int64_t *out);
lmrt_status gguf_get_float(const gguf_file *f, const char *key, double *out);
lmrt_status gguf_get_bool(const gguf_file *f, const char *key, bool *out);
lmrt_status gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);

/* Element i (< count) of an array of a numeric or bool type, widened. */
int64_t gguf_array_int(const gguf_value *arr, uint64_t i);
double gguf_array_float(const gguf_value *arr, uint64_t i);

/* Byte size of one element of a fixed-size value type; 0 for STRING/ARRAY/unknown. */
size_t gguf_type_size(uint32_t type);
const char *gguf_type_name(uint32_t type);

#endif

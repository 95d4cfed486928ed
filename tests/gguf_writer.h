/* gguf_writer.h - builds GGUF files in memory for tests and fuzz seeds.
 * Writes exactly what it is told, valid or not: the *_raw calls and the header
 * overrides exist to make broken files. Aborts on out of memory (test code only;
 * it uses plain malloc so lmrt's allocation-failure injection never hits it). */
#ifndef LMRT_TESTS_GGUF_WRITER_H
#define LMRT_TESTS_GGUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer with little-endian appenders, for hand-made bytes. */
typedef struct gw_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} gw_buf;

void gw_buf_put(gw_buf *b, const void *bytes, size_t n);
void gw_buf_u8(gw_buf *b, uint8_t v);
void gw_buf_u32(gw_buf *b, uint32_t v);
void gw_buf_u64(gw_buf *b, uint64_t v);
void gw_buf_str(gw_buf *b, const char *s);                 /* u64 length + bytes */
void gw_buf_strn(gw_buf *b, const void *s, uint64_t len);  /* same, any bytes */
void gw_buf_zeros(gw_buf *b, size_t n);
void gw_buf_free(gw_buf *b);

typedef struct gguf_writer gguf_writer;

#define GW_MAX_DIMS 8

/* A writer for a version 3 file with the default alignment (32). */
gguf_writer *gw_new(void);
void gw_free(gguf_writer *w);

/* Header overrides. */
void gw_set_magic(gguf_writer *w, const char magic[4]);
void gw_set_version(gguf_writer *w, uint32_t version);
/* Writes these counts instead of the numbers of kvs and tensors appended. */
void gw_set_counts(gguf_writer *w, uint64_t n_kv, uint64_t n_tensors);
/* Appends the UINT32 kv "general.alignment" and lays out tensor data with it.
 * Call before the first gw_tensor. */
void gw_set_alignment(gguf_writer *w, uint32_t alignment);

/* Metadata, in file order. */
void gw_kv_u8(gguf_writer *w, const char *key, uint8_t v);
void gw_kv_i8(gguf_writer *w, const char *key, int8_t v);
void gw_kv_u16(gguf_writer *w, const char *key, uint16_t v);
void gw_kv_i16(gguf_writer *w, const char *key, int16_t v);
void gw_kv_u32(gguf_writer *w, const char *key, uint32_t v);
void gw_kv_i32(gguf_writer *w, const char *key, int32_t v);
void gw_kv_u64(gguf_writer *w, const char *key, uint64_t v);
void gw_kv_i64(gguf_writer *w, const char *key, int64_t v);
void gw_kv_f32(gguf_writer *w, const char *key, float v);
void gw_kv_f64(gguf_writer *w, const char *key, double v);
void gw_kv_bool(gguf_writer *w, const char *key, bool v);
void gw_kv_str(gguf_writer *w, const char *key, const char *s);
void gw_kv_strn(gguf_writer *w, const char *key, const void *s, uint64_t len);
/* An array of a fixed-size type: `elems` is a C array of the matching type
 * (uint8_t, int16_t, float, ...; bool is one byte). */
void gw_kv_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *elems,
               uint64_t count);
void gw_kv_arr_str(gguf_writer *w, const char *key, const char *const *strs, uint64_t count);
/* key + type + `len` value bytes exactly as given. */
void gw_kv_raw(gguf_writer *w, const char *key, uint32_t type, const void *value, size_t len);
/* One whole kv pair encoded by the caller (it counts as one kv). */
void gw_raw_kv(gguf_writer *w, const void *bytes, size_t len);

/* A tensor with its data (NULL: a fixed byte pattern), placed at the next
 * aligned offset of the data section. dims[0] is the contiguous one. */
void gw_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
               const int64_t *dims, const void *data);
/* A tensor info written verbatim (any name bytes, n_dims, dims, type, offset);
 * no data is added for it. At most GW_MAX_DIMS dims are read from `dims` and
 * written, whatever n_dims says. */
void gw_tensor_raw(gguf_writer *w, const void *name, size_t name_len, uint32_t type,
                   uint32_t n_dims, const uint64_t *dims, uint64_t offset);
/* Appends n zero bytes to the data section (room for gw_tensor_raw data). */
void gw_data_pad(gguf_writer *w, size_t n);
/* The data-section offset the next gw_tensor would get. */
uint64_t gw_next_offset(const gguf_writer *w);

/* The file: header, kvs, tensor infos, padding to the alignment, data. The data
 * section has no padding after its last byte, so the last tensor ends the file.
 * Returns a malloc'd buffer (free() it); the writer stays usable. */
uint8_t *gw_finish(const gguf_writer *w, size_t *out_size);
/* gw_finish into a file; 0 on success, -1 on an I/O error. */
int gw_write_file(const gguf_writer *w, const char *path);

#endif

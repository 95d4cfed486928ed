/* make_seeds.c - writes the GGUF fuzz seed corpus with the test writer:
 * `make_seeds DIR` creates small valid and near-valid files in DIR.
 * The committed tests/fuzz/corpus/gguf/ was made with it. */
#include <stdio.h>
#include <stdlib.h>

#include "format/gguf.h"
#include "../gguf_writer.h"
#include "tensor/types.h"

static int save(gguf_writer *w, const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, name);
    int rc = gw_write_file(w, path);
    if (rc != 0)
        fprintf(stderr, "make_seeds: cannot write %s\n", path);
    gw_free(w);
    return rc;
}

static void add_metadata(gguf_writer *w)
{
    static const int32_t ints[] = {1, -2, 3};
    static const float floats[] = {0.5f, -1.0f};
    static const bool bools[] = {true, false};
    static const char *const strs[] = {"<s>", "", "hello"};
    gw_kv_str(w, "general.architecture", "llama");
    gw_kv_u8(w, "a.u8", 1);
    gw_kv_i8(w, "a.i8", -1);
    gw_kv_u16(w, "a.u16", 2);
    gw_kv_i16(w, "a.i16", -2);
    gw_kv_u32(w, "llama.block_count", 2);
    gw_kv_i32(w, "a.i32", -3);
    gw_kv_f32(w, "a.f32", 1e-5f);
    gw_kv_bool(w, "a.bool", true);
    gw_kv_u64(w, "a.u64", 4);
    gw_kv_i64(w, "a.i64", -4);
    gw_kv_f64(w, "a.f64", 0.25);
    gw_kv_arr(w, "a.ints", GGUF_TYPE_INT32, ints, 3);
    gw_kv_arr(w, "a.floats", GGUF_TYPE_FLOAT32, floats, 2);
    gw_kv_arr(w, "a.bools", GGUF_TYPE_BOOL, bools, 2);
    gw_kv_arr_str(w, "tokenizer.ggml.tokens", strs, 3);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    int rc = 0;

    gguf_writer *w = gw_new();   /* every value type and three tensor types */
    add_metadata(w);
    gw_tensor(w, "tok.f32", GGML_TYPE_F32, 2, (const int64_t[]){4, 3}, NULL);
    gw_tensor(w, "blk.0.q4_0", GGML_TYPE_Q4_0, 1, (const int64_t[]){32}, NULL);
    gw_tensor(w, "blk.0.f16", GGML_TYPE_F16, 3, (const int64_t[]){2, 2, 2}, NULL);
    rc |= save(w, dir, "full");

    w = gw_new();                /* metadata only, version 2 */
    gw_set_version(w, 2);
    add_metadata(w);
    rc |= save(w, dir, "meta_v2");

    w = gw_new();                /* custom alignment, 4-d tensors, K-quant and Q8_0 */
    gw_set_alignment(w, 64);
    gw_tensor(w, "q8", GGML_TYPE_Q8_0, 4, (const int64_t[]){32, 1, 1, 2}, NULL);
    gw_tensor(w, "q4k", GGML_TYPE_Q4_K, 1, (const int64_t[]){256}, NULL);
    gw_tensor(w, "bf16", GGML_TYPE_BF16, 1, (const int64_t[]){8}, NULL);
    rc |= save(w, dir, "aligned64");

    w = gw_new();                /* empty */
    rc |= save(w, dir, "empty");

    w = gw_new();                /* near-valid: overlapping tensors */
    gw_kv_u32(w, "llama.block_count", 1);
    gw_tensor_raw(w, "a", 1, GGML_TYPE_F32, 1, (const uint64_t[]){16}, 0);
    gw_tensor_raw(w, "b", 1, GGML_TYPE_F32, 1, (const uint64_t[]){8}, 32);
    gw_data_pad(w, 64);
    rc |= save(w, dir, "overlap");

    w = gw_new();                /* near-valid: a nested array */
    static const uint8_t nested[] = {9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                                     0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7};
    gw_kv_raw(w, "nest", GGUF_TYPE_ARRAY, nested, sizeof nested);
    rc |= save(w, dir, "nested_array");
    return rc ? 1 : 0;
}

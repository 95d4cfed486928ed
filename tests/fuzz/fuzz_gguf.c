/* fuzz_gguf.c - libFuzzer harness for the GGUF reader: any input either fails
 * cleanly or yields a file whose every string, array element and tensor range
 * is readable (ASan checks each touch). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "format/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void touch(const void *p, uint64_t n)
{
    const uint8_t *b = p;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++)
        sum += b[i];
    sink += sum;
}

static void walk_value(const gguf_value *v)
{
    switch (v->type) {
    case GGUF_TYPE_STRING:
        touch(v->v.str.ptr, v->v.str.len);
        break;
    case GGUF_TYPE_ARRAY:
        if (v->v.arr.elem_type == GGUF_TYPE_STRING) {
            for (uint64_t i = 0; i < v->v.arr.count; i++)
                touch(v->v.arr.strs[i].ptr, v->v.arr.strs[i].len);
        } else {
            for (uint64_t i = 0; i < v->v.arr.count; i++)
                sink += (uint64_t)gguf_array_int(v, i) + (uint64_t)(gguf_array_float(v, i) != 0);
        }
        break;
    default:
        sink += v->v.u64;
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_file *f = NULL;
    if (gguf_open_memory(data, size, "fuzz.gguf", &f) != LMRT_OK)
        return 0;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        touch(kv->key, strlen(kv->key) + 1);
        walk_value(&kv->value);
        int64_t iv;
        double dv;
        bool bv;
        gguf_str sv;
        (void)gguf_get_int(f, kv->key, &iv);
        (void)gguf_get_float(f, kv->key, &dv);
        (void)gguf_get_bool(f, kv->key, &bv);
        (void)gguf_get_str(f, kv->key, &sv);
        if (gguf_find(f, kv->key) != kv)
            __builtin_trap();   /* keys must be unique */
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        touch(t->name, strlen(t->name) + 1);
        if (t->n_bytes == 0 || t->data < f->base || t->n_bytes > f->size ||
            (uint64_t)(t->data - f->base) > f->size - t->n_bytes)
            __builtin_trap();   /* data must lie inside the file */
        sink += t->data[0] + t->data[t->n_bytes - 1];
        if (gguf_find_tensor(f, t->name) != t)
            __builtin_trap();
    }
    gguf_close(f);
    return 0;
}

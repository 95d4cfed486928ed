/* test_api.c - the public API as a caller sees it: versions, status strings,
 * size-versioned structs, model loading and info, metadata reads, contexts,
 * the capability query, handle lifetimes, and calls that are not available yet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "gguf_writer.h"
#include "lmrt.h"

#define STORIES LMRT_SOURCE_ROOT "/lib/model/builtin/stories260K.gguf"
#define VOCAB_BPE LMRT_SOURCE_ROOT "/tests/data/ggml-vocab-llama-bpe.gguf"

static lmrt_model *load_builtin(void)
{
    lmrt_model *m = NULL;
    assert_int_equal(lmrt_model_load_builtin(NULL, &m), LMRT_OK);
    assert_non_null(m);
    return m;
}

static void version_matches_header(void **state)
{
    (void)state;
    assert_int_equal(lmrt_abi_version(), LMRT_ABI_VERSION);
    assert_string_equal(lmrt_version(), "0.1.0");
}

static void status_strings_are_stable_names(void **state)
{
    (void)state;
    assert_string_equal(lmrt_status_str(LMRT_OK), "LMRT_OK");
    assert_string_equal(lmrt_status_str(LMRT_E_FORMAT), "LMRT_E_FORMAT");
    assert_string_equal(lmrt_status_str(LMRT_E_NOT_LICENSED), "LMRT_E_NOT_LICENSED");
    assert_string_equal(lmrt_status_str(-999), "LMRT_E_UNKNOWN");
    /* The numbers are part of the ABI. */
    assert_int_equal(LMRT_E_INVALID_ARG, -1);
    assert_int_equal(LMRT_E_FORMAT, -4);
    assert_int_equal(LMRT_E_UNSUPPORTED, -5);
    assert_int_equal(LMRT_E_NOT_LICENSED, -7);
    assert_int_equal(LMRT_E_CONTEXT_FULL, -8);
    assert_int_equal(LMRT_E_INTERNAL, -14);
}

static void init_writes_defaults_and_the_callers_size(void **state)
{
    (void)state;
    lmrt_sampler_params sp;
    memset(&sp, 0xAB, sizeof sp);
    lmrt_sampler_params_init(&sp, sizeof sp);
    assert_int_equal(sp.size, sizeof sp);
    assert_true(sp.temperature > 0.79f && sp.temperature < 0.81f);
    assert_int_equal(sp.top_k, 40);
    assert_int_equal(sp.repeat_last_n, 64);

    /* An older caller with a smaller struct: exactly its bytes are written. */
    unsigned char buf[64];
    memset(buf, 0xCD, sizeof buf);
    size_t old_size = offsetof(lmrt_model_params, use_mmap);
    lmrt_model_params_init((lmrt_model_params *)buf, old_size);
    size_t stored;
    memcpy(&stored, buf, sizeof stored);
    assert_int_equal(stored, old_size);
    for (size_t i = old_size; i < sizeof buf; i++)
        assert_int_equal(buf[i], 0xCD);

    lmrt_model_params_init(NULL, sizeof(lmrt_model_params)); /* ignored, no crash */
}

static void garbage_size_field_is_invalid_arg(void **state)
{
    (void)state;
    lmrt_model_params p;
    lmrt_model_params_init(&p, sizeof p);
    p.size = 3;
    lmrt_model *m = (lmrt_model *)0x1;
    assert_int_equal(lmrt_model_load(STORIES, &p, &m), LMRT_E_INVALID_ARG);
    assert_ptr_equal(m, (lmrt_model *)0x1); /* untouched on failure */
    assert_non_null(strstr(lmrt_last_error(), "size"));
}

static void builtin_model_info_is_stories260k(void **state)
{
    (void)state;
    lmrt_model *m = load_builtin();
    lmrt_model_info info;
    lmrt_model_info_init(&info, sizeof info);
    assert_int_equal(lmrt_model_get_info(m, &info), LMRT_OK);
    assert_string_equal(info.architecture, "llama");
    assert_string_equal(info.file_type, "F32");
    assert_int_equal(info.n_layer, 5);
    assert_int_equal(info.n_embd, 64);
    assert_int_equal(info.n_head, 8);
    assert_int_equal(info.n_head_kv, 4);
    assert_int_equal(info.n_ff, 172);
    assert_int_equal(info.n_ctx_train, 2048);
    assert_int_equal(info.n_vocab, 512);
    assert_int_equal(info.n_tensors, 48);
    assert_int_equal(info.n_metadata, 19);
    assert_int_equal(info.gguf_version, 3);
    assert_int_equal(info.modalities, LMRT_MODALITY_TEXT);
    /* 512*64*2 (embd, output) + 64 (norm) + 5 * (64*64*2 + 64*32*2 + 2*64 + 3*64*172) */
    assert_int_equal(info.n_params, 512 * 64 * 2 + 64 + 5 * (64 * 64 * 2 + 64 * 32 * 2 + 2 * 64 +
                                                              3 * 64 * 172));
    assert_int_equal(info.n_bytes, info.n_params * 4);
    lmrt_model_free(m);
}

static void file_and_memory_loads_agree(void **state)
{
    (void)state;
    lmrt_model_params p;
    lmrt_model_params_init(&p, sizeof p);
    for (int mmap = 0; mmap < 2; mmap++) {
        p.use_mmap = mmap;
        lmrt_model *m = NULL;
        assert_int_equal(lmrt_model_load(STORIES, &p, &m), LMRT_OK);
        lmrt_tensor_info t;
        lmrt_tensor_info_init(&t, sizeof t);
        assert_int_equal(lmrt_model_tensor_info(m, 0, &t), LMRT_OK);
        assert_string_equal(t.name, "token_embd.weight");
        assert_string_equal(t.type_name, "F32");
        assert_int_equal(t.n_dims, 2);
        assert_int_equal(t.dims[0], 64);
        assert_int_equal(t.dims[1], 512);
        assert_int_equal(t.n_bytes, 64 * 512 * 4);
        assert_int_equal(t.offset % 32, 0);
        assert_int_equal(lmrt_model_tensor_info(m, 48, &t), LMRT_E_NOT_FOUND);
        lmrt_model_free(m);
    }
}

static void metadata_reads_by_type(void **state)
{
    (void)state;
    lmrt_model *m = load_builtin();
    int64_t i = 0;
    double f = 0;
    const char *s = NULL;
    assert_int_equal(lmrt_model_meta_int(m, "llama.block_count", &i), LMRT_OK);
    assert_int_equal(i, 5);
    assert_int_equal(lmrt_model_meta_float(m, "llama.attention.layer_norm_rms_epsilon", &f),
                     LMRT_OK);
    assert_true(f > 0.99e-5 && f < 1.01e-5);
    assert_int_equal(lmrt_model_meta_string(m, "tokenizer.ggml.model", &s), LMRT_OK);
    assert_string_equal(s, "llama");
    /* Wrong type and missing key. */
    assert_int_equal(lmrt_model_meta_int(m, "tokenizer.ggml.model", &i), LMRT_E_INVALID_ARG);
    assert_int_equal(lmrt_model_meta_int(m, "no.such.key", &i), LMRT_E_NOT_FOUND);
    assert_non_null(strstr(lmrt_last_error(), "no.such.key"));
    /* Arrays. */
    int32_t type, elem;
    int64_t count;
    assert_int_equal(lmrt_model_meta_type(m, "tokenizer.ggml.tokens", &type, &elem, &count),
                     LMRT_OK);
    assert_int_equal(type, LMRT_META_ARRAY);
    assert_int_equal(elem, LMRT_META_STRING);
    assert_int_equal(count, 512);
    const char *bytes;
    size_t len;
    assert_int_equal(lmrt_model_meta_array_string(m, "tokenizer.ggml.tokens", 1, &bytes, &len),
                     LMRT_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(bytes, "<s>", 3);
    assert_int_equal(lmrt_model_meta_array_int(m, "tokenizer.ggml.token_type", 3, &i), LMRT_OK);
    assert_int_equal(i, 6);
    assert_int_equal(lmrt_model_meta_array_int(m, "tokenizer.ggml.token_type", 512, &i),
                     LMRT_E_NOT_FOUND);
    assert_int_equal(lmrt_model_meta_array_float(m, "tokenizer.ggml.scores", 0, &f), LMRT_OK);
    lmrt_model_free(m);
}

static void meta_format_renders_and_reports_size(void **state)
{
    (void)state;
    lmrt_model *m = load_builtin();
    char buf[256];
    size_t len = 0;
    assert_int_equal(lmrt_model_meta_format(m, "tokenizer.ggml.tokens", 3, buf, sizeof buf, &len),
                     LMRT_OK);
    assert_string_equal(buf, "[\"<unk>\", \"<s>\", \"</s>\", ... 509 more]");
    assert_int_equal(len, strlen(buf));
    assert_int_equal(lmrt_model_meta_format(m, "llama.block_count", 8, buf, sizeof buf, &len),
                     LMRT_OK);
    assert_string_equal(buf, "5");
    char small[4] = "xyz";
    assert_int_equal(lmrt_model_meta_format(m, "general.architecture", 8, small, 4, &len),
                     LMRT_E_BUFFER_TOO_SMALL);
    assert_int_equal(len, strlen("\"llama\""));
    assert_string_equal(small, "xyz"); /* untouched */
    lmrt_model_free(m);
}

static void vocab_only_file_loads_without_modalities(void **state)
{
    (void)state;
    lmrt_model *m = NULL;
    assert_int_equal(lmrt_model_load(VOCAB_BPE, NULL, &m), LMRT_OK);
    lmrt_model_info info;
    lmrt_model_info_init(&info, sizeof info);
    assert_int_equal(lmrt_model_get_info(m, &info), LMRT_OK);
    assert_int_equal(info.n_vocab, 128256);
    assert_int_equal(info.n_tensors, 0);
    assert_int_equal(info.modalities, 0);
    int32_t bos = -1;
    assert_int_equal(lmrt_model_special_token(m, LMRT_TOKEN_BOS, &bos), LMRT_OK);
    assert_int_equal(bos, 128000);
    assert_true(lmrt_model_token_is_eog(m, 128001));
    assert_false(lmrt_model_token_is_eog(m, 128000));
    lmrt_model_free(m);
}

static void bad_arguments_are_invalid_arg(void **state)
{
    (void)state;
    lmrt_model *m = NULL;
    assert_int_equal(lmrt_model_load(NULL, NULL, &m), LMRT_E_INVALID_ARG);
    assert_int_equal(lmrt_model_load(STORIES, NULL, NULL), LMRT_E_INVALID_ARG);
    assert_int_equal(lmrt_model_get_info(NULL, NULL), LMRT_E_INVALID_ARG);
    assert_int_equal(lmrt_model_load("/nonexistent/model.gguf", NULL, &m), LMRT_E_IO);
    assert_non_null(strstr(lmrt_last_error(), "/nonexistent/model.gguf"));
    assert_null(m);
    lmrt_model_free(NULL);
    lmrt_context_free(NULL);
    lmrt_session_free(NULL);
    lmrt_free(NULL);
}

static lmrt_context *context_in(lmrt_model *m, const char *region, const char *policy)
{
    lmrt_context_params cp;
    lmrt_context_params_init(&cp, sizeof cp);
    cp.region = region;
    cp.policy = policy;
    lmrt_context *ctx = NULL;
    assert_int_equal(lmrt_context_create(m, &cp, &ctx), LMRT_OK);
    return ctx;
}

/* A tiny model with a decoder, vision ("v.") and audio ("a.") tensors. */
static lmrt_model *load_multimodal(uint8_t **bytes_out, const char *const *deny_audio,
                                   size_t n_deny)
{
    gguf_writer *w = gw_new();
    gw_kv_str(w, "general.architecture", "llama");
    if (n_deny)
        gw_kv_arr_str(w, "lmrt.policy.audio.deny", deny_audio, n_deny);
    int64_t dims[2] = {32, 4};
    gw_tensor(w, "token_embd.weight", 0, 2, dims, NULL);
    gw_tensor(w, "blk.0.attn_q.weight", 0, 2, dims, NULL);
    gw_tensor(w, "v.patch_embd.weight", 0, 2, dims, NULL);
    gw_tensor(w, "a.conv1d.1.weight", 0, 2, dims, NULL);
    size_t size;
    *bytes_out = gw_finish(w, &size);
    gw_free(w);
    lmrt_model *m = NULL;
    assert_int_equal(lmrt_model_load_memory(*bytes_out, size, NULL, &m), LMRT_OK);
    return m;
}

static void capabilities_follow_region(void **state)
{
    (void)state;
    uint8_t *bytes;
    lmrt_model *m = load_multimodal(&bytes, NULL, 0);
    lmrt_capabilities c;
    lmrt_capabilities_init(&c, sizeof c);
    uint32_t all = LMRT_MODALITY_TEXT | LMRT_MODALITY_IMAGE | LMRT_MODALITY_AUDIO;

    assert_int_equal(lmrt_query_capabilities(m, "us", &c), LMRT_OK);
    assert_string_equal(c.region, "US");
    assert_true(c.region_known);
    assert_int_equal(c.modalities_present, all);
    assert_int_equal(c.modalities_licensed, all);
    assert_string_equal(c.version, lmrt_version());
    assert_true(c.backends & LMRT_BACKEND_CPU);
    assert_true(c.cpu_simd[0] != '\0');

    assert_int_equal(lmrt_query_capabilities(m, "DE", &c), LMRT_OK);
    assert_true(c.region_in_eu);
    assert_int_equal(c.modalities_licensed, LMRT_MODALITY_TEXT);
    assert_string_equal(c.withheld_reason[1], "image withheld in DE: multimodal models are not "
                        "licensed in the European Union (default policy)");
    assert_string_equal(c.withheld_reason[0], "");

    assert_int_equal(lmrt_query_capabilities(m, NULL, &c), LMRT_OK);
    assert_false(c.region_known);
    assert_int_equal(c.modalities_licensed, LMRT_MODALITY_TEXT);

    assert_int_equal(lmrt_query_capabilities(m, "XX", &c), LMRT_OK);
    assert_int_equal(c.modalities_licensed, LMRT_MODALITY_TEXT);

    lmrt_capabilities before = c;
    assert_int_equal(lmrt_query_capabilities(m, "DEU", &c), LMRT_E_INVALID_ARG);
    assert_memory_equal(&c, &before, sizeof c);
    assert_non_null(strstr(lmrt_last_error(), "DEU"));
    lmrt_model_free(m);
    free(bytes);
}

static void model_and_deployer_policies_only_narrow(void **state)
{
    (void)state;
    uint8_t *bytes;
    const char *deny[] = {"US"};
    lmrt_model *m = load_multimodal(&bytes, deny, 1);
    lmrt_capabilities c;
    lmrt_capabilities_init(&c, sizeof c);
    assert_int_equal(lmrt_query_capabilities(m, "US", &c), LMRT_OK);
    assert_int_equal(c.modalities_licensed, LMRT_MODALITY_TEXT | LMRT_MODALITY_IMAGE);
    assert_non_null(strstr(c.withheld_reason[2], "model policy"));

    /* A deployer allow-list narrows image to JP; an allow line for DE cannot widen. */
    lmrt_context *us = context_in(m, "US", "allow image JP\nallow audio DE\n");
    assert_int_equal(lmrt_context_capabilities(us, &c), LMRT_OK);
    assert_int_equal(c.modalities_licensed, LMRT_MODALITY_TEXT);
    lmrt_context *de = context_in(m, "DE", "allow image DE\n");
    assert_int_equal(lmrt_context_capabilities(de, &c), LMRT_OK);
    assert_int_equal(c.modalities_licensed, LMRT_MODALITY_TEXT);
    lmrt_context_free(us);
    lmrt_context_free(de);

    lmrt_context_params cp;
    lmrt_context_params_init(&cp, sizeof cp);
    cp.region = "US";
    cp.policy = "deny image\n";
    lmrt_context *ctx = NULL;
    assert_int_equal(lmrt_context_create(m, &cp, &ctx), LMRT_E_INVALID_ARG);
    assert_null(ctx);
    assert_non_null(strstr(lmrt_last_error(), "line 1"));
    lmrt_model_free(m);
    free(bytes);
}

static void context_rejects_bad_params(void **state)
{
    (void)state;
    lmrt_model *m = load_builtin();
    lmrt_context_params cp;
    lmrt_context_params_init(&cp, sizeof cp);
    lmrt_context *ctx = NULL;
    cp.region = "1A";
    assert_int_equal(lmrt_context_create(m, &cp, &ctx), LMRT_E_INVALID_ARG);
    cp.region = "US";
    cp.n_threads = -1;
    assert_int_equal(lmrt_context_create(m, &cp, &ctx), LMRT_E_INVALID_ARG);
    cp.n_threads = 0;
    cp.backend = 77;
    assert_int_equal(lmrt_context_create(m, &cp, &ctx), LMRT_E_INVALID_ARG);
    cp.backend = LMRT_BACKEND_CPU;
    cp.device = 1;
    assert_int_equal(lmrt_context_create(m, &cp, &ctx), LMRT_E_NOT_FOUND);
    assert_null(ctx);
    lmrt_model_free(m);
}

static void context_outliving_its_model_is_invalid_state(void **state)
{
    (void)state;
    lmrt_model *m = load_builtin();
    lmrt_context *ctx = context_in(m, "US", NULL);
    lmrt_model_free(m); /* the context keeps the memory alive */
    lmrt_capabilities c;
    lmrt_capabilities_init(&c, sizeof c);
    assert_int_equal(lmrt_context_capabilities(ctx, &c), LMRT_E_INVALID_STATE);
    lmrt_session *s = NULL;
    assert_int_equal(lmrt_session_create(ctx, NULL, &s), LMRT_E_INVALID_STATE);
    assert_null(s);
    lmrt_context_free(ctx);
}

static void devices_are_listed(void **state)
{
    (void)state;
    int32_t n = -1;
    assert_int_equal(lmrt_device_count(LMRT_BACKEND_CPU, &n), LMRT_OK);
    assert_int_equal(n, 1);
    lmrt_device_info d;
    lmrt_device_info_init(&d, sizeof d);
    assert_int_equal(lmrt_device_get_info(LMRT_BACKEND_CPU, 0, &d), LMRT_OK);
    assert_int_equal(d.backend, LMRT_BACKEND_CPU);
    assert_true(d.name[0] != '\0');
    assert_true(d.total_memory > 0);
    assert_int_equal(lmrt_device_get_info(LMRT_BACKEND_CPU, 1, &d), LMRT_E_NOT_FOUND);
    assert_int_equal(lmrt_device_count(LMRT_BACKEND_CUDA, &n), LMRT_OK);
}

static int log_calls;
static char log_last[1024];
static void record_log(void *user, int32_t level, const char *message)
{
    assert_ptr_equal(user, &log_calls);
    assert_int_equal(level, LMRT_LOG_INFO);
    log_calls++;
    snprintf(log_last, sizeof log_last, "%s", message);
}

static void log_callback_gets_messages_at_its_level_only(void **state)
{
    (void)state;
    lmrt_set_log_callback(record_log, &log_calls, LMRT_LOG_WARN);
    lmrt_model *m = load_builtin();
    lmrt_model_free(m);
    assert_int_equal(log_calls, 0);
    lmrt_set_log_callback(record_log, &log_calls, LMRT_LOG_INFO);
    m = load_builtin();
    lmrt_model_free(m);
    assert_int_equal(log_calls, 1);
    assert_non_null(strstr(log_last, "stories260K"));
    assert_non_null(strstr(log_last, "48 tensors"));
    lmrt_set_log_callback(NULL, NULL, LMRT_LOG_ERROR);
    m = load_builtin();
    lmrt_model_free(m);
    assert_int_equal(log_calls, 1);
}

static void allocation_failures_are_nomem_and_leak_nothing(void **state)
{
    (void)state;
    for (long n = 0;; n++) {
        lmrt_alloc_fail_after(n);
        lmrt_model *m = NULL;
        lmrt_status st = lmrt_model_load(STORIES, NULL, &m);
        lmrt_context *ctx = NULL;
        if (st == LMRT_OK) {
            lmrt_context_params cp;
            lmrt_context_params_init(&cp, sizeof cp);
            cp.region = "FR";
            cp.policy = "deny audio US  # deployer reason\n";
            st = lmrt_context_create(m, &cp, &ctx);
        }
        lmrt_alloc_fail_after(-1);
        lmrt_context_free(ctx);
        lmrt_model_free(m);
        if (st == LMRT_OK)
            break;
        assert_int_equal(st, LMRT_E_NOMEM);
        assert_true(n < 100000);
    }
}

static void vocab_only_model_has_no_sessions(void **state)
{
    (void)state;
    lmrt_model *m = NULL;
    assert_int_equal(lmrt_model_load(VOCAB_BPE, NULL, &m), LMRT_OK);
    lmrt_context *ctx = context_in(m, "US", NULL);
    lmrt_session *s = NULL;
    assert_int_equal(lmrt_session_create(ctx, NULL, &s), LMRT_E_UNSUPPORTED);
    assert_non_null(strstr(lmrt_last_error(), "no text decoder"));
    assert_null(s);
    lmrt_context_free(ctx);
    lmrt_model_free(m);
}

static void media_is_checked_for_licence_before_anything_else(void **state)
{
    (void)state;
    lmrt_model *m = load_builtin();
    lmrt_context *de = context_in(m, "DE", NULL);
    lmrt_context *us = context_in(m, "US", NULL);
    lmrt_session *s_de = NULL, *s_us = NULL;
    assert_int_equal(lmrt_session_create(de, NULL, &s_de), LMRT_OK);
    assert_int_equal(lmrt_session_create(us, NULL, &s_us), LMRT_OK);
    /* Not licensed in Germany, whatever the input (even NULL) and the model. */
    assert_int_equal(lmrt_session_feed_image_file(s_de, NULL), LMRT_E_NOT_LICENSED);
    assert_non_null(strstr(lmrt_last_error(), "image withheld in DE"));
    assert_int_equal(lmrt_session_feed_audio_pcm(s_de, NULL, 0, 16000), LMRT_E_NOT_LICENSED);
    /* Licensed in the US, but this model has no encoders. */
    assert_int_equal(lmrt_session_feed_image_file(s_us, "x.png"), LMRT_E_UNSUPPORTED);
    assert_non_null(strstr(lmrt_last_error(), "no image encoder"));
    lmrt_session_free(s_de);
    lmrt_session_free(s_us);
    lmrt_context_free(de);
    lmrt_context_free(us);
    lmrt_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_matches_header),
        cmocka_unit_test(status_strings_are_stable_names),
        cmocka_unit_test(init_writes_defaults_and_the_callers_size),
        cmocka_unit_test(garbage_size_field_is_invalid_arg),
        cmocka_unit_test(builtin_model_info_is_stories260k),
        cmocka_unit_test(file_and_memory_loads_agree),
        cmocka_unit_test(metadata_reads_by_type),
        cmocka_unit_test(meta_format_renders_and_reports_size),
        cmocka_unit_test(vocab_only_file_loads_without_modalities),
        cmocka_unit_test(bad_arguments_are_invalid_arg),
        cmocka_unit_test(capabilities_follow_region),
        cmocka_unit_test(model_and_deployer_policies_only_narrow),
        cmocka_unit_test(context_rejects_bad_params),
        cmocka_unit_test(context_outliving_its_model_is_invalid_state),
        cmocka_unit_test(devices_are_listed),
        cmocka_unit_test(log_callback_gets_messages_at_its_level_only),
        cmocka_unit_test(allocation_failures_are_nomem_and_leak_nothing),
        cmocka_unit_test(vocab_only_model_has_no_sessions),
        cmocka_unit_test(media_is_checked_for_licence_before_anything_else),
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}

/* test_policy.c - region table, region parsing and the layered licensing policy:
 * the default EU rule, fail-closed regions, deployer text, GGUF model policy,
 * their combination (strictest wins) and allocation failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/error.h"
#include "format/gguf.h"
#include "policy/policy.h"
#include "policy/regions.h"
#include "gguf_writer.h"

#define TEXT LMRT_MODALITY_TEXT
#define IMAGE LMRT_MODALITY_IMAGE
#define AUDIO LMRT_MODALITY_AUDIO
#define ALL_MODALITIES (TEXT | IMAGE | AUDIO)

static const char *const eu_members[27] = {
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "IE", "IT",
    "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "HU",
};

/* Decides for `code` (NULL: unset) with the given extra layers; fails the test on error. */
static policy_decision decide(const char *code, const policy_layer *const *layers, size_t n,
                              uint32_t present)
{
    region_code rc;
    assert_int_equal(region_parse(code, &rc), LMRT_OK);
    policy_decision d;
    assert_int_equal(policy_decide(layers, n, &rc, present, &d), LMRT_OK);
    return d;
}

static policy_layer *parse_ok(const char *text, const char *origin)
{
    policy_layer *layer = NULL;
    lmrt_status st = policy_parse_text(text, origin, &layer);
    if (st != LMRT_OK)
        fail_msg("policy_parse_text: %s", lmrt_last_error());
    return layer;
}

/* ---- regions ------------------------------------------------------------ */

static void table_has_249_sorted_codes_27_in_eu_and_30_in_eea(void **state)
{
    (void)state;
    size_t n = 0;
    const region_info *t = region_table(&n);
    assert_int_equal(n, 249);
    size_t eu = 0, eea = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(strlen(t[i].code), 2);
        assert_true(t[i].code[0] >= 'A' && t[i].code[0] <= 'Z');
        assert_true(t[i].code[1] >= 'A' && t[i].code[1] <= 'Z');
        assert_non_null(t[i].name);
        assert_true(t[i].name[0] != '\0');
        if (i > 0)
            assert_true(strcmp(t[i - 1].code, t[i].code) < 0);   /* sorted, unique */
        if (t[i].flags & REGION_EU) {
            eu++;
            assert_true(t[i].flags & REGION_EEA);   /* every EU member is in the EEA */
        }
        if (t[i].flags & REGION_EEA)
            eea++;
        assert_ptr_equal(region_lookup(t[i].code), &t[i]);
    }
    assert_int_equal(eu, 27);
    assert_int_equal(eea, 30);
}

static void eu_flags_are_exactly_the_27_member_states(void **state)
{
    (void)state;
    for (size_t i = 0; i < 27; i++) {
        assert_true(region_is_eu(eu_members[i]));
        assert_true(region_is_eea(eu_members[i]));
        assert_true(region_group_contains("EU", eu_members[i]));
    }
    const char *not_eu[] = {"GB", "CH", "NO", "IS", "LI", "US", "TR", "AX", "GL"};
    for (size_t i = 0; i < sizeof not_eu / sizeof not_eu[0]; i++)
        assert_false(region_is_eu(not_eu[i]));
    assert_true(region_is_eea("NO") && region_is_eea("IS") && region_is_eea("LI"));
    assert_false(region_is_eea("CH"));
    assert_false(region_is_eea("GB"));
}

static void names_are_english_short_names(void **state)
{
    (void)state;
    assert_string_equal(region_name("DE"), "Germany");
    assert_string_equal(region_name("us"), "United States");
    assert_string_equal(region_name("GB"), "United Kingdom");
    assert_string_equal(region_name("CI"), "C\xc3\xb4te d'Ivoire");
    assert_null(region_name("XX"));
    assert_null(region_name("EU"));   /* reserved, not assigned */
    assert_null(region_name("DEU"));
    assert_null(region_name(NULL));
}

static void groups_expand_to_their_members(void **state)
{
    (void)state;
    assert_true(region_group_contains("EU", "de"));
    assert_true(region_group_contains("eu", "DE"));
    assert_false(region_group_contains("EU", "NO"));
    assert_true(region_group_contains("EEA", "NO"));
    assert_true(region_group_contains("EEA", "FR"));
    assert_false(region_group_contains("EEA", "CH"));
    assert_true(region_group_contains("ALL", "XX"));
    assert_true(region_group_contains("DE", "de"));   /* a code contains itself */
    assert_false(region_group_contains("DE", "AT"));
    assert_false(region_group_contains("NATO", "DE"));
    assert_false(region_group_contains("EU", "D"));
    assert_false(region_group_contains(NULL, "DE"));
}

static void lowercase_region_is_accepted_and_upper_cased(void **state)
{
    (void)state;
    region_code rc;
    assert_int_equal(region_parse("de", &rc), LMRT_OK);
    assert_string_equal(rc.code, "DE");
    assert_true(rc.known);
    assert_int_equal(region_parse("uS", &rc), LMRT_OK);
    assert_string_equal(rc.code, "US");
    assert_true(rc.known);
}

static void unassigned_code_is_well_formed_but_unknown(void **state)
{
    (void)state;
    const char *codes[] = {"XX", "ZZ", "eu", "AA"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        region_code rc;
        assert_int_equal(region_parse(codes[i], &rc), LMRT_OK);
        assert_false(rc.known);
        assert_int_equal(strlen(rc.code), 2);
    }
}

static void null_and_empty_region_are_unset(void **state)
{
    (void)state;
    region_code rc;
    memset(&rc, 'x', sizeof rc);
    assert_int_equal(region_parse(NULL, &rc), LMRT_OK);
    assert_string_equal(rc.code, "");
    assert_false(rc.known);
    memset(&rc, 'x', sizeof rc);
    assert_int_equal(region_parse("", &rc), LMRT_OK);
    assert_string_equal(rc.code, "");
    assert_false(rc.known);
}

static void malformed_region_is_invalid_arg_naming_the_input(void **state)
{
    (void)state;
    const char *bad[] = {"D", "DEU", "1A", "d\xe2\x82\xac", " DE", "DE ", "D-", "\xc3\x84X"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        region_code rc = {"US", true};
        assert_int_equal(region_parse(bad[i], &rc), LMRT_E_INVALID_ARG);
        assert_non_null(strstr(lmrt_last_error(), bad[i]));
        assert_string_equal(rc.code, "US");   /* untouched on failure */
        assert_true(rc.known);
    }
    region_code rc;
    assert_int_equal(region_parse("A\nB", &rc), LMRT_E_INVALID_ARG);
    assert_non_null(strstr(lmrt_last_error(), "'A?B'"));   /* control bytes shown as '?' */
}

/* ---- the default policy ------------------------------------------------- */

static void every_eu_member_is_text_only_by_default(void **state)
{
    (void)state;
    for (size_t i = 0; i < 27; i++) {
        policy_decision d = decide(eu_members[i], NULL, 0, ALL_MODALITIES);
        assert_int_equal(d.licensed, TEXT);
        assert_string_equal(d.reason[0], "");
        assert_non_null(strstr(d.reason[1], eu_members[i]));
        assert_non_null(strstr(d.reason[2], POLICY_EU_MULTIMODAL_REASON));
    }
}

static void default_reason_for_germany_is_exact(void **state)
{
    (void)state;
    policy_decision d = decide("DE", NULL, 0, ALL_MODALITIES);
    assert_string_equal(d.reason[1], "image withheld in DE: multimodal models are not licensed "
                                     "in the European Union (default policy)");
    assert_string_equal(d.reason[2], "audio withheld in DE: multimodal models are not licensed "
                                     "in the European Union (default policy)");
    assert_string_equal(d.reason[3], "");
}

static void regions_outside_the_eu_get_every_modality(void **state)
{
    (void)state;
    const char *codes[] = {"US", "JP", "BR", "NO", "CH", "GB", "IS", "LI", "us"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        policy_decision d = decide(codes[i], NULL, 0, ALL_MODALITIES);
        assert_int_equal(d.licensed, ALL_MODALITIES);
        for (int s = 0; s < LMRT_MODALITY_SLOTS; s++)
            assert_string_equal(d.reason[s], "");
    }
}

static void unset_region_fails_closed_to_text(void **state)
{
    (void)state;
    policy_decision d = decide(NULL, NULL, 0, ALL_MODALITIES);
    assert_int_equal(d.licensed, TEXT);
    assert_string_equal(d.reason[1], "image withheld: region unset; only modalities licensed "
                                     "everywhere are available (default policy: multimodal "
                                     "models are not licensed in the European Union)");
    assert_non_null(strstr(d.reason[2], "audio withheld: region unset"));
    /* a NULL region pointer is the same as an unset one */
    policy_decision d2;
    assert_int_equal(policy_decide(NULL, 0, NULL, ALL_MODALITIES, &d2), LMRT_OK);
    assert_memory_equal(&d, &d2, sizeof d);
}

static void unknown_region_fails_closed_to_text(void **state)
{
    (void)state;
    policy_decision d = decide("XX", NULL, 0, ALL_MODALITIES);
    assert_int_equal(d.licensed, TEXT);
    assert_non_null(strstr(d.reason[1], "image withheld: region XX is not an assigned ISO 3166-1 "
                                        "code; only modalities licensed everywhere are available"));
    assert_non_null(strstr(d.reason[2], "region XX"));
    /* a caller's claim that an unassigned code is known is not believed */
    region_code forged = {"ZZ", true};
    assert_int_equal(policy_decide(NULL, 0, &forged, ALL_MODALITIES, &d), LMRT_OK);
    assert_int_equal(d.licensed, TEXT);
}

static void only_present_modalities_are_licensed_or_explained(void **state)
{
    (void)state;
    policy_decision d = decide("DE", NULL, 0, TEXT);
    assert_int_equal(d.licensed, TEXT);
    assert_string_equal(d.reason[1], "");
    d = decide("US", NULL, 0, TEXT | AUDIO);
    assert_int_equal(d.licensed, TEXT | AUDIO);
    d = decide("FR", NULL, 0, 0);
    assert_int_equal(d.licensed, 0);
}

static void unknown_modality_bits_are_invalid_arg(void **state)
{
    (void)state;
    policy_decision d;
    memset(&d, 0x5a, sizeof d);
    assert_int_equal(policy_decide(NULL, 0, NULL, 1u << 3, &d), LMRT_E_INVALID_ARG);
    assert_int_equal(d.licensed, 0x5a5a5a5a);   /* untouched */
    assert_int_equal(policy_decide(NULL, 0, NULL, TEXT, NULL), LMRT_E_INVALID_ARG);
}

static void require_reports_not_licensed_with_the_reason(void **state)
{
    (void)state;
    region_code de, us;
    assert_int_equal(region_parse("DE", &de), LMRT_OK);
    assert_int_equal(region_parse("US", &us), LMRT_OK);
    assert_int_equal(policy_require(NULL, 0, &de, TEXT), LMRT_OK);
    assert_int_equal(policy_require(NULL, 0, &us, IMAGE), LMRT_OK);
    assert_int_equal(policy_require(NULL, 0, &de, IMAGE), LMRT_E_NOT_LICENSED);
    assert_string_equal(lmrt_last_error(), "image withheld in DE: multimodal models are not "
                                           "licensed in the European Union (default policy)");
    assert_int_equal(policy_require(NULL, 0, &de, IMAGE | AUDIO), LMRT_E_INVALID_ARG);
}

/* ---- combining layers --------------------------------------------------- */

static void model_and_deployer_layers_combine_to_the_strictest(void **state)
{
    (void)state;
    policy_layer *model = parse_ok("deny audio US  # not licensed for US audio\n", "model policy");
    policy_layer *deployer = parse_ok("allow image JP\n", "deployer policy");
    const policy_layer *layers[] = {model, deployer};

    policy_decision d = decide("US", layers, 2, ALL_MODALITIES);
    assert_int_equal(d.licensed, TEXT);
    assert_string_equal(d.reason[1], "image withheld in US: licensed only in JP (deployer policy)");
    assert_string_equal(d.reason[2], "audio withheld in US: not licensed for US audio "
                                     "(model policy)");
    d = decide("JP", layers, 2, ALL_MODALITIES);
    assert_int_equal(d.licensed, ALL_MODALITIES);
    d = decide("GB", layers, 2, ALL_MODALITIES);
    assert_int_equal(d.licensed, TEXT | AUDIO);
    d = decide("DE", layers, 2, ALL_MODALITIES);   /* the default's reason comes first */
    assert_int_equal(d.licensed, TEXT);
    assert_non_null(strstr(d.reason[1], "(default policy)"));
    /* NULL layers are skipped */
    const policy_layer *sparse[] = {NULL, model, NULL};
    d = decide("US", sparse, 3, ALL_MODALITIES);
    assert_int_equal(d.licensed, TEXT | IMAGE);
    policy_layer_free(model);
    policy_layer_free(deployer);
}

static void allow_line_cannot_widen_the_default_eu_deny(void **state)
{
    (void)state;
    policy_layer *deployer = parse_ok("allow image DE\nallow audio EU\n", "deployer policy");
    const policy_layer *layers[] = {deployer};
    policy_decision d = decide("DE", layers, 1, ALL_MODALITIES);
    assert_int_equal(d.licensed, TEXT);
    assert_non_null(strstr(d.reason[1], "European Union (default policy)"));
    d = decide("US", layers, 1, ALL_MODALITIES);   /* and it narrows everywhere else */
    assert_int_equal(d.licensed, TEXT);
    assert_string_equal(d.reason[1], "image withheld in US: licensed only in DE "
                                     "(deployer policy)");
    /* passing the default layer again changes nothing */
    const policy_layer *twice[] = {policy_default(), deployer};
    policy_decision d2 = decide("US", twice, 2, ALL_MODALITIES);
    assert_memory_equal(&d, &d2, sizeof d);
    policy_layer_free(deployer);
}

static void two_allow_lists_intersect(void **state)
{
    (void)state;
    policy_layer *p = parse_ok("allow image US JP\nallow image JP GB\n", "deployer policy");
    const policy_layer *layers[] = {p};
    assert_int_equal(decide("JP", layers, 1, IMAGE).licensed, IMAGE);
    assert_int_equal(decide("US", layers, 1, IMAGE).licensed, 0);
    assert_int_equal(decide("GB", layers, 1, IMAGE).licensed, 0);
    policy_layer_free(p);
}

static void any_text_rule_withholds_text_from_unset_regions(void **state)
{
    (void)state;
    policy_layer *p = parse_ok("deny text KP\n", "deployer policy");
    const policy_layer *layers[] = {p};
    policy_decision d = decide(NULL, layers, 1, ALL_MODALITIES);
    assert_int_equal(d.licensed, 0);
    assert_string_equal(d.reason[0], "text withheld: region unset; only modalities licensed "
                                     "everywhere are available (deployer policy: not licensed "
                                     "in KP)");
    assert_int_equal(decide("US", layers, 1, TEXT).licensed, TEXT);
    assert_int_equal(decide("kp", layers, 1, TEXT).licensed, 0);
    policy_layer_free(p);
    /* a rule that restricts nothing assigned keeps fail-closed open for that modality */
    p = parse_ok("allow image ALL\n", "deployer policy");
    layers[0] = p;
    assert_int_equal(decide(NULL, layers, 1, TEXT | IMAGE).licensed, TEXT);   /* default's EU rule */
    policy_layer_free(p);
}

static void group_eea_deny_covers_norway(void **state)
{
    (void)state;
    policy_layer *p = parse_ok("deny audio EEA # reason with # inside\n", "deployer policy");
    const policy_layer *layers[] = {p};
    policy_decision d = decide("NO", layers, 1, ALL_MODALITIES);
    assert_int_equal(d.licensed, TEXT | IMAGE);
    assert_string_equal(d.reason[2], "audio withheld in NO: reason with # inside "
                                     "(deployer policy)");
    policy_layer_free(p);
}

static void long_reasons_are_cut_at_a_character_boundary(void **state)
{
    (void)state;
    char text[1200] = "deny image US # ";
    size_t n = strlen(text);
    for (int i = 0; i < 300; i++) {   /* "é" is two bytes */
        text[n++] = '\xc3';
        text[n++] = '\xa9';
    }
    text[n] = '\0';
    policy_layer *p = parse_ok(text, "deployer policy");
    const policy_layer *layers[] = {p};
    policy_decision d = decide("US", layers, 1, ALL_MODALITIES);
    size_t len = strlen(d.reason[1]);
    assert_true(len < POLICY_REASON_MAX);
    assert_true(len >= POLICY_REASON_MAX - 2);
    assert_int_equal(((unsigned char)d.reason[1][len - 1]), 0xa9);   /* a whole "é" */
    policy_layer_free(p);
}

/* ---- deployer policy text ------------------------------------------------ */

static void policy_text_accepts_comments_blanks_case_and_crlf(void **state)
{
    (void)state;
    policy_layer *p = parse_ok("# deployer policy for the kiosk build\r\n"
                               "\r\n"
                               "   \t\n"
                               "DENY Image eu\r\n"
                               "allow\taudio us  ca\tGB   # only where we have a contract\r\n"
                               "deny text kp", "deployer policy");
    assert_int_equal(policy_layer_n_rules(p), 3);
    assert_string_equal(policy_layer_origin(p), "deployer policy");
    const policy_layer *layers[] = {p};
    policy_decision d = decide("CA", layers, 1, ALL_MODALITIES);
    assert_int_equal(d.licensed, ALL_MODALITIES);
    d = decide("JP", layers, 1, ALL_MODALITIES);
    assert_int_equal(d.licensed, TEXT | IMAGE);
    assert_string_equal(d.reason[2], "audio withheld in JP: only where we have a contract "
                                     "(deployer policy)");
    policy_layer_free(p);

    p = parse_ok("allow audio us ca\n", "deployer policy");   /* no reason: made from targets */
    layers[0] = p;
    d = decide("JP", layers, 1, AUDIO);
    assert_string_equal(d.reason[2], "audio withheld in JP: licensed only in US CA "
                                     "(deployer policy)");
    policy_layer_free(p);
}

static void empty_policy_text_gives_a_layer_without_rules(void **state)
{
    (void)state;
    const char *texts[] = {"", "\n\n", "# nothing here\n  # nor here"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        policy_layer *p = parse_ok(texts[i], "deployer policy");
        assert_non_null(p);
        assert_int_equal(policy_layer_n_rules(p), 0);
        policy_layer_free(p);
    }
}

static void policy_text_error(const char *text, const char *want1, const char *want2)
{
    policy_layer *p = (policy_layer *)(uintptr_t)0x1234;
    assert_int_equal(policy_parse_text(text, "deployer policy", &p), LMRT_E_INVALID_ARG);
    assert_ptr_equal(p, (policy_layer *)(uintptr_t)0x1234);   /* untouched */
    const char *msg = lmrt_last_error();
    if (!strstr(msg, want1) || (want2 && !strstr(msg, want2)))
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", msg, want1, want2 ? want2 : "");
}

static void policy_text_syntax_error_names_its_line_and_token(void **state)
{
    (void)state;
    policy_text_error("deny image EU\n\npermit audio US\n", "deployer policy line 3", "'permit'");
    policy_text_error("deny video EU\n", "line 1", "'video'");
    policy_text_error("# ok\ndeny image XX\n", "line 2", "'XX'");
    policy_text_error("deny image DEU\n", "line 1", "'DEU'");
    policy_text_error("deny image DE,FR\n", "line 1", "'DE,FR'");
    policy_text_error("deny image\n", "line 1", "'deny image' needs at least one region");
    policy_text_error("deny image # EU\n", "line 1", "needs at least one region");
    policy_text_error("allow\n", "line 1", "'allow' needs a modality");
    policy_text_error("deny image EU\ndeny audio E\xc3\x9a\n", "line 2", "'E\xc3\x9a'");
    policy_text_error("deny image EU\r\nallow audio us zz\r\n", "line 2", "'zz'");
    assert_int_equal(policy_parse_text(NULL, "deployer policy", &(policy_layer *){NULL}),
                     LMRT_E_INVALID_ARG);
}

static void policy_parse_text_out_of_memory_is_nomem_without_leaks(void **state)
{
    (void)state;
    const char *text = "deny image EU # one\nallow audio US CA GB # two\n"
                       "deny text KP\nallow image JP US # four\ndeny audio CN\n";
    long n;
    for (n = 0;; n++) {
        policy_layer *p = (policy_layer *)(uintptr_t)0x1234;
        lmrt_alloc_fail_after(n);
        lmrt_status st = policy_parse_text(text, "deployer policy", &p);
        lmrt_alloc_fail_after(-1);
        if (st == LMRT_OK) {
            assert_int_equal(policy_layer_n_rules(p), 5);
            policy_layer_free(p);
            break;
        }
        assert_int_equal(st, LMRT_E_NOMEM);
        assert_ptr_equal(p, (policy_layer *)(uintptr_t)0x1234);
        assert_non_null(strstr(lmrt_last_error(), "out of memory"));
    }
    assert_true(n > 5);   /* every allocation was made to fail once (leaks: ASan) */
}

/* ---- model policy from GGUF metadata ------------------------------------- */

static gguf_kv kv_strings(char *key, gguf_str *strs, uint64_t n)
{
    gguf_kv kv;
    memset(&kv, 0, sizeof kv);
    kv.key = key;
    kv.value.type = GGUF_TYPE_ARRAY;
    kv.value.v.arr.elem_type = GGUF_TYPE_STRING;
    kv.value.v.arr.count = n;
    kv.value.v.arr.strs = strs;
    return kv;
}

static gguf_kv kv_string(char *key, const char *s)
{
    gguf_kv kv;
    memset(&kv, 0, sizeof kv);
    kv.key = key;
    kv.value.type = GGUF_TYPE_STRING;
    kv.value.v.str.ptr = s;
    kv.value.v.str.len = strlen(s);
    return kv;
}

static gguf_file file_of(gguf_kv *kv, uint64_t n)
{
    gguf_file f;
    memset(&f, 0, sizeof f);
    f.path = "model.gguf";
    f.version = 3;
    f.n_kv = n;
    f.kv = kv;
    return f;
}

static void model_policy_is_read_from_gguf_metadata(void **state)
{
    (void)state;
    gguf_str us[] = {{"US", 2}};
    gguf_str jp_gb[] = {{"jp", 2}, {"GB", 2}};
    gguf_kv kv[] = {
        kv_string("general.name", "tiny"),
        kv_strings("lmrt.policy.audio.deny", us, 1),
        kv_string("lmrt.policy.audio.reason", "audio encoder not cleared for US"),
        kv_strings("lmrt.policy.image.allow", jp_gb, 2),
    };
    gguf_file f = file_of(kv, 4);
    policy_layer *model = NULL;
    assert_int_equal(policy_from_gguf(&f, &model), LMRT_OK);
    assert_non_null(model);
    assert_string_equal(policy_layer_origin(model), "model policy");
    assert_int_equal(policy_layer_n_rules(model), 2);
    const policy_layer *layers[] = {model};
    policy_decision d = decide("US", layers, 1, ALL_MODALITIES);
    assert_int_equal(d.licensed, TEXT);
    assert_string_equal(d.reason[1], "image withheld in US: licensed only in JP GB (model policy)");
    assert_string_equal(d.reason[2], "audio withheld in US: audio encoder not cleared for US "
                                     "(model policy)");
    assert_int_equal(decide("GB", layers, 1, ALL_MODALITIES).licensed, ALL_MODALITIES);
    /* the deployer narrows further: model + deployer, strictest wins */
    policy_layer *deployer = parse_ok("deny image GB\n", "deployer policy");
    const policy_layer *both[] = {model, deployer};
    assert_int_equal(decide("GB", both, 2, ALL_MODALITIES).licensed, TEXT | AUDIO);
    assert_int_equal(decide("JP", both, 2, ALL_MODALITIES).licensed, ALL_MODALITIES);
    policy_layer_free(deployer);
    policy_layer_free(model);
}

static void gguf_without_policy_keys_gives_no_layer(void **state)
{
    (void)state;
    gguf_kv kv[] = {kv_string("general.name", "tiny"), kv_string("lmrt.policyish", "x")};
    gguf_file f = file_of(kv, 2);
    policy_layer *model = (policy_layer *)(uintptr_t)0x1234;
    assert_int_equal(policy_from_gguf(&f, &model), LMRT_OK);
    assert_null(model);
}

static void empty_gguf_allow_list_licenses_nowhere(void **state)
{
    (void)state;
    gguf_kv kv[] = {kv_strings("lmrt.policy.audio.allow", NULL, 0)};
    gguf_file f = file_of(kv, 1);
    policy_layer *model = NULL;
    assert_int_equal(policy_from_gguf(&f, &model), LMRT_OK);
    const policy_layer *layers[] = {model};
    policy_decision d = decide("US", layers, 1, ALL_MODALITIES);
    assert_int_equal(d.licensed, TEXT | IMAGE);
    assert_string_equal(d.reason[2], "audio withheld in US: not licensed in any region "
                                     "(model policy)");
    policy_layer_free(model);
}

static void gguf_policy_error(gguf_kv *kv, uint64_t n, const char *want)
{
    gguf_file f = file_of(kv, n);
    policy_layer *model = (policy_layer *)(uintptr_t)0x1234;
    assert_int_equal(policy_from_gguf(&f, &model), LMRT_E_FORMAT);
    assert_ptr_equal(model, (policy_layer *)(uintptr_t)0x1234);
    const char *msg = lmrt_last_error();
    if (!strstr(msg, want) || !strstr(msg, "model.gguf"))
        fail_msg("message \"%s\" lacks \"%s\"", msg, want);
}

static void bad_gguf_policy_values_are_format_errors_naming_the_key(void **state)
{
    (void)state;
    gguf_str us[] = {{"US", 2}};
    gguf_str bad[] = {{"US", 2}, {"XX", 2}};
    gguf_str junk[] = {{"D\x01", 2}};
    gguf_kv kv[2];
    kv[0] = kv_string("lmrt.policy.image.deny", "US");   /* a string, not an array */
    gguf_policy_error(kv, 1, "'lmrt.policy.image.deny' must be an array of strings");
    kv[0] = kv_strings("lmrt.policy.image.deny", us, 1);
    kv[0].value.v.arr.elem_type = GGUF_TYPE_UINT32;
    kv[0].value.v.arr.strs = NULL;
    gguf_policy_error(kv, 1, "'lmrt.policy.image.deny' must be an array of strings");
    kv[0] = kv_strings("lmrt.policy.audio.allow", bad, 2);
    gguf_policy_error(kv, 1, "'lmrt.policy.audio.allow' element 1: unknown region or group 'XX'");
    kv[0] = kv_strings("lmrt.policy.audio.allow", junk, 1);
    gguf_policy_error(kv, 1, "'D?'");
    kv[0] = kv_strings("lmrt.policy.video.deny", us, 1);
    gguf_policy_error(kv, 1, "unknown policy key 'lmrt.policy.video.deny'");
    kv[0] = kv_strings("lmrt.policy.image.denied", us, 1);
    gguf_policy_error(kv, 1, "unknown policy key 'lmrt.policy.image.denied'");
    kv[0] = kv_string("lmrt.policy.version", "2");
    gguf_policy_error(kv, 1, "unknown policy key 'lmrt.policy.version'");
    kv[0] = kv_string("lmrt.policy.image.reason", "why");
    gguf_policy_error(kv, 1, "'lmrt.policy.image.reason' gives a reason but there is no");
    kv[0] = kv_strings("lmrt.policy.image.deny", us, 1);
    kv[1] = kv_strings("lmrt.policy.image.reason", us, 1);
    gguf_policy_error(kv, 2, "'lmrt.policy.image.reason' must be a string");
    kv[1] = kv_string("lmrt.policy.image.reason", "a\0b");
    kv[1].value.v.str.len = 3;
    gguf_policy_error(kv, 2, "'lmrt.policy.image.reason' contains a NUL byte");
}

static void policy_from_gguf_out_of_memory_is_nomem_without_leaks(void **state)
{
    (void)state;
    gguf_str eu[] = {{"EU", 2}, {"CH", 2}};
    gguf_str us[] = {{"US", 2}};
    gguf_kv kv[] = {
        kv_strings("lmrt.policy.image.deny", eu, 2),
        kv_string("lmrt.policy.image.reason", "not cleared"),
        kv_strings("lmrt.policy.image.allow", us, 1),
        kv_strings("lmrt.policy.audio.deny", us, 1),
        kv_strings("lmrt.policy.text.deny", us, 1),
    };
    gguf_file f = file_of(kv, 5);
    long n;
    for (n = 0;; n++) {
        policy_layer *p = (policy_layer *)(uintptr_t)0x1234;
        lmrt_alloc_fail_after(n);
        lmrt_status st = policy_from_gguf(&f, &p);
        lmrt_alloc_fail_after(-1);
        if (st == LMRT_OK) {
            assert_int_equal(policy_layer_n_rules(p), 4);
            policy_layer_free(p);
            break;
        }
        assert_int_equal(st, LMRT_E_NOMEM);
        assert_ptr_equal(p, (policy_layer *)(uintptr_t)0x1234);
    }
    assert_true(n > 4);
}

static void model_policy_is_read_through_gguf_open_memory(void **state)
{
    (void)state;
    static const char *const deny[] = {"EEA", "ch"};
    gguf_writer *w = gw_new();
    gw_kv_str(w, "general.architecture", "llama");
    gw_kv_arr_str(w, "lmrt.policy.image.deny", deny, 2);
    gw_kv_str(w, "lmrt.policy.image.reason", "vision encoder licensed outside Europe only");
    size_t size = 0;
    uint8_t *bytes = gw_finish(w, &size);
    gw_free(w);

    gguf_file *f = NULL;
    if (gguf_open_memory(bytes, size, "policy.gguf", &f) != LMRT_OK)
        fail_msg("gguf_open_memory: %s", lmrt_last_error());
    policy_layer *model = NULL;
    assert_int_equal(policy_from_gguf(f, &model), LMRT_OK);
    const policy_layer *layers[] = {model};
    policy_decision d = decide("CH", layers, 1, ALL_MODALITIES);
    assert_int_equal(d.licensed, TEXT | AUDIO);
    assert_string_equal(d.reason[1], "image withheld in CH: vision encoder licensed outside "
                                     "Europe only (model policy)");
    assert_int_equal(decide("NO", layers, 1, ALL_MODALITIES).licensed, TEXT | AUDIO);
    assert_int_equal(decide("US", layers, 1, ALL_MODALITIES).licensed, ALL_MODALITIES);
    policy_layer_free(model);
    gguf_close(f);
    free(bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_has_249_sorted_codes_27_in_eu_and_30_in_eea),
        cmocka_unit_test(eu_flags_are_exactly_the_27_member_states),
        cmocka_unit_test(names_are_english_short_names),
        cmocka_unit_test(groups_expand_to_their_members),
        cmocka_unit_test(lowercase_region_is_accepted_and_upper_cased),
        cmocka_unit_test(unassigned_code_is_well_formed_but_unknown),
        cmocka_unit_test(null_and_empty_region_are_unset),
        cmocka_unit_test(malformed_region_is_invalid_arg_naming_the_input),
        cmocka_unit_test(every_eu_member_is_text_only_by_default),
        cmocka_unit_test(default_reason_for_germany_is_exact),
        cmocka_unit_test(regions_outside_the_eu_get_every_modality),
        cmocka_unit_test(unset_region_fails_closed_to_text),
        cmocka_unit_test(unknown_region_fails_closed_to_text),
        cmocka_unit_test(only_present_modalities_are_licensed_or_explained),
        cmocka_unit_test(unknown_modality_bits_are_invalid_arg),
        cmocka_unit_test(require_reports_not_licensed_with_the_reason),
        cmocka_unit_test(model_and_deployer_layers_combine_to_the_strictest),
        cmocka_unit_test(allow_line_cannot_widen_the_default_eu_deny),
        cmocka_unit_test(two_allow_lists_intersect),
        cmocka_unit_test(any_text_rule_withholds_text_from_unset_regions),
        cmocka_unit_test(group_eea_deny_covers_norway),
        cmocka_unit_test(long_reasons_are_cut_at_a_character_boundary),
        cmocka_unit_test(policy_text_accepts_comments_blanks_case_and_crlf),
        cmocka_unit_test(empty_policy_text_gives_a_layer_without_rules),
        cmocka_unit_test(policy_text_syntax_error_names_its_line_and_token),
        cmocka_unit_test(policy_parse_text_out_of_memory_is_nomem_without_leaks),
        cmocka_unit_test(model_policy_is_read_from_gguf_metadata),
        cmocka_unit_test(gguf_without_policy_keys_gives_no_layer),
        cmocka_unit_test(empty_gguf_allow_list_licenses_nowhere),
        cmocka_unit_test(bad_gguf_policy_values_are_format_errors_naming_the_key),
        cmocka_unit_test(policy_from_gguf_out_of_memory_is_nomem_without_leaks),
        cmocka_unit_test(model_policy_is_read_through_gguf_open_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* policy.c - decides which modalities are licensed in a region: the default layer, the
 * deployer's policy text, the model's lmrt.policy.* metadata, and their combination.
 * Only ever narrows: there is no rule that widens what another rule withholds. */
#include "policy/policy.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

/* One rule of a layer. A modality is licensed in a region when the region is not
 * in `where` (deny) or is in it (allow: an allow-list), for every rule. */
typedef struct policy_rule {
    uint32_t modality;      /* one LMRT_MODALITY_* bit */
    bool allow;             /* true: licensed only in `where`; false: withheld in `where` */
    region_set where;
    const char *targets;    /* `where` as written, upper case, space-separated: "EU", "JP US" */
    const char *reason;     /* "" when none was given */
} policy_rule;

struct policy_layer {
    const char *origin;     /* "default policy", "model policy", "deployer policy" */
    size_t n_rules;
    const policy_rule *rules;   /* [n_rules] */
    bool is_static;         /* the default layer: nothing to free */
};

static const policy_rule default_rules[] = {
    {LMRT_MODALITY_IMAGE, false, {REGION_EU, {0}}, "EU", POLICY_EU_MULTIMODAL_REASON},
    {LMRT_MODALITY_AUDIO, false, {REGION_EU, {0}}, "EU", POLICY_EU_MULTIMODAL_REASON},
};

static const policy_layer default_layer = {
    "default policy", sizeof default_rules / sizeof default_rules[0], default_rules, true,
};

static const struct {
    const char *name;
    uint32_t bit;
} modalities[] = {
    {"text", LMRT_MODALITY_TEXT},
    {"image", LMRT_MODALITY_IMAGE},
    {"audio", LMRT_MODALITY_AUDIO},
};
#define N_MODALITIES (sizeof modalities / sizeof modalities[0])

const policy_layer *policy_default(void)
{
    return &default_layer;
}

const char *policy_modality_name(uint32_t modality)
{
    int slot = policy_modality_slot(modality);
    return slot < 0 ? NULL : modalities[slot].name;
}

int policy_modality_slot(uint32_t modality)
{
    for (size_t i = 0; i < N_MODALITIES; i++)
        if (modalities[i].bit == modality)
            return (int)i;
    return -1;
}

const char *policy_layer_origin(const policy_layer *layer)
{
    return layer ? layer->origin : NULL;
}

size_t policy_layer_n_rules(const policy_layer *layer)
{
    return layer ? layer->n_rules : 0;
}

void policy_layer_free(policy_layer *layer)
{
    if (!layer || layer->is_static)
        return;
    for (size_t i = 0; i < layer->n_rules; i++) {
        lmrt_mem_free((char *)layer->rules[i].targets);
        lmrt_mem_free((char *)layer->rules[i].reason);
    }
    lmrt_mem_free((policy_rule *)layer->rules);
    lmrt_mem_free((char *)layer->origin);
    lmrt_mem_free(layer);
}

/* ------------------------------------------------------------------------ */
/* Deciding                                                                 */
/* ------------------------------------------------------------------------ */

static bool rule_licenses(const policy_rule *r, const char *code)
{
    bool in = region_set_contains(&r->where, code);
    return r->allow ? in : !in;
}

/* Whether the rule licenses its modality in every assigned region. */
static bool rule_licenses_everywhere(const policy_rule *r)
{
    size_t n;
    const region_info *table = region_table(&n);
    for (size_t i = 0; i < n; i++)
        if (!rule_licenses(r, table[i].code))
            return false;
    return true;
}

/* Formats a withheld reason into buf[POLICY_REASON_MAX], cutting a long one at
 * a UTF-8 character boundary rather than inside a character. */
static void reason_printf(char *buf, const char *fmt, ...) LMRT_PRINTF(2, 3);

static void reason_printf(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, POLICY_REASON_MAX, fmt, ap);
    va_end(ap);
    if (len < POLICY_REASON_MAX)
        return;
    size_t n = POLICY_REASON_MAX - 1, i = n;
    while (i > 0 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)buf[i - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if ((i - 1) + want > n)
        buf[i - 1] = '\0';
}

/* The rule's own reason, or one made from its targets. */
static void rule_reason(const policy_rule *r, char *buf, size_t cap)
{
    if (r->reason[0])
        snprintf(buf, cap, "%s", r->reason);
    else if (!r->allow)
        snprintf(buf, cap, "not licensed in %s", r->targets);
    else if (r->targets[0])
        snprintf(buf, cap, "licensed only in %s", r->targets);
    else
        snprintf(buf, cap, "not licensed in any region");
}

/* The first rule of any layer that withholds `modality` in `region` (NULL code:
 * in some assigned region, which is what fail-closed asks about), or NULL. */
static const policy_rule *find_withholding(const policy_layer *const *all, size_t n_all,
                                           uint32_t modality, const char *known_code,
                                           const policy_layer **layer_out)
{
    for (size_t l = 0; l < n_all; l++) {
        const policy_layer *layer = all[l];
        if (!layer)
            continue;
        for (size_t i = 0; i < layer->n_rules; i++) {
            const policy_rule *r = &layer->rules[i];
            if (r->modality != modality)
                continue;
            bool ok = known_code ? rule_licenses(r, known_code) : rule_licenses_everywhere(r);
            if (!ok) {
                *layer_out = layer;
                return r;
            }
        }
    }
    return NULL;
}

lmrt_status policy_decide(const policy_layer *const *layers, size_t n, const region_code *region,
                          uint32_t modalities_present, policy_decision *out)
{
    if (!out || (n > 0 && !layers))
        return lmrt_fail(LMRT_E_INVALID_ARG, "policy_decide: %s is NULL", out ? "layers" : "out");
    if (modalities_present & ~(uint32_t)POLICY_MODALITIES)
        return lmrt_fail(LMRT_E_INVALID_ARG, "policy_decide: unknown modality bits 0x%" PRIx32,
                         modalities_present & ~(uint32_t)POLICY_MODALITIES);

    /* The default layer first, then the caller's; a small fixed array keeps this
     * free of allocation (a context has at most a model and a deployer layer). */
    const policy_layer *all[8];
    if (n > sizeof all / sizeof all[0] - 1)
        return lmrt_fail(LMRT_E_INVALID_ARG, "policy_decide: %zu layers (at most %zu)", n,
                         sizeof all / sizeof all[0] - 1);
    all[0] = &default_layer;
    for (size_t i = 0; i < n; i++)
        all[i + 1] = layers[i];

    /* Re-derive `known` from the table rather than trust the caller's flag. */
    const char *code = region && region->code[0] ? region->code : NULL;
    const char *known_code = code && region_lookup(code) ? code : NULL;

    policy_decision d;
    memset(&d, 0, sizeof d);
    for (size_t m = 0; m < N_MODALITIES; m++) {
        uint32_t bit = modalities[m].bit;
        if (!(modalities_present & bit))
            continue;
        const policy_layer *layer = NULL;
        const policy_rule *r = find_withholding(all, n + 1, bit, known_code, &layer);
        if (!r) {
            d.licensed |= bit;
            continue;
        }
        char why[POLICY_REASON_MAX];
        rule_reason(r, why, sizeof why);
        char *buf = d.reason[m];
        const char *name = modalities[m].name;
        if (known_code)
            reason_printf(buf, "%s withheld in %.2s: %s (%s)", name, known_code, why,
                          layer->origin);
        else if (code)
            reason_printf(buf, "%s withheld: region %.2s is not an assigned ISO 3166-1 code; only "
                          "modalities licensed everywhere are available (%s: %s)", name, code,
                          layer->origin, why);
        else
            reason_printf(buf, "%s withheld: region unset; only modalities licensed everywhere "
                          "are available (%s: %s)", name, layer->origin, why);
    }
    memcpy(out, &d, sizeof d);
    return LMRT_OK;
}

lmrt_status policy_require(const policy_layer *const *layers, size_t n, const region_code *region,
                           uint32_t modality)
{
    int slot = policy_modality_slot(modality);
    if (slot < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "policy_require: 0x%" PRIx32 " is not one modality",
                         modality);
    policy_decision d;
    lmrt_status st = policy_decide(layers, n, region, modality, &d);
    if (st != LMRT_OK)
        return st;
    if (!(d.licensed & modality))
        return lmrt_fail(LMRT_E_NOT_LICENSED, "%s", d.reason[slot]);
    return LMRT_OK;
}

/* ------------------------------------------------------------------------ */
/* Building layers                                                          */
/* ------------------------------------------------------------------------ */

/* A layer under construction: `rules` is ours to grow. */
typedef struct layer_builder {
    policy_layer *layer;
    policy_rule *rules;
    size_t cap;
} layer_builder;

static lmrt_status builder_start(layer_builder *b, const char *origin)
{
    memset(b, 0, sizeof *b);
    b->layer = lmrt_calloc(1, sizeof *b->layer);
    if (!b->layer)
        return lmrt_fail(LMRT_E_NOMEM, "%s: out of memory", origin);
    b->layer->origin = lmrt_strdup(origin);
    if (!b->layer->origin) {
        lmrt_mem_free(b->layer);
        b->layer = NULL;
        return lmrt_fail(LMRT_E_NOMEM, "%s: out of memory", origin);
    }
    return LMRT_OK;
}

/* Appends a rule, taking ownership of `targets` and `reason` (freed on failure too). */
static lmrt_status builder_add(layer_builder *b, uint32_t modality, bool allow,
                               const region_set *where, char *targets, char *reason)
{
    if (!targets || !reason)
        goto nomem;
    if (b->layer->n_rules == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        policy_rule *grown = NULL;
        size_t bytes;
        if (!__builtin_mul_overflow(cap, sizeof *grown, &bytes))
            grown = lmrt_realloc(b->rules, bytes);
        if (!grown)
            goto nomem;
        b->rules = grown;
        b->layer->rules = grown;
        b->cap = cap;
    }
    policy_rule *r = &b->rules[b->layer->n_rules++];
    r->modality = modality;
    r->allow = allow;
    r->where = *where;
    r->targets = targets;
    r->reason = reason;
    return LMRT_OK;
nomem:
    lmrt_mem_free(targets);
    lmrt_mem_free(reason);
    return lmrt_fail(LMRT_E_NOMEM, "%s: out of memory", b->layer->origin);
}

static void builder_abandon(layer_builder *b)
{
    policy_layer_free(b->layer);
    b->layer = NULL;
}

/* Whether s[0..len) equals the lower-case `word`, ignoring ASCII case. */
static bool word_is(const char *s, size_t len, const char *word)
{
    if (strlen(word) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((s[i] | 0x20) != word[i])
            return false;
    return true;
}

static uint32_t modality_by_name(const char *s, size_t len)
{
    for (size_t i = 0; i < N_MODALITIES; i++)
        if (word_is(s, len, modalities[i].name))
            return modalities[i].bit;
    return 0;
}

static char ascii_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* ------------------------------------------------------------------------ */
/* Deployer policy text                                                     */
/* ------------------------------------------------------------------------ */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Next whitespace-separated token of [*p, end); false at the end. */
static bool next_token(const char **p, const char *end, const char **tok, size_t *len)
{
    const char *s = *p;
    while (s < end && is_blank(*s))
        s++;
    if (s == end)
        return false;
    const char *e = s;
    while (e < end && !is_blank(*e))
        e++;
    *tok = s;
    *len = (size_t)(e - s);
    *p = e;
    return true;
}

/* Parses the rule of one line [line, end) into the builder; blank lines add nothing. */
static lmrt_status parse_line(layer_builder *b, const char *origin, size_t line_no,
                              const char *line, const char *end)
{
    char shown[48];
    const char *hash = memchr(line, '#', (size_t)(end - line));
    const char *content_end = hash ? hash : end;
    const char *p = line, *tok;
    size_t len;
    if (!next_token(&p, content_end, &tok, &len))
        return LMRT_OK;   /* blank or comment-only */

    bool allow;
    if (word_is(tok, len, "deny"))
        allow = false;
    else if (word_is(tok, len, "allow"))
        allow = true;
    else {
        region_quote(tok, len, shown, sizeof shown);
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s line %zu: unknown word '%s' "
                         "(a rule starts with 'deny' or 'allow')", origin, line_no, shown);
    }
    const char *verb = allow ? "allow" : "deny";

    if (!next_token(&p, content_end, &tok, &len))
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s line %zu: '%s' needs a modality "
                         "(text, image or audio)", origin, line_no, verb);
    uint32_t modality = modality_by_name(tok, len);
    if (!modality) {
        region_quote(tok, len, shown, sizeof shown);
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s line %zu: unknown modality '%s' "
                         "(expected text, image or audio)", origin, line_no, shown);
    }
    const char *mname = policy_modality_name(modality);

    region_set where;
    memset(&where, 0, sizeof where);
    const char *first = NULL, *last_end = NULL;
    while (next_token(&p, content_end, &tok, &len)) {
        if (!region_set_add(&where, tok, len)) {
            region_quote(tok, len, shown, sizeof shown);
            return lmrt_fail(LMRT_E_INVALID_ARG, "%s line %zu: unknown region or group '%s' "
                             "(expected an assigned ISO 3166-1 alpha-2 code, EU, EEA or ALL)",
                             origin, line_no, shown);
        }
        if (!first)
            first = tok;
        last_end = tok + len;
    }
    if (!first)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s line %zu: '%s %s' needs at least one region "
                         "or group", origin, line_no, verb, mname);

    /* targets: the region tokens, upper case, one space apart */
    char *targets = lmrt_malloc((size_t)(last_end - first) + 1);
    if (targets) {
        size_t n = 0;
        for (const char *s = first; s < last_end; s++) {
            if (!is_blank(*s))
                targets[n++] = ascii_upper(*s);
            else if (targets[n - 1] != ' ')
                targets[n++] = ' ';
        }
        targets[n] = '\0';
    }
    /* reason: what follows '#', trimmed */
    const char *rs = hash ? hash + 1 : end, *re = end;
    while (rs < re && is_blank(*rs))
        rs++;
    while (re > rs && is_blank(re[-1]))
        re--;
    char *reason = lmrt_strndup(rs, (size_t)(re - rs));
    lmrt_status st = builder_add(b, modality, allow, &where, targets, reason);
    if (st != LMRT_OK)
        return lmrt_fail(st, "%s line %zu: out of memory", origin, line_no);
    return LMRT_OK;
}

lmrt_status policy_parse_text(const char *text, const char *origin, policy_layer **out)
{
    if (!out || !text)
        return lmrt_fail(LMRT_E_INVALID_ARG, "policy_parse_text: %s is NULL",
                         out ? "text" : "out");
    if (!origin)
        origin = "policy";
    layer_builder b;
    lmrt_status st = builder_start(&b, origin);
    if (st != LMRT_OK)
        return st;
    size_t line_no = 1;
    for (const char *line = text;; line_no++) {
        const char *nl = strchr(line, '\n');
        const char *end = nl ? nl : line + strlen(line);
        st = parse_line(&b, origin, line_no, line, end);
        if (st != LMRT_OK) {
            builder_abandon(&b);
            return st;
        }
        if (!nl)
            break;
        line = nl + 1;
    }
    *out = b.layer;
    return LMRT_OK;
}

/* ------------------------------------------------------------------------ */
/* Model policy from GGUF metadata                                          */
/* ------------------------------------------------------------------------ */

#define GGUF_POLICY_PREFIX "lmrt.policy."

enum { FIELD_DENY, FIELD_ALLOW, FIELD_REASON, N_FIELDS };
static const char *const field_names[N_FIELDS] = {"deny", "allow", "reason"};

/* Checks one deny/allow array and turns it into a region set and its targets text. */
static lmrt_status gguf_region_list(const char *path, const gguf_kv *kv, region_set *where,
                                    char **targets_out)
{
    const gguf_value *v = &kv->value;
    if (v->type != GGUF_TYPE_ARRAY || v->v.arr.elem_type != GGUF_TYPE_STRING ||
        (v->v.arr.count > 0 && !v->v.arr.strs))
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' must be an array of strings (region codes "
                         "or groups), not %s", path, kv->key,
                         v->type == GGUF_TYPE_ARRAY ? "an array of another type"
                                                    : gguf_type_name(v->type));
    memset(where, 0, sizeof *where);
    size_t total = 1;
    for (uint64_t i = 0; i < v->v.arr.count; i++) {
        const gguf_str *s = &v->v.arr.strs[i];
        if (s->len > 3 || !region_set_add(where, s->ptr, (size_t)s->len)) {
            char shown[48];
            region_quote(s->ptr, (size_t)s->len, shown, sizeof shown);
            return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' element %" PRIu64 ": unknown region "
                             "or group '%s' (expected an assigned ISO 3166-1 alpha-2 code, "
                             "EU, EEA or ALL)", path, kv->key, i, shown);
        }
        total += (size_t)s->len + 1;   /* each at most 3 bytes: no overflow short of the file */
    }
    char *targets = lmrt_malloc(total);
    if (!targets)
        return lmrt_fail(LMRT_E_NOMEM, "%s: key '%s': out of memory", path, kv->key);
    size_t n = 0;
    for (uint64_t i = 0; i < v->v.arr.count; i++) {
        const gguf_str *s = &v->v.arr.strs[i];
        if (n)
            targets[n++] = ' ';
        for (uint64_t j = 0; j < s->len; j++)
            targets[n++] = ascii_upper(s->ptr[j]);
    }
    targets[n] = '\0';
    *targets_out = targets;
    return LMRT_OK;
}

/* Finds the lmrt.policy.<modality>.<field> keys; an unknown one is an error. */
static lmrt_status gguf_collect(const gguf_file *f, const char *path,
                                const gguf_kv *found[N_MODALITIES][N_FIELDS], size_t *n_found)
{
    const size_t plen = strlen(GGUF_POLICY_PREFIX);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        if (!kv->key || strncmp(kv->key, GGUF_POLICY_PREFIX, plen) != 0)
            continue;
        const char *rest = kv->key + plen;
        const char *dot = strchr(rest, '.');
        uint32_t modality = 0;
        int field = -1;
        if (dot) {
            for (size_t m = 0; m < N_MODALITIES; m++)
                if (strlen(modalities[m].name) == (size_t)(dot - rest) &&
                    memcmp(modalities[m].name, rest, (size_t)(dot - rest)) == 0)
                    modality = modalities[m].bit;
            for (int k = 0; k < N_FIELDS; k++)
                if (strcmp(dot + 1, field_names[k]) == 0)
                    field = k;
        }
        if (!modality || field < 0)
            return lmrt_fail(LMRT_E_FORMAT, "%s: unknown policy key '%s' (expected "
                             GGUF_POLICY_PREFIX "<text|image|audio>.<deny|allow|reason>)",
                             path, kv->key);
        found[policy_modality_slot(modality)][field] = kv;
        (*n_found)++;
    }
    return LMRT_OK;
}

lmrt_status policy_from_gguf(const gguf_file *f, policy_layer **out)
{
    if (!f || !out || (f->n_kv > 0 && !f->kv))
        return lmrt_fail(LMRT_E_INVALID_ARG, "policy_from_gguf: %s is NULL",
                         !out ? "out" : !f ? "file" : "the file's metadata");
    const char *path = f->path ? f->path : "<gguf>";
    const gguf_kv *found[N_MODALITIES][N_FIELDS];
    memset(found, 0, sizeof found);
    size_t n_found = 0;
    lmrt_status st = gguf_collect(f, path, found, &n_found);
    if (st != LMRT_OK)
        return st;
    if (n_found == 0) {
        *out = NULL;
        return LMRT_OK;
    }

    /* Check every key before building anything. */
    for (size_t m = 0; m < N_MODALITIES; m++) {
        const gguf_kv *reason = found[m][FIELD_REASON];
        if (!reason)
            continue;
        if (reason->value.type != GGUF_TYPE_STRING)
            return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' must be a string, not %s", path,
                             reason->key, gguf_type_name(reason->value.type));
        const gguf_str *s = &reason->value.v.str;
        if (s->len > 0 && memchr(s->ptr, '\0', (size_t)s->len))
            return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' contains a NUL byte", path, reason->key);
        if (!found[m][FIELD_DENY] && !found[m][FIELD_ALLOW])
            return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' gives a reason but there is no "
                             GGUF_POLICY_PREFIX "%s.deny or .allow", path, reason->key,
                             modalities[m].name);
    }

    layer_builder b;
    st = builder_start(&b, "model policy");
    if (st != LMRT_OK)
        return st;
    for (size_t m = 0; m < N_MODALITIES; m++) {
        for (int k = FIELD_DENY; k <= FIELD_ALLOW; k++) {
            const gguf_kv *kv = found[m][k];
            if (!kv)
                continue;
            region_set where;
            char *targets = NULL;
            st = gguf_region_list(path, kv, &where, &targets);
            if (st != LMRT_OK)
                goto fail;
            const gguf_kv *reason = found[m][FIELD_REASON];
            char *why = reason && reason->value.v.str.len > 0
                            ? lmrt_strndup(reason->value.v.str.ptr,
                                           (size_t)reason->value.v.str.len)
                            : lmrt_strdup("");
            st = builder_add(&b, modalities[m].bit, k == FIELD_ALLOW, &where, targets, why);
            if (st != LMRT_OK) {
                lmrt_fail(st, "%s: key '%s': out of memory", path, kv->key);
                goto fail;
            }
        }
    }
    *out = b.layer;
    return LMRT_OK;
fail:
    builder_abandon(&b);
    return st;
}

/* bpe.c - byte-level BPE as GGUF "gpt2" vocabularies define it (Llama 3): the Llama 3
 * pre-tokenizer (a hand-written matcher for its regex), the GPT-2 byte alphabet and
 * merging by rank. Knows nothing of special tokens: tokenizer.c splits them out first.
 * Invalid UTF-8 is kept byte for byte (llama.cpp turns it into U+FFFD), so encoding is lossless. */
#include <inttypes.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

/* ------------------------------------------------------------------------ */
/* The GPT-2 byte alphabet                                                  */
/* ------------------------------------------------------------------------ */

/* Printable Latin-1 bytes stand for themselves; the 68 others, in byte order,
 * for U+0100..U+0143: 0x00-0x20 -> U+0100.., 0x7F-0xA0 -> U+0121.., 0xAD -> U+0143. */
static uint32_t byte_to_cp(unsigned b)
{
    if (b <= 0x20)
        return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0)
        return b + 0xA2;
    if (b == 0xAD)
        return 0x143;
    return b;
}

/* The byte a character of the alphabet stands for, or -1. */
static int cp_to_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp >= 0x100 && cp <= 0x120)
        return (int)(cp - 0x100);
    if (cp >= 0x121 && cp <= 0x142)
        return (int)(cp - 0xA2);
    if (cp == 0x143)
        return 0xAD;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */

static bool str_is(gguf_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static void merge_key(const void *ctx, uint32_t rank, const void **key, size_t *len)
{
    const tokenizer *t = ctx;
    *key = &t->merge_pair[2 * (size_t)rank];
    *len = 2 * sizeof(uint32_t);
}

/* A normal token's bytes: each character of the alphabet becomes its byte; any other
 * character (no real vocabulary has one) is kept as its UTF-8. */
static void decode_pieces(tokenizer *t)
{
    for (int32_t id = 0; id < t->n_vocab; id++) {
        tok_entry *e = &t->tokens[id];
        if (e->kind != TOKEN_KIND_NORMAL)
            continue;
        const unsigned char *s = (const unsigned char *)tok_text(t, id);
        e->piece = (uint32_t)t->arena_len;
        for (size_t i = 0; i < e->text_len;) {
            uint32_t cp;
            size_t n = utf8_decode(s + i, e->text_len - i, &cp);
            int b = cp == UNI_INVALID ? -1 : cp_to_byte(cp);
            if (b >= 0) {
                unsigned char c = (unsigned char)b;
                tok_arena_put(t, &c, 1);
            } else {
                tok_arena_put(t, s + i, n);
            }
            i += n;
        }
        e->piece_len = (uint32_t)(t->arena_len - e->piece);
    }
}

static lmrt_status load_merges(tokenizer *t, const gguf_file *f)
{
    static const char key[] = "tokenizer.ggml.merges";
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return lmrt_fail(LMRT_E_FORMAT, "%s: a 'gpt2' vocabulary needs '%s', which is missing",
                         f->path, key);
    if (kv->value.type != GGUF_TYPE_ARRAY || kv->value.v.arr.elem_type != GGUF_TYPE_STRING)
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' is not an array of strings", f->path, key);
    uint64_t n = kv->value.v.arr.count;
    if (n >= INT32_MAX)
        return lmrt_fail(LMRT_E_FORMAT, "%s: '%s' has %" PRIu64 " entries, more than lmrt "
                         "supports", f->path, key, n);
    const gguf_str *strs = kv->value.v.arr.strs;
    size_t longest = 0;
    for (uint64_t i = 0; i < n; i++)
        if (strs[i].len > longest)
            longest = (size_t)strs[i].len;

    lmrt_status st;
    char *joined = NULL;
    t->n_merges = (uint32_t)n;
    t->merge_pair = lmrt_calloc(n ? 2 * n : 1, sizeof *t->merge_pair);
    t->merge_result = lmrt_calloc(n ? n : 1, sizeof *t->merge_result);
    joined = lmrt_malloc(longest + 1);
    if (!t->merge_pair || !t->merge_result || !joined) {
        st = lmrt_fail(LMRT_E_NOMEM, "%s: out of memory for %" PRIu64 " merges", f->path, n);
        goto done;
    }
    if ((st = vocab_map_init(&t->merges, (size_t)n, merge_key, t)))
        goto done;
    for (uint64_t i = 0; i < n; i++) {
        const char *s = strs[i].ptr;
        size_t len = (size_t)strs[i].len;
        /* "LEFT RIGHT": the first space after the first byte separates them. */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp || sp == s + len - 1) {
            st = lmrt_fail(LMRT_E_FORMAT, "%s: %s[%" PRIu64 "] = '%.*s' is not two tokens "
                           "separated by a space", f->path, key, i, (int)(len > 64 ? 64 : len), s);
            goto done;
        }
        size_t left_len = (size_t)(sp - s), right_len = len - left_len - 1;
        int64_t left = vocab_map_get(&t->by_text, s, left_len);
        int64_t right = vocab_map_get(&t->by_text, sp + 1, right_len);
        if (left < 0 || right < 0) {
            const char *bad = left < 0 ? s : sp + 1;
            size_t bad_len = left < 0 ? left_len : right_len;
            st = lmrt_fail(LMRT_E_FORMAT, "%s: %s[%" PRIu64 "] names '%.*s', which is not a "
                           "token of the vocabulary", f->path, key, i,
                           (int)(bad_len > 64 ? 64 : bad_len), bad);
            goto done;
        }
        memcpy(joined, s, left_len);
        memcpy(joined + left_len, sp + 1, right_len);
        t->merge_pair[2 * i] = (uint32_t)left;
        t->merge_pair[2 * i + 1] = (uint32_t)right;
        t->merge_result[i] = (int32_t)vocab_map_get(&t->by_text, joined, left_len + right_len);
        vocab_map_put(&t->merges, (uint32_t)i, false);   /* a repeated pair keeps its first rank */
    }
    st = LMRT_OK;
done:
    lmrt_mem_free(joined);
    return st;
}

lmrt_status bpe_load(tokenizer *t, const gguf_file *f)
{
    gguf_str pre = {"default", 7};
    lmrt_status st = gguf_get_str(f, "tokenizer.ggml.pre", &pre);
    if (st && st != LMRT_E_NOT_FOUND)
        return st;
    if (str_is(pre, "llama-bpe") || str_is(pre, "llama3") || str_is(pre, "llama-v3"))
        t->ignore_merges = true;     /* as Llama 3's tokenizer.json says */
    else if (!str_is(pre, "default"))
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: pre-tokenizer tokenizer.ggml.pre = '%.*s' is "
                         "not supported by lmrt (it knows llama-bpe, llama3, default)", f->path,
                         (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);

    decode_pieces(t);
    for (unsigned b = 0; b < 256; b++) {
        char c[4];
        t->byte_token[b] = tok_find_normal(t, c, utf8_encode(byte_to_cp(b), c));
    }
    return load_merges(t, f);
}

/* ------------------------------------------------------------------------ */
/* The Llama 3 pre-tokenizer                                                */
/* ------------------------------------------------------------------------ */

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * matched by hand over decoded characters, the way llama.cpp's
 * unicode_regex_split_custom_llama3 does. An invalid byte is one character of no
 * class, as U+FFFD (a symbol) would be. */
#define PRESENT 8u   /* class bit of every character inside the text */

typedef struct pre_text {
    size_t n;                    /* characters */
    const size_t *off;           /* [n + 1] byte offset of each character */
    const uint32_t *cp;          /* [n] code points (UNI_INVALID for a stray byte) */
    const uint8_t *cls;          /* [n] UNI_* | PRESENT */
} pre_text;

static unsigned cls_at(const pre_text *p, size_t i)
{
    return i < p->n ? p->cls[i] : 0;
}

static bool is_other(unsigned cls)     /* [^\s\p{L}\p{N}], inside the text */
{
    return (cls & PRESENT) && !(cls & (UNI_SPACE | UNI_LETTER | UNI_NUMBER));
}

static bool is_rn(uint32_t cp)
{
    return cp == '\r' || cp == '\n';
}

static uint32_t ascii_lower(uint32_t cp)
{
    return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
}

/* The end (a character index) of the pre-token that starts at character `pos`. */
static size_t llama3_next(const pre_text *p, size_t pos)
{
    const size_t n = p->n;
    const uint32_t c = p->cp[pos];
    const unsigned cls = p->cls[pos];

    if (c == '\'' && pos + 1 < n) {                         /* contractions */
        uint32_t c1 = ascii_lower(p->cp[pos + 1]);
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
            return pos + 2;
        if (pos + 2 < n) {
            uint32_t c2 = ascii_lower(p->cp[pos + 2]);
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
                return pos + 3;
        }
    }
    if (!is_rn(c) && !(cls & UNI_NUMBER) &&                 /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        ((cls & UNI_LETTER) || (cls_at(p, pos + 1) & UNI_LETTER))) {
        pos++;
        while (cls_at(p, pos) & UNI_LETTER)
            pos++;
        return pos;
    }
    if (cls & UNI_NUMBER) {                                 /* \p{N}{1,3} */
        size_t end = pos + 1;
        while (end < n && end - pos < 3 && (p->cls[end] & UNI_NUMBER))
            end++;
        return end;
    }
    if (is_other(c == ' ' ? cls_at(p, pos + 1) : cls)) {   /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
        pos += c == ' ';
        while (is_other(cls_at(p, pos)))
            pos++;
        while (pos < n && is_rn(p->cp[pos]))
            pos++;
        return pos;
    }
    size_t n_space = 0, rn_end = 0;
    while (cls_at(p, pos + n_space) & UNI_SPACE) {
        if (is_rn(p->cp[pos + n_space]))
            rn_end = pos + n_space + 1;
        n_space++;
    }
    if (rn_end)                                             /* \s*[\r\n]+ */
        return rn_end;
    if (n_space > 1 && pos + n_space < n)                   /* \s+(?!\S) */
        return pos + n_space - 1;
    if (n_space)                                            /* \s+ */
        return pos + n_space;
    return pos + 1;
}

/* ------------------------------------------------------------------------ */
/* Merging                                                                  */
/* ------------------------------------------------------------------------ */

/* A symbol of the word being merged; symbol i starts at byte i of the word. */
typedef struct bpe_sym {
    int32_t id;                  /* its token, -1 when its text is none */
    uint32_t len;                /* bytes; 0 once merged into its left neighbour */
    int32_t prev, next;          /* neighbours, -1 at the ends */
} bpe_sym;

typedef struct bpe_pair {
    uint32_t rank;
    uint32_t left, right;
    uint32_t size;               /* left + right bytes when queued: a stale pair differs */
} bpe_pair;

typedef struct bpe_work {
    bpe_sym *sym;                /* [cap] */
    bpe_pair *heap;              /* [3 * cap]: n - 1 first pairs + 2 per merge */
    char *mapped;                /* [2 * cap] the word in the GPT-2 alphabet */
    size_t n_heap;
    size_t cap;
} bpe_work;

/* Lowest rank first; among equal ranks the leftmost, as llama.cpp and Hugging Face do. */
static bool pair_before(const bpe_pair *a, const bpe_pair *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(bpe_work *w, bpe_pair p)
{
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &w->heap[parent]))
            break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = p;
}

static bpe_pair heap_pop(bpe_work *w)
{
    bpe_pair top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && pair_before(&w->heap[c + 1], &w->heap[c]))
            c++;
        if (!pair_before(&w->heap[c], &last))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n)
        w->heap[i] = last;
    return top;
}

static void queue_pair(const tokenizer *t, bpe_work *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0 || w->sym[left].id < 0 || w->sym[right].id < 0)
        return;
    uint32_t key[2] = {(uint32_t)w->sym[left].id, (uint32_t)w->sym[right].id};
    int64_t rank = vocab_map_get(&t->merges, key, sizeof key);
    if (rank < 0)
        return;
    bpe_pair p = {(uint32_t)rank, (uint32_t)left, (uint32_t)right,
                  w->sym[left].len + w->sym[right].len};
    heap_push(w, p);
}

static lmrt_status work_reserve(bpe_work *w, size_t n)
{
    if (n <= w->cap)
        return LMRT_OK;
    lmrt_mem_free(w->sym);
    lmrt_mem_free(w->heap);
    lmrt_mem_free(w->mapped);
    w->sym = lmrt_calloc(n, sizeof *w->sym);
    w->heap = lmrt_calloc(n, 3 * sizeof *w->heap);
    w->mapped = lmrt_calloc(n, 2);
    w->cap = 0;
    if (!w->sym || !w->heap || !w->mapped)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory tokenizing a %zu-byte word", n);
    w->cap = n;
    return LMRT_OK;
}

static lmrt_status push_bytes(const tokenizer *t, const unsigned char *s, size_t n, token_vec *out)
{
    lmrt_status st = LMRT_OK;
    for (size_t i = 0; i < n && !st; i++) {
        int32_t id = t->byte_token[s[i]] >= 0 ? t->byte_token[s[i]] : t->unk;
        if (id >= 0)
            st = token_vec_push(out, id);
    }
    return st;
}

/* BPE over one pre-token of `n` bytes. */
static lmrt_status bpe_word(const tokenizer *t, const unsigned char *s, size_t n, bpe_work *w,
                            token_vec *out)
{
    lmrt_status st;
    if (n == 1)
        return push_bytes(t, s, 1, out);
    if ((st = work_reserve(w, n)))
        return st;
    if (t->ignore_merges) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            m += utf8_encode(byte_to_cp(s[i]), w->mapped + m);
        int32_t id = tok_find_normal(t, w->mapped, m);
        if (id >= 0)
            return token_vec_push(out, id);
    }
    for (size_t i = 0; i < n; i++)
        w->sym[i] = (bpe_sym){t->byte_token[s[i]], 1, (int32_t)i - 1,
                              i + 1 < n ? (int32_t)i + 1 : -1};
    w->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++)
        queue_pair(t, w, (int32_t)i, (int32_t)i + 1);
    while (w->n_heap) {
        bpe_pair p = heap_pop(w);
        bpe_sym *l = &w->sym[p.left], *r = &w->sym[p.right];
        /* Symbols only grow, so a changed neighbour shows as a zero or a larger sum. */
        if (l->len == 0 || r->len == 0 || l->len + r->len != p.size)
            continue;
        l->id = t->merge_result[p.rank];
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (l->next >= 0)
            w->sym[l->next].prev = (int32_t)p.left;
        queue_pair(t, w, l->prev, (int32_t)p.left);
        queue_pair(t, w, (int32_t)p.left, l->next);
    }
    for (int32_t i = 0; i >= 0 && !st; i = w->sym[i].next)
        st = w->sym[i].id >= 0 ? token_vec_push(out, w->sym[i].id)
                               : push_bytes(t, s + i, w->sym[i].len, out);
    return st;
}

lmrt_status bpe_encode(const tokenizer *t, const char *text, size_t len, token_vec *out)
{
    if (len == 0)
        return LMRT_OK;
    /* One block for the decoded text: offsets, code points, classes. */
    size_t per_char = sizeof(size_t) + sizeof(uint32_t) + 1, bytes;
    if (__builtin_mul_overflow(len + 1, per_char, &bytes))
        return lmrt_fail(LMRT_E_NOMEM, "text of %zu bytes is too long to tokenize", len);
    char *block = lmrt_malloc(bytes);
    if (!block)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory tokenizing %zu bytes", len);
    size_t *off = (size_t *)block;
    uint32_t *cp = (uint32_t *)(off + len + 1);
    uint8_t *cls = (uint8_t *)(cp + len + 1);
    const unsigned char *s = (const unsigned char *)text;
    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        off[n] = i;
        i += utf8_decode(s + i, len - i, &cp[n]);
        cls[n] = (uint8_t)((cp[n] == UNI_INVALID ? 0 : uni_class(cp[n])) | PRESENT);
    }
    off[n] = len;

    pre_text p = {n, off, cp, cls};
    bpe_work w = {0};
    lmrt_status st = LMRT_OK;
    for (size_t pos = 0; pos < n && !st;) {
        size_t end = llama3_next(&p, pos);
        st = bpe_word(t, s + off[pos], off[end] - off[pos], &w, out);
        pos = end;
    }
    lmrt_mem_free(w.sym);
    lmrt_mem_free(w.heap);
    lmrt_mem_free(w.mapped);
    lmrt_mem_free(block);
    return st;
}

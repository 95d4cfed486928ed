/* spm.c - SentencePiece BPE as GGUF "llama" vocabularies define it (Llama 2,
 * stories260K): spaces become U+2581, a dummy-prefix space goes first, characters
 * merge by the score of the piece they form (llama.cpp's llm_tokenizer_spm), and a
 * character no piece covers falls back to <0xNN> byte tokens, else to the unknown token. */
#include <inttypes.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

static const char space_mark[3] = {'\xE2', '\x96', '\x81'};   /* U+2581 LOWER ONE EIGHTH BLOCK */

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Whether a piece has U+2581 after a character other than U+2581 (or is not UTF-8). */
static bool mark_inside(const char *s, size_t n)
{
    bool prev_mark = true;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (cp == UNI_INVALID || (cp == 0x2581 && !prev_mark))
            return true;
        prev_mark = cp == 0x2581;
        i += len;
    }
    return false;
}

lmrt_status spm_load(tokenizer *t, const gguf_file *f)
{
    for (int32_t id = 0; id < t->n_vocab; id++) {
        tok_entry *e = &t->tokens[id];
        const char *s = tok_text(t, id);
        if (e->kind == TOKEN_KIND_BYTE) {
            int hi = e->text_len == 6 ? hex_digit(s[3]) : -1, lo = hi >= 0 ? hex_digit(s[4]) : -1;
            if (lo < 0 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
                return lmrt_fail(LMRT_E_FORMAT, "%s: token %d is a byte token, but its text "
                                 "'%.*s' is not <0xNN>", f->path, (int)id,
                                 (int)(e->text_len > 64 ? 64 : e->text_len), s);
            unsigned char b = (unsigned char)(hi << 4 | lo);
            e->piece = tok_arena_put(t, &b, 1);
            e->piece_len = 1;
            if (t->byte_token[b] < 0)
                t->byte_token[b] = id;
        } else if (e->kind == TOKEN_KIND_NORMAL) {
            /* U+2581 stands for a space. */
            e->piece = (uint32_t)t->arena_len;
            for (size_t i = 0; i < e->text_len;) {
                if (e->text_len - i >= 3 && memcmp(s + i, space_mark, 3) == 0) {
                    tok_arena_put(t, " ", 1);
                    i += 3;
                } else {
                    tok_arena_put(t, s + i, 1);
                    i++;
                }
            }
            e->piece_len = (uint32_t)(t->arena_len - e->piece);
        }
    }
    t->spm_word_split = true;
    for (int32_t id = 0; id < t->n_vocab && t->spm_word_split; id++)
        if (t->tokens[id].kind == TOKEN_KIND_NORMAL)
            t->spm_word_split = !mark_inside(tok_text(t, id), t->tokens[id].text_len);
    /* Without a <0xNN> token, a byte may still have a one-byte piece of its own. */
    for (unsigned b = 0; b < 256; b++)
        if (t->byte_token[b] < 0) {
            unsigned char c = (unsigned char)b;
            t->byte_token[b] = tok_find_normal(t, &c, 1);
        }
    return LMRT_OK;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                 */
/* ------------------------------------------------------------------------ */

/* A symbol: a run of whole characters of the escaped text. */
typedef struct spm_sym {
    uint32_t start;              /* byte offset in the escaped text */
    uint32_t len;                /* bytes; 0 once merged into its left neighbour */
    int32_t prev, next;
} spm_sym;

typedef struct spm_pair {
    float score;                 /* of the piece the two symbols form */
    uint32_t left, right;
    uint32_t size;               /* bytes of that piece: a stale pair differs */
} spm_pair;

typedef struct spm_work {
    const tokenizer *t;
    const char *text;            /* escaped */
    spm_sym *sym;
    spm_pair *heap;
    size_t n_heap;
} spm_work;

/* Highest score first; among equal scores the leftmost (llama.cpp's order). */
static bool pair_before(const spm_pair *a, const spm_pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(spm_work *w, spm_pair p)
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

static spm_pair heap_pop(spm_work *w)
{
    spm_pair top = w->heap[0], last = w->heap[--w->n_heap];
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

/* Queues the merge of two neighbours when their joined text is a normal piece.
 * (SentencePiece never forms control, byte or unused pieces by merging.) */
static void queue_pair(spm_work *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return;
    const spm_sym *l = &w->sym[left], *r = &w->sym[right];
    int32_t id = tok_find_normal(w->t, w->text + l->start, l->len + r->len);
    if (id < 0)
        return;
    spm_pair p = {w->t->tokens[id].score, (uint32_t)left, (uint32_t)right, l->len + r->len};
    heap_push(w, p);
}

/* A final symbol: its piece, else its bytes as <0xNN> tokens, else one unknown token. */
static lmrt_status emit_symbol(const tokenizer *t, const char *s, size_t n, token_vec *out)
{
    int32_t id = tok_find_normal(t, s, n);
    if (id >= 0)
        return token_vec_push(out, id);
    bool bytes = true;
    for (size_t i = 0; i < n; i++)
        bytes = bytes && t->byte_token[(unsigned char)s[i]] >= 0;
    if (!bytes)
        return t->unk >= 0 ? token_vec_push(out, t->unk) : LMRT_OK;
    lmrt_status st = LMRT_OK;
    for (size_t i = 0; i < n && !st; i++)
        st = token_vec_push(out, t->byte_token[(unsigned char)s[i]]);
    return st;
}

/* Merges the symbols [a, b) (a chain of their own) and emits their tokens. */
static lmrt_status merge_span(spm_work *w, size_t a, size_t b, token_vec *out)
{
    lmrt_status st = LMRT_OK;
    w->n_heap = 0;
    for (size_t i = a; i + 1 < b; i++)
        queue_pair(w, (int32_t)i, (int32_t)i + 1);
    while (w->n_heap) {
        spm_pair p = heap_pop(w);
        spm_sym *l = &w->sym[p.left], *r = &w->sym[p.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != p.size)
            continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (l->next >= 0)
            w->sym[l->next].prev = (int32_t)p.left;
        queue_pair(w, l->prev, (int32_t)p.left);
        queue_pair(w, (int32_t)p.left, l->next);
    }
    for (int32_t i = (int32_t)a; i >= 0 && !st; i = w->sym[i].next)
        st = emit_symbol(w->t, w->text + w->sym[i].start, w->sym[i].len, out);
    return st;
}

static bool is_mark(const spm_work *w, size_t i)
{
    return w->sym[i].len == 3 && memcmp(w->text + w->sym[i].start, space_mark, 3) == 0;
}

lmrt_status spm_encode(const tokenizer *t, const char *text, size_t len, bool prefix_space,
                       token_vec *out)
{
    if (len == 0)
        return LMRT_OK;
    /* Escape: every space (and the dummy prefix) becomes U+2581, so at most 3 bytes a byte. */
    size_t cap, n_max = len + (prefix_space ? 1 : 0);
    if (__builtin_mul_overflow(n_max, 3, &cap) || cap > UINT32_MAX)
        return lmrt_fail(LMRT_E_NOMEM, "text of %zu bytes is too long to tokenize", len);
    char *esc = lmrt_malloc(cap);
    spm_work w = {t, esc, lmrt_calloc(n_max, sizeof(spm_sym)),
                  lmrt_calloc(n_max, 3 * sizeof(spm_pair)), 0};
    lmrt_status st = LMRT_OK;
    if (!esc || !w.sym || !w.heap) {
        st = lmrt_fail(LMRT_E_NOMEM, "out of memory tokenizing %zu bytes", len);
        goto done;
    }
    size_t m = 0;
    if (prefix_space) {
        memcpy(esc, space_mark, 3);
        m = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(esc + m, space_mark, 3);
            m += 3;
        } else {
            esc[m++] = text[i];
        }
    }

    /* One symbol per character; a byte of invalid UTF-8 is a character of its own. */
    size_t n = 0;
    for (size_t i = 0; i < m; n++) {
        uint32_t cp;
        size_t clen = utf8_decode((const unsigned char *)esc + i, m - i, &cp);
        w.sym[n] = (spm_sym){(uint32_t)i, (uint32_t)clen, (int32_t)n - 1, (int32_t)n + 1};
        i += clen;
    }
    /* Merge word by word where that gives the same result (see spm_word_split). */
    for (size_t a = 0, b; a < n && !st; a = b) {
        b = a + 1;
        while (b < n && !(t->spm_word_split && is_mark(&w, b) && !is_mark(&w, b - 1)))
            b++;
        w.sym[a].prev = -1;
        w.sym[b - 1].next = -1;
        st = merge_span(&w, a, b, out);
    }
done:
    lmrt_mem_free(w.heap);
    lmrt_mem_free(w.sym);
    lmrt_mem_free(esc);
    return st;
}

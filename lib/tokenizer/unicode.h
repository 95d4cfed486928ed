/* unicode.h - the little Unicode the tokenizers need: strict UTF-8 decoding and
 * encoding, and the character classes of the Llama 3 pre-tokenizer (generated
 * tables in unicode_tables.c). No allocation, no locale. */
#ifndef LMRT_TOKENIZER_UNICODE_H
#define LMRT_TOKENIZER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Class bits: \p{L}, \p{N}, \s (the White_Space property). */
enum { UNI_LETTER = 1, UNI_NUMBER = 2, UNI_SPACE = 4 };

/* The class bits of a code point; 0 for everything else (and >= 0x110000). */
unsigned uni_class(uint32_t cp);

/* What utf8_decode gives for a byte that does not start a valid sequence. */
#define UNI_INVALID 0xFFFFFFFFu

/* Decodes the character at s[0..n), n >= 1: returns its length (1..4) and sets *cp.
 * Overlong forms, surrogates, values past U+10FFFF and truncated sequences are
 * invalid: length 1, *cp = UNI_INVALID, so that every byte is accounted for. */
static inline size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, v = c & 0x07, min = 0x10000;
    else
        goto invalid;
    if (n < len)
        goto invalid;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            goto invalid;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        goto invalid;
    *cp = v;
    return len;
invalid:
    *cp = UNI_INVALID;
    return 1;
}

/* Writes the UTF-8 form of cp (< 0x110000) to out (4 bytes of room); returns its length. */
static inline size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

#endif

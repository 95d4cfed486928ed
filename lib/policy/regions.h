/* regions.h - ISO 3166-1 alpha-2 region codes, the EU/EEA/ALL groups and region sets.
 * Pure data and lookups: no allocation, no policy (policy.h decides what is licensed
 * where). A "code" argument is two ASCII letters in any case unless stated otherwise. */
#ifndef LMRT_POLICY_REGIONS_H
#define LMRT_POLICY_REGIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmrt.h"

/* Flags of a table entry, also the group bits of a region_set. */
enum {
    REGION_EU = 1u << 0,    /* one of the 27 member states of the European Union */
    REGION_EEA = 1u << 1,   /* European Economic Area: the EU plus IS, LI, NO */
    REGION_ALL = 1u << 2    /* group "ALL" only: every code, assigned or not */
};

/* One officially assigned ISO 3166-1 alpha-2 code. */
typedef struct region_info {
    char code[3];           /* upper case, NUL-terminated */
    uint8_t flags;          /* REGION_EU | REGION_EEA */
    const char *name;       /* English short name (UTF-8), e.g. "Germany" */
} region_info;

/* A region as the caller gave it. */
typedef struct region_code {
    char code[3];           /* upper case, NUL-terminated; "" when unset */
    bool known;             /* an officially assigned code; false when unset or e.g. "XX" */
} region_code;

/* Parses a region: exactly two ASCII letters, any case ("de", "DE"), no spaces.
 * NULL or "" is OK and gives an unset region; a well-formed code that is not
 * assigned ("XX", "EU") is OK with known = false. Anything else ("D", "DEU",
 * "1A", "d€") is LMRT_E_INVALID_ARG naming the input; *out is then untouched. */
lmrt_status region_parse(const char *text, region_code *out);

/* The whole table, sorted by code: *n gets its length (249). */
const region_info *region_table(size_t *n);
/* The entry of an assigned code, or NULL (unassigned, malformed or NULL). */
const region_info *region_lookup(const char *code);
/* The English short name of an assigned code, or NULL. */
const char *region_name(const char *code);
bool region_is_eu(const char *code);
bool region_is_eea(const char *code);

/* Whether `group_or_code` ("EU", "EEA", "ALL", or a code) contains `code`.
 * A code contains itself (any case, assigned or not); an unknown group or a
 * malformed argument contains nothing. "ALL" contains every well-formed code. */
bool region_group_contains(const char *group_or_code, const char *code);

/* A set of regions: whole groups plus single codes, one bit per code AA..ZZ. */
#define REGION_SET_BITS (26 * 26)
typedef struct region_set {
    uint32_t groups;                          /* REGION_EU | REGION_EEA | REGION_ALL */
    uint8_t codes[(REGION_SET_BITS + 7) / 8];
} region_set;

/* Adds a token of `len` bytes (not NUL-terminated): a group name or an assigned
 * code, any case. Returns false, leaving the set alone, for anything else. */
bool region_set_add(region_set *set, const char *token, size_t len);
/* Whether the set contains a well-formed code (any case; false when malformed). */
bool region_set_contains(const region_set *set, const char *code);

/* Writes `len` bytes of untrusted input into buf (cap > 0) for an error message:
 * control bytes become '?', and a long input is cut (at a UTF-8 boundary) with "...". */
void region_quote(const char *bytes, size_t len, char *buf, size_t cap);

#endif

/* regions.c - the ISO 3166-1 alpha-2 table (all 249 assigned codes) and the EU/EEA groups.
 * Data, not code: one static table sorted by code, searched by bisection. Decides
 * nothing about licensing (policy.c does) and never allocates. */
#include "policy/regions.h"

#include <string.h>

#include "base/error.h"

/* Table flags, short so that each entry stays one line. */
#define EU (REGION_EU | REGION_EEA)
#define EEA REGION_EEA

/* Officially assigned codes with their English short names, as in ISO 3166-1
 * (checked against Debian iso-codes 4.15 and tzdata's iso3166.tab, which agree).
 * EU membership as of 2020-02-01 (the United Kingdom left); EEA = EU + IS LI NO.
 * Sorted by code: region_lookup bisects it and test_policy checks the order. */
static const region_info region_entries[] = {
    {"AD", 0, "Andorra"},
    {"AE", 0, "United Arab Emirates"},
    {"AF", 0, "Afghanistan"},
    {"AG", 0, "Antigua and Barbuda"},
    {"AI", 0, "Anguilla"},
    {"AL", 0, "Albania"},
    {"AM", 0, "Armenia"},
    {"AO", 0, "Angola"},
    {"AQ", 0, "Antarctica"},
    {"AR", 0, "Argentina"},
    {"AS", 0, "American Samoa"},
    {"AT", EU, "Austria"},
    {"AU", 0, "Australia"},
    {"AW", 0, "Aruba"},
    {"AX", 0, "Åland Islands"},
    {"AZ", 0, "Azerbaijan"},
    {"BA", 0, "Bosnia and Herzegovina"},
    {"BB", 0, "Barbados"},
    {"BD", 0, "Bangladesh"},
    {"BE", EU, "Belgium"},
    {"BF", 0, "Burkina Faso"},
    {"BG", EU, "Bulgaria"},
    {"BH", 0, "Bahrain"},
    {"BI", 0, "Burundi"},
    {"BJ", 0, "Benin"},
    {"BL", 0, "Saint Barthélemy"},
    {"BM", 0, "Bermuda"},
    {"BN", 0, "Brunei Darussalam"},
    {"BO", 0, "Bolivia, Plurinational State of"},
    {"BQ", 0, "Bonaire, Sint Eustatius and Saba"},
    {"BR", 0, "Brazil"},
    {"BS", 0, "Bahamas"},
    {"BT", 0, "Bhutan"},
    {"BV", 0, "Bouvet Island"},
    {"BW", 0, "Botswana"},
    {"BY", 0, "Belarus"},
    {"BZ", 0, "Belize"},
    {"CA", 0, "Canada"},
    {"CC", 0, "Cocos (Keeling) Islands"},
    {"CD", 0, "Congo, The Democratic Republic of the"},
    {"CF", 0, "Central African Republic"},
    {"CG", 0, "Congo"},
    {"CH", 0, "Switzerland"},
    {"CI", 0, "Côte d'Ivoire"},
    {"CK", 0, "Cook Islands"},
    {"CL", 0, "Chile"},
    {"CM", 0, "Cameroon"},
    {"CN", 0, "China"},
    {"CO", 0, "Colombia"},
    {"CR", 0, "Costa Rica"},
    {"CU", 0, "Cuba"},
    {"CV", 0, "Cabo Verde"},
    {"CW", 0, "Curaçao"},
    {"CX", 0, "Christmas Island"},
    {"CY", EU, "Cyprus"},
    {"CZ", EU, "Czechia"},
    {"DE", EU, "Germany"},
    {"DJ", 0, "Djibouti"},
    {"DK", EU, "Denmark"},
    {"DM", 0, "Dominica"},
    {"DO", 0, "Dominican Republic"},
    {"DZ", 0, "Algeria"},
    {"EC", 0, "Ecuador"},
    {"EE", EU, "Estonia"},
    {"EG", 0, "Egypt"},
    {"EH", 0, "Western Sahara"},
    {"ER", 0, "Eritrea"},
    {"ES", EU, "Spain"},
    {"ET", 0, "Ethiopia"},
    {"FI", EU, "Finland"},
    {"FJ", 0, "Fiji"},
    {"FK", 0, "Falkland Islands (Malvinas)"},
    {"FM", 0, "Micronesia, Federated States of"},
    {"FO", 0, "Faroe Islands"},
    {"FR", EU, "France"},
    {"GA", 0, "Gabon"},
    {"GB", 0, "United Kingdom"},
    {"GD", 0, "Grenada"},
    {"GE", 0, "Georgia"},
    {"GF", 0, "French Guiana"},
    {"GG", 0, "Guernsey"},
    {"GH", 0, "Ghana"},
    {"GI", 0, "Gibraltar"},
    {"GL", 0, "Greenland"},
    {"GM", 0, "Gambia"},
    {"GN", 0, "Guinea"},
    {"GP", 0, "Guadeloupe"},
    {"GQ", 0, "Equatorial Guinea"},
    {"GR", EU, "Greece"},
    {"GS", 0, "South Georgia and the South Sandwich Islands"},
    {"GT", 0, "Guatemala"},
    {"GU", 0, "Guam"},
    {"GW", 0, "Guinea-Bissau"},
    {"GY", 0, "Guyana"},
    {"HK", 0, "Hong Kong"},
    {"HM", 0, "Heard Island and McDonald Islands"},
    {"HN", 0, "Honduras"},
    {"HR", EU, "Croatia"},
    {"HT", 0, "Haiti"},
    {"HU", EU, "Hungary"},
    {"ID", 0, "Indonesia"},
    {"IE", EU, "Ireland"},
    {"IL", 0, "Israel"},
    {"IM", 0, "Isle of Man"},
    {"IN", 0, "India"},
    {"IO", 0, "British Indian Ocean Territory"},
    {"IQ", 0, "Iraq"},
    {"IR", 0, "Iran, Islamic Republic of"},
    {"IS", EEA, "Iceland"},
    {"IT", EU, "Italy"},
    {"JE", 0, "Jersey"},
    {"JM", 0, "Jamaica"},
    {"JO", 0, "Jordan"},
    {"JP", 0, "Japan"},
    {"KE", 0, "Kenya"},
    {"KG", 0, "Kyrgyzstan"},
    {"KH", 0, "Cambodia"},
    {"KI", 0, "Kiribati"},
    {"KM", 0, "Comoros"},
    {"KN", 0, "Saint Kitts and Nevis"},
    {"KP", 0, "Korea, Democratic People's Republic of"},
    {"KR", 0, "Korea, Republic of"},
    {"KW", 0, "Kuwait"},
    {"KY", 0, "Cayman Islands"},
    {"KZ", 0, "Kazakhstan"},
    {"LA", 0, "Lao People's Democratic Republic"},
    {"LB", 0, "Lebanon"},
    {"LC", 0, "Saint Lucia"},
    {"LI", EEA, "Liechtenstein"},
    {"LK", 0, "Sri Lanka"},
    {"LR", 0, "Liberia"},
    {"LS", 0, "Lesotho"},
    {"LT", EU, "Lithuania"},
    {"LU", EU, "Luxembourg"},
    {"LV", EU, "Latvia"},
    {"LY", 0, "Libya"},
    {"MA", 0, "Morocco"},
    {"MC", 0, "Monaco"},
    {"MD", 0, "Moldova, Republic of"},
    {"ME", 0, "Montenegro"},
    {"MF", 0, "Saint Martin (French part)"},
    {"MG", 0, "Madagascar"},
    {"MH", 0, "Marshall Islands"},
    {"MK", 0, "North Macedonia"},
    {"ML", 0, "Mali"},
    {"MM", 0, "Myanmar"},
    {"MN", 0, "Mongolia"},
    {"MO", 0, "Macao"},
    {"MP", 0, "Northern Mariana Islands"},
    {"MQ", 0, "Martinique"},
    {"MR", 0, "Mauritania"},
    {"MS", 0, "Montserrat"},
    {"MT", EU, "Malta"},
    {"MU", 0, "Mauritius"},
    {"MV", 0, "Maldives"},
    {"MW", 0, "Malawi"},
    {"MX", 0, "Mexico"},
    {"MY", 0, "Malaysia"},
    {"MZ", 0, "Mozambique"},
    {"NA", 0, "Namibia"},
    {"NC", 0, "New Caledonia"},
    {"NE", 0, "Niger"},
    {"NF", 0, "Norfolk Island"},
    {"NG", 0, "Nigeria"},
    {"NI", 0, "Nicaragua"},
    {"NL", EU, "Netherlands"},
    {"NO", EEA, "Norway"},
    {"NP", 0, "Nepal"},
    {"NR", 0, "Nauru"},
    {"NU", 0, "Niue"},
    {"NZ", 0, "New Zealand"},
    {"OM", 0, "Oman"},
    {"PA", 0, "Panama"},
    {"PE", 0, "Peru"},
    {"PF", 0, "French Polynesia"},
    {"PG", 0, "Papua New Guinea"},
    {"PH", 0, "Philippines"},
    {"PK", 0, "Pakistan"},
    {"PL", EU, "Poland"},
    {"PM", 0, "Saint Pierre and Miquelon"},
    {"PN", 0, "Pitcairn"},
    {"PR", 0, "Puerto Rico"},
    {"PS", 0, "Palestine, State of"},
    {"PT", EU, "Portugal"},
    {"PW", 0, "Palau"},
    {"PY", 0, "Paraguay"},
    {"QA", 0, "Qatar"},
    {"RE", 0, "Réunion"},
    {"RO", EU, "Romania"},
    {"RS", 0, "Serbia"},
    {"RU", 0, "Russian Federation"},
    {"RW", 0, "Rwanda"},
    {"SA", 0, "Saudi Arabia"},
    {"SB", 0, "Solomon Islands"},
    {"SC", 0, "Seychelles"},
    {"SD", 0, "Sudan"},
    {"SE", EU, "Sweden"},
    {"SG", 0, "Singapore"},
    {"SH", 0, "Saint Helena, Ascension and Tristan da Cunha"},
    {"SI", EU, "Slovenia"},
    {"SJ", 0, "Svalbard and Jan Mayen"},
    {"SK", EU, "Slovakia"},
    {"SL", 0, "Sierra Leone"},
    {"SM", 0, "San Marino"},
    {"SN", 0, "Senegal"},
    {"SO", 0, "Somalia"},
    {"SR", 0, "Suriname"},
    {"SS", 0, "South Sudan"},
    {"ST", 0, "Sao Tome and Principe"},
    {"SV", 0, "El Salvador"},
    {"SX", 0, "Sint Maarten (Dutch part)"},
    {"SY", 0, "Syrian Arab Republic"},
    {"SZ", 0, "Eswatini"},
    {"TC", 0, "Turks and Caicos Islands"},
    {"TD", 0, "Chad"},
    {"TF", 0, "French Southern Territories"},
    {"TG", 0, "Togo"},
    {"TH", 0, "Thailand"},
    {"TJ", 0, "Tajikistan"},
    {"TK", 0, "Tokelau"},
    {"TL", 0, "Timor-Leste"},
    {"TM", 0, "Turkmenistan"},
    {"TN", 0, "Tunisia"},
    {"TO", 0, "Tonga"},
    {"TR", 0, "Türkiye"},
    {"TT", 0, "Trinidad and Tobago"},
    {"TV", 0, "Tuvalu"},
    {"TW", 0, "Taiwan, Province of China"},
    {"TZ", 0, "Tanzania, United Republic of"},
    {"UA", 0, "Ukraine"},
    {"UG", 0, "Uganda"},
    {"UM", 0, "United States Minor Outlying Islands"},
    {"US", 0, "United States"},
    {"UY", 0, "Uruguay"},
    {"UZ", 0, "Uzbekistan"},
    {"VA", 0, "Holy See (Vatican City State)"},
    {"VC", 0, "Saint Vincent and the Grenadines"},
    {"VE", 0, "Venezuela, Bolivarian Republic of"},
    {"VG", 0, "Virgin Islands, British"},
    {"VI", 0, "Virgin Islands, U.S."},
    {"VN", 0, "Viet Nam"},
    {"VU", 0, "Vanuatu"},
    {"WF", 0, "Wallis and Futuna"},
    {"WS", 0, "Samoa"},
    {"YE", 0, "Yemen"},
    {"YT", 0, "Mayotte"},
    {"ZA", 0, "South Africa"},
    {"ZM", 0, "Zambia"},
    {"ZW", 0, "Zimbabwe"},
};

#undef EU
#undef EEA

#define N_REGIONS (sizeof region_entries / sizeof region_entries[0])

/* Group names a region set or region_group_contains accepts, with their bits. */
static const struct {
    const char *name;
    uint32_t bit;
} region_groups[] = {
    {"EU", REGION_EU},
    {"EEA", REGION_EEA},
    {"ALL", REGION_ALL},
};

static bool is_ascii_letter(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static char ascii_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* Upper-cases a well-formed code of exactly `len` bytes into up[3]; false otherwise. */
static bool normalize_code(const char *s, size_t len, char up[3])
{
    if (!s || len != 2 || !is_ascii_letter(s[0]) || !is_ascii_letter(s[1]))
        return false;
    up[0] = ascii_upper(s[0]);
    up[1] = ascii_upper(s[1]);
    up[2] = '\0';
    return true;
}

/* normalize_code for a NUL-terminated string. */
static bool normalize_cstr(const char *s, char up[3])
{
    return s && normalize_code(s, strnlen(s, 3), up);
}

/* Bit index of an upper-case code in a region_set. */
static unsigned code_bit(const char up[3])
{
    return (unsigned)(up[0] - 'A') * 26u + (unsigned)(up[1] - 'A');
}

static const region_info *lookup_upper(const char up[3])
{
    size_t lo = 0, hi = N_REGIONS;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(region_entries[mid].code, up, 2);
        if (c == 0)
            return &region_entries[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The bit of a group name of `len` bytes (any case), or 0. */
static uint32_t group_bit(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof region_groups / sizeof region_groups[0]; i++) {
        const char *name = region_groups[i].name;
        if (strlen(name) != len)
            continue;
        size_t j = 0;
        while (j < len && ascii_upper(s[j]) == name[j])
            j++;
        if (j == len)
            return region_groups[i].bit;
    }
    return 0;
}

void region_quote(const char *bytes, size_t len, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return;
    /* Show at most 32 bytes, and leave room for "..." and the NUL. */
    size_t room = cap > 4 ? cap - 4 : 0;
    size_t keep = len < 32 ? len : 32;
    if (keep > room)
        keep = room;
    bool cut = keep < len;
    if (cut)   /* don't split a UTF-8 sequence: back up over continuation bytes */
        while (keep > 0 && ((unsigned char)bytes[keep] & 0xC0) == 0x80)
            keep--;
    size_t n = 0;
    for (size_t i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)bytes[i];
        buf[n++] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    if (cut && cap >= 4) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
}

lmrt_status region_parse(const char *text, region_code *out)
{
    if (!out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "region_parse: out is NULL");
    if (!text || !text[0]) {
        memset(out, 0, sizeof *out);
        return LMRT_OK;
    }
    char up[3];
    if (!normalize_cstr(text, up)) {
        char shown[48];
        region_quote(text, strlen(text), shown, sizeof shown);
        return lmrt_fail(LMRT_E_INVALID_ARG,
                         "region '%s' is not a two-letter ISO 3166-1 alpha-2 code "
                         "(e.g. \"DE\", \"US\")", shown);
    }
    memcpy(out->code, up, sizeof up);
    out->known = lookup_upper(up) != NULL;
    return LMRT_OK;
}

const region_info *region_table(size_t *n)
{
    if (n)
        *n = N_REGIONS;
    return region_entries;
}

const region_info *region_lookup(const char *code)
{
    char up[3];
    return normalize_cstr(code, up) ? lookup_upper(up) : NULL;
}

const char *region_name(const char *code)
{
    const region_info *r = region_lookup(code);
    return r ? r->name : NULL;
}

bool region_is_eu(const char *code)
{
    const region_info *r = region_lookup(code);
    return r && (r->flags & REGION_EU);
}

bool region_is_eea(const char *code)
{
    const region_info *r = region_lookup(code);
    return r && (r->flags & REGION_EEA);
}

bool region_group_contains(const char *group_or_code, const char *code)
{
    region_set set;
    memset(&set, 0, sizeof set);
    if (!group_or_code)
        return false;
    size_t len = strnlen(group_or_code, 4);
    uint32_t bit = group_bit(group_or_code, len);
    char up[3];
    if (bit)
        set.groups = bit;
    else if (normalize_code(group_or_code, len, up))
        set.codes[code_bit(up) / 8] |= (uint8_t)(1u << (code_bit(up) % 8));
    return region_set_contains(&set, code);
}

bool region_set_add(region_set *set, const char *token, size_t len)
{
    if (!set || !token)
        return false;
    uint32_t bit = group_bit(token, len);
    if (bit) {
        set->groups |= bit;
        return true;
    }
    char up[3];
    if (!normalize_code(token, len, up) || !lookup_upper(up))
        return false;
    unsigned b = code_bit(up);
    set->codes[b / 8] |= (uint8_t)(1u << (b % 8));
    return true;
}

bool region_set_contains(const region_set *set, const char *code)
{
    char up[3];
    if (!set || !normalize_cstr(code, up))
        return false;
    if (set->groups & REGION_ALL)
        return true;
    const region_info *r = lookup_upper(up);
    if (r && (set->groups & r->flags))
        return true;
    unsigned b = code_bit(up);
    return (set->codes[b / 8] >> (b % 8)) & 1u;
}

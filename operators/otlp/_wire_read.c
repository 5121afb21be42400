/*
 * operators.otlp._wire: growable buffers, skipping unknown fields and groups, and the
 * schema-driven validation of the messages whose content is not extracted.
 */
#include "_wire.h"

/* ------------------------------------------------------------------------------------------ */
/* growable byte buffers                                                                      */

int buf_grow(Buf *b, size_t extra) {
    size_t need = b->len + extra;
    if (need <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > ((size_t)PY_SSIZE_T_MAX) / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    char *p = PyMem_Realloc(b->data, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void buf_free(Buf *b) {
    PyMem_Free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* UTF-8 beyond ASCII                                                                         */

/* The multi-byte sequence at s[*i] is well formed (no overlong form, no surrogate, nothing above
 * U+10FFFF: table 3-7 of the Unicode standard); *i moves past it. */
int utf8_seq(const uint8_t *s, size_t n, size_t *i) {
    uint8_t c = s[*i];
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : lo;
        hi = c == 0xed ? 0x9f : hi;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : lo;
        hi = c == 0xf4 ? 0x8f : hi;
    } else {
        return 0;
    }
    if (*i + len > n || s[*i + 1] < lo || s[*i + 1] > hi) {
        return 0;
    }
    for (size_t k = 2; k < len; k++) {
        if ((s[*i + k] & 0xc0) != 0x80) {
            return 0;
        }
    }
    *i += len;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* skipping unknown fields and groups                                                         */

static int skip_group(Dec *d, const uint8_t **pp, const uint8_t *end, uint32_t gfn, int depth);

/* Skip one field's value whose tag has been read (unknown, or known with another wire type). */
int skip_value(Dec *d, const uint8_t **pp, const uint8_t *end, uint32_t fn, int wt, int depth) {
    uint64_t v;
    size_t n;
    const uint8_t *s;
    switch (wt) {
    case 0:
        return rd_varint(d, pp, end, &v);
    case 1:
        TRY(need(d, *pp, end, 8, "truncated fixed64"));
        *pp += 8;
        return 0;
    case 2:
        return rd_bytes(d, pp, end, &s, &n);
    case 3:
        return skip_group(d, pp, end, fn, depth + 1);
    case 4:
        return fail(d, "unexpected end-group tag");
    case 5:
        TRY(need(d, *pp, end, 4, "truncated fixed32"));
        *pp += 4;
        return 0;
    default:
        return fail(d, "invalid wire type");
    }
}

static int skip_group(Dec *d, const uint8_t **pp, const uint8_t *end, uint32_t gfn, int depth) {
    if (depth > MAX_DEPTH) {
        return fail(d, "groups nest too deeply");
    }
    for (;;) {
        uint32_t fn;
        int wt;
        if (*pp >= end) {
            return fail(d, "unterminated group");
        }
        TRY(rd_tag(d, pp, end, &fn, &wt));
        if (wt == 4) {
            return fn == gfn ? 0 : fail(d, "mismatched end-group tag");
        }
        TRY(skip_value(d, pp, end, fn, wt, depth));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* schema-driven validation of the messages whose content is not extracted                    */

enum { FK_NONE = 0, FK_VARINT, FK_I64, FK_I32, FK_BYTES, FK_STRING, FK_MSG };

typedef struct {
    uint8_t kind;
    uint8_t sub;
} FSpec;

#define MAXF 17
static const FSpec SPECS[M_COUNT][MAXF] = {
    [M_REQ] = {[1] = {FK_MSG, M_RS}},
    [M_RS] = {[1] = {FK_MSG, M_RES}, [2] = {FK_MSG, M_SS}, [3] = {FK_STRING, 0}},
    [M_RES] = {[1] = {FK_MSG, M_KV}, [2] = {FK_VARINT, 0}, [3] = {FK_MSG, M_ENTREF}},
    [M_ENTREF] = {[1] = {FK_STRING, 0},
                  [2] = {FK_STRING, 0},
                  [3] = {FK_STRING, 0},
                  [4] = {FK_STRING, 0}},
    [M_KV] = {[1] = {FK_STRING, 0}, [2] = {FK_MSG, M_ANY}, [3] = {FK_VARINT, 0}},
    [M_ANY] = {[1] = {FK_STRING, 0},
               [2] = {FK_VARINT, 0},
               [3] = {FK_VARINT, 0},
               [4] = {FK_I64, 0},
               [5] = {FK_MSG, M_ARR},
               [6] = {FK_MSG, M_KVL},
               [7] = {FK_BYTES, 0},
               [8] = {FK_VARINT, 0}},
    [M_ARR] = {[1] = {FK_MSG, M_ANY}},
    [M_KVL] = {[1] = {FK_MSG, M_KV}},
    [M_SS] = {[1] = {FK_MSG, M_SCOPE}, [2] = {FK_MSG, M_SPAN}, [3] = {FK_STRING, 0}},
    [M_SCOPE] = {[1] = {FK_STRING, 0},
                 [2] = {FK_STRING, 0},
                 [3] = {FK_MSG, M_KV},
                 [4] = {FK_VARINT, 0}},
    [M_SPAN] = {[1] = {FK_BYTES, 0},
                [2] = {FK_BYTES, 0},
                [3] = {FK_STRING, 0},
                [4] = {FK_BYTES, 0},
                [5] = {FK_STRING, 0},
                [6] = {FK_VARINT, 0},
                [7] = {FK_I64, 0},
                [8] = {FK_I64, 0},
                [9] = {FK_MSG, M_KV},
                [10] = {FK_VARINT, 0},
                [11] = {FK_MSG, M_EVENT},
                [12] = {FK_VARINT, 0},
                [13] = {FK_MSG, M_LINK},
                [14] = {FK_VARINT, 0},
                [15] = {FK_MSG, M_STATUS},
                [16] = {FK_I32, 0}},
    [M_EVENT] = {[1] = {FK_I64, 0},
                 [2] = {FK_STRING, 0},
                 [3] = {FK_MSG, M_KV},
                 [4] = {FK_VARINT, 0}},
    [M_LINK] = {[1] = {FK_BYTES, 0},
                [2] = {FK_BYTES, 0},
                [3] = {FK_STRING, 0},
                [4] = {FK_MSG, M_KV},
                [5] = {FK_VARINT, 0},
                [6] = {FK_I32, 0}},
    [M_STATUS] = {[2] = {FK_STRING, 0}, [3] = {FK_VARINT, 0}},
};

static const int FK_WT[] = {-1, 0, 1, 5, 2, 2, 2};

/* One field of message type mt whose tag has been read: validate it or skip it. */
int generic_field(Dec *d, int mt, uint32_t fn, int wt, const uint8_t **pp, const uint8_t *end,
                  int depth) {
    if (fn == 0) {
        return fail(d, "field number 0");
    }
    FSpec s = fn < MAXF ? SPECS[mt][fn] : (FSpec){FK_NONE, 0};
    if (s.kind == FK_NONE || FK_WT[s.kind] != wt) {
        return skip_value(d, pp, end, fn, wt, depth);
    }
    size_t n;
    const uint8_t *sub;
    switch (s.kind) {
    case FK_STRING:
        return rd_string(d, pp, end, &sub, &n);
    case FK_MSG:
        TRY(rd_bytes(d, pp, end, &sub, &n));
        return validate(d, s.sub, sub, sub + n, depth + 1);
    default:
        return skip_value(d, pp, end, fn, wt, depth);
    }
}

int validate(Dec *d, int mt, const uint8_t *p, const uint8_t *end, int depth) {
    TRY(nest(d, depth));
    uint32_t fn;
    int wt, more;
    while ((more = next_field(d, &p, end, &fn, &wt)) > 0) {
        TRY(generic_field(d, mt, fn, wt, &p, end, depth));
    }
    return more;
}

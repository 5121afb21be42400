/*
 * operators.otlp._wire: decode OTLP ExportTraceServiceRequest protobuf bytes into columns.
 *
 * Walks the protobuf wire format directly (no protobuf library) and accepts or rejects exactly
 * what upb's ParseFromString accepts or rejects for this schema: every known string field is
 * checked for UTF-8, every known sub-message is walked, unknown fields (and known fields with a
 * wire type that does not match their declaration, which upb also keeps as unknown) are skipped,
 * groups are skipped with the same nesting limit (100 levels of messages plus groups), tags are
 * at most 5 bytes and 32 bits, sizes at most 5 bytes and below 2^31.
 *
 * decode_spans(data: bytes) -> dict, see operators/otlp/wire.py for the keys.
 * Wire errors and out-of-range column values raise ValueError with a short reason.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 100

/* ------------------------------------------------------------------------------------------ */
/* growable byte buffers                                                                      */

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} Buf;

static int buf_grow(Buf *b, size_t extra) {
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

static inline int buf_put(Buf *b, const void *v, size_t n) {
    if (b->len + n > b->cap && buf_grow(b, n) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, v, n);
    b->len += n;
    return 0;
}

static void buf_free(Buf *b) {
    PyMem_Free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* decoder state                                                                              */

typedef struct {
    const uint8_t *p;
    uint32_t len;
    uint32_t idx;
    uint64_t hash;
} NameEnt;

/* An AnyValue as far as the status conversion needs it: which oneof member was set last. */
enum {
    AV_NONE = 0,
    AV_STRING = 1,
    AV_BOOL = 2,
    AV_INT = 3,
    AV_DOUBLE = 4,
    AV_ARRAY = 5,
    AV_KVLIST = 6,
    AV_BYTES = 7,
    AV_STRINDEX = 8
};

typedef struct {
    int kase;
    uint64_t v;
    const uint8_t *p;
    size_t len;
} AnyCap;

typedef struct {
    const uint8_t *base;
    const char *err; /* wire error reason; NULL when a Python exception is set instead */
    Buf rs_idx;      /* int32 per span */
    Buf name_idx;    /* int32 per span */
    Buf kind;        /* int8 per span */
    Buf status;      /* int8 per span */
    Buf start;       /* int64 per span */
    Buf end;         /* int64 per span */
    Buf http;        /* int32 per span */
    Buf rpc;         /* int32 per span */
    Buf offs;        /* int64 (offset, length) per span */
    Buf ids;         /* int64 (offset, length) x 3 per span: trace, span, parent */
    Buf res_chunks;  /* int64 (resource spans index, offset, length) per Resource field */
    Buf names;       /* int64 (offset, length) per unique name */
    int64_t n_rs;
    int64_t n_spans;
    NameEnt *tab;
    size_t tab_cap;
    size_t n_names;
} Dec;

static int fail(Dec *d, const char *why) {
    if (d->err == NULL) {
        d->err = why;
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* wire primitives                                                                            */

static inline int rd_varint(Dec *d, const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) {
        *out = *p;
        *pp = p + 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (p >= end) {
            return fail(d, "truncated varint");
        }
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            *pp = p;
            return 0;
        }
    }
    return fail(d, "varint longer than 10 bytes");
}

/* A tag or a size: at most 5 bytes. */
static inline int rd_varint5(Dec *d, const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) {
        *out = *p;
        *pp = p + 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 5; i++) {
        if (p >= end) {
            return fail(d, "truncated varint");
        }
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            *pp = p;
            return 0;
        }
    }
    return fail(d, "tag or length varint longer than 5 bytes");
}

static inline int rd_tag(Dec *d, const uint8_t **pp, const uint8_t *end, uint32_t *fn, int *wt) {
    uint64_t t;
    if (rd_varint5(d, pp, end, &t) < 0) {
        return -1;
    }
    if (t > 0xffffffffu) {
        return fail(d, "tag over 32 bits");
    }
    *fn = (uint32_t)(t >> 3);
    *wt = (int)(t & 7);
    return 0;
}

static inline int rd_size(Dec *d, const uint8_t **pp, const uint8_t *end, size_t *out) {
    uint64_t s;
    if (rd_varint5(d, pp, end, &s) < 0) {
        return -1;
    }
    if (s >= 0x7fffffffu || s > (uint64_t)(end - *pp)) {
        return fail(d, "length past the end");
    }
    *out = (size_t)s;
    return 0;
}

static inline int rd_fixed64(Dec *d, const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    if (end - *pp < 8) {
        return fail(d, "truncated fixed64");
    }
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | (*pp)[i];
    }
    *out = v;
    *pp += 8;
    return 0;
}

static int utf8_ok(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c >= 0xc2 && c <= 0xdf) {
            if (i + 1 >= n || (s[i + 1] & 0xc0) != 0x80) {
                return 0;
            }
            i += 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            if (i + 2 >= n) {
                return 0;
            }
            uint8_t c1 = s[i + 1], c2 = s[i + 2];
            if ((c1 & 0xc0) != 0x80 || (c2 & 0xc0) != 0x80) {
                return 0;
            }
            if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f)) {
                return 0;
            }
            i += 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            if (i + 3 >= n) {
                return 0;
            }
            uint8_t c1 = s[i + 1], c2 = s[i + 2], c3 = s[i + 3];
            if ((c1 & 0xc0) != 0x80 || (c2 & 0xc0) != 0x80 || (c3 & 0xc0) != 0x80) {
                return 0;
            }
            if ((c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 > 0x8f)) {
                return 0;
            }
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

static inline int rd_string(Dec *d, const uint8_t **pp, const uint8_t *end, const uint8_t **s,
                            size_t *n) {
    if (rd_size(d, pp, end, n) < 0) {
        return -1;
    }
    *s = *pp;
    if (!utf8_ok(*s, *n)) {
        return fail(d, "string field is not valid UTF-8");
    }
    *pp += *n;
    return 0;
}

static int skip_group(Dec *d, const uint8_t **pp, const uint8_t *end, uint32_t gfn, int depth);

/* Skip one field's value whose tag has been read (unknown, or known with another wire type). */
static int skip_value(Dec *d, const uint8_t **pp, const uint8_t *end, uint32_t fn, int wt,
                      int depth) {
    uint64_t v;
    size_t n;
    switch (wt) {
    case 0:
        return rd_varint(d, pp, end, &v);
    case 1:
        if (end - *pp < 8) {
            return fail(d, "truncated fixed64");
        }
        *pp += 8;
        return 0;
    case 2:
        if (rd_size(d, pp, end, &n) < 0) {
            return -1;
        }
        *pp += n;
        return 0;
    case 3:
        return skip_group(d, pp, end, fn, depth + 1);
    case 4:
        return fail(d, "unexpected end-group tag");
    case 5:
        if (end - *pp < 4) {
            return fail(d, "truncated fixed32");
        }
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
        if (rd_tag(d, pp, end, &fn, &wt) < 0) {
            return -1;
        }
        if (wt == 4) {
            if (fn != gfn) {
                return fail(d, "mismatched end-group tag");
            }
            return 0;
        }
        if (skip_value(d, pp, end, fn, wt, depth) < 0) {
            return -1;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* schema-driven validation of the messages whose content is not extracted                    */

enum { FK_NONE = 0, FK_VARINT, FK_I64, FK_I32, FK_BYTES, FK_STRING, FK_MSG };
enum {
    M_REQ,
    M_RS,
    M_RES,
    M_ENTREF,
    M_KV,
    M_ANY,
    M_ARR,
    M_KVL,
    M_SS,
    M_SCOPE,
    M_SPAN,
    M_EVENT,
    M_LINK,
    M_STATUS,
    M_COUNT
};

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

static int validate(Dec *d, int mt, const uint8_t *p, const uint8_t *end, int depth);

/* One field of message type mt whose tag has been read: validate it or skip it. */
static int generic_field(Dec *d, int mt, uint32_t fn, int wt, const uint8_t **pp,
                         const uint8_t *end, int depth) {
    if (fn == 0) {
        return fail(d, "field number 0");
    }
    FSpec s = fn < MAXF ? SPECS[mt][fn] : (FSpec){FK_NONE, 0};
    if (s.kind == FK_NONE || FK_WT[s.kind] != wt) {
        return skip_value(d, pp, end, fn, wt, depth);
    }
    size_t n;
    const uint8_t *str;
    switch (s.kind) {
    case FK_STRING:
        return rd_string(d, pp, end, &str, &n);
    case FK_MSG:
        if (rd_size(d, pp, end, &n) < 0) {
            return -1;
        }
        if (validate(d, s.sub, *pp, *pp + n, depth + 1) < 0) {
            return -1;
        }
        *pp += n;
        return 0;
    default:
        return skip_value(d, pp, end, fn, wt, depth);
    }
}

static int validate(Dec *d, int mt, const uint8_t *p, const uint8_t *end, int depth) {
    if (depth > MAX_DEPTH) {
        return fail(d, "messages nest too deeply");
    }
    while (p < end) {
        uint32_t fn;
        int wt;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) {
            return -1;
        }
        if (generic_field(d, mt, fn, wt, &p, end, depth) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* extraction: request -> resource spans -> scope spans -> span                               */

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)n;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static int tab_grow(Dec *d) {
    size_t cap = d->tab_cap ? d->tab_cap * 2 : 64;
    NameEnt *t = PyMem_Calloc(cap, sizeof(NameEnt));
    if (t == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < d->tab_cap; i++) {
        NameEnt *e = &d->tab[i];
        if (e->p == NULL) {
            continue;
        }
        size_t j = (size_t)e->hash & (cap - 1);
        while (t[j].p != NULL) {
            j = (j + 1) & (cap - 1);
        }
        t[j] = *e;
    }
    PyMem_Free(d->tab);
    d->tab = t;
    d->tab_cap = cap;
    return 0;
}

/* Index of the name (p, n) in first-seen order; p is never NULL (points into the data). */
static int intern_name(Dec *d, const uint8_t *p, size_t n, int32_t *idx) {
    if ((d->n_names + 1) * 2 > d->tab_cap && tab_grow(d) < 0) {
        return -1;
    }
    uint64_t h = hash_bytes(p, n);
    size_t mask = d->tab_cap - 1;
    size_t j = (size_t)h & mask;
    for (;;) {
        NameEnt *e = &d->tab[j];
        if (e->p == NULL) {
            if (d->n_names >= 0x7fffffff) {
                return fail(d, "too many span names");
            }
            e->p = p;
            e->len = (uint32_t)n;
            e->hash = h;
            e->idx = (uint32_t)d->n_names++;
            int64_t pair[2] = {(int64_t)(p - d->base), (int64_t)n};
            if (buf_put(&d->names, pair, sizeof pair) < 0) {
                return -1;
            }
            *idx = (int32_t)e->idx;
            return 0;
        }
        if (e->hash == h && e->len == n && memcmp(e->p, p, n) == 0) {
            *idx = (int32_t)e->idx;
            return 0;
        }
        j = (j + 1) & mask;
    }
}

static int parse_any_cap(Dec *d, const uint8_t *p, const uint8_t *end, int depth, AnyCap *c) {
    if (depth > MAX_DEPTH) {
        return fail(d, "messages nest too deeply");
    }
    while (p < end) {
        uint32_t fn;
        int wt;
        uint64_t v;
        size_t n;
        const uint8_t *s;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) {
            return -1;
        }
        if (wt == 0 && (fn == 2 || fn == 3 || fn == 8)) {
            if (rd_varint(d, &p, end, &v) < 0) {
                return -1;
            }
            c->kase = (int)fn;
            c->v = v;
        } else if (wt == 2 && (fn == 1 || fn == 7)) {
            if (fn == 1) {
                if (rd_string(d, &p, end, &s, &n) < 0) {
                    return -1;
                }
            } else {
                if (rd_size(d, &p, end, &n) < 0) {
                    return -1;
                }
                s = p;
                p += n;
            }
            c->kase = (int)fn;
            c->p = s;
            c->len = n;
        } else if (wt == 1 && fn == 4) {
            if (rd_fixed64(d, &p, end, &v) < 0) {
                return -1;
            }
            c->kase = AV_DOUBLE;
            c->v = v;
        } else {
            if (generic_field(d, M_ANY, fn, wt, &p, end, depth) < 0) {
                return -1;
            }
            if (wt == 2 && (fn == 5 || fn == 6)) {
                c->kase = (int)fn;
            }
        }
    }
    return 0;
}

static const char HTTP_KEY1[] = "http.response.status_code";
static const char HTTP_KEY2[] = "http.status_code";
static const char RPC_KEY[] = "rpc.grpc.status_code";

/* A span attribute: validated like any KeyValue, and the status keys' values captured. */
static int parse_kv_cap(Dec *d, const uint8_t *p, const uint8_t *end, int depth, AnyCap *http,
                        AnyCap *rpc) {
    if (depth > MAX_DEPTH) {
        return fail(d, "messages nest too deeply");
    }
    const uint8_t *key = NULL;
    size_t klen = 0;
    AnyCap cap = {AV_NONE, 0, NULL, 0};
    while (p < end) {
        uint32_t fn;
        int wt;
        size_t n;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) {
            return -1;
        }
        if (wt == 2 && fn == 1) {
            if (rd_string(d, &p, end, &key, &klen) < 0) {
                return -1;
            }
        } else if (wt == 2 && fn == 2) {
            if (rd_size(d, &p, end, &n) < 0) {
                return -1;
            }
            if (parse_any_cap(d, p, p + n, depth + 1, &cap) < 0) {
                return -1;
            }
            p += n;
        } else if (generic_field(d, M_KV, fn, wt, &p, end, depth) < 0) {
            return -1;
        }
    }
    if (klen == sizeof HTTP_KEY1 - 1 && memcmp(key, HTTP_KEY1, klen) == 0) {
        *http = cap;
    } else if (klen == sizeof HTTP_KEY2 - 1 && memcmp(key, HTTP_KEY2, klen) == 0) {
        *http = cap;
    } else if (klen == sizeof RPC_KEY - 1 && memcmp(key, RPC_KEY, klen) == 0) {
        *rpc = cap;
    }
    return 0;
}

static int parse_status(Dec *d, const uint8_t *p, const uint8_t *end, int depth, int32_t *code) {
    if (depth > MAX_DEPTH) {
        return fail(d, "messages nest too deeply");
    }
    while (p < end) {
        uint32_t fn;
        int wt;
        uint64_t v;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) {
            return -1;
        }
        if (wt == 0 && fn == 3) {
            if (rd_varint(d, &p, end, &v) < 0) {
                return -1;
            }
            *code = (int32_t)(uint32_t)v;
        } else if (generic_field(d, M_STATUS, fn, wt, &p, end, depth) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Python's `int(value)` on an attribute value, `default` where int() raises TypeError/ValueError;
 * results outside int32 are an error (numpy would refuse them in the Python decoder). */
static int any_to_int32(Dec *d, const AnyCap *c, int32_t dflt, int32_t *out) {
    switch (c->kase) {
    case AV_INT: {
        int64_t x = (int64_t)c->v;
        if (x < INT32_MIN || x > INT32_MAX) {
            return fail(d, "status code attribute outside int32");
        }
        *out = (int32_t)x;
        return 0;
    }
    case AV_BOOL:
        *out = c->v != 0;
        return 0;
    case AV_STRINDEX:
        *out = (int32_t)(uint32_t)c->v;
        return 0;
    case AV_DOUBLE: {
        double x;
        memcpy(&x, &c->v, sizeof x);
        if (isnan(x)) {
            *out = dflt;
            return 0;
        }
        if (isinf(x)) {
            return fail(d, "status code attribute is an infinite double");
        }
        double t = trunc(x);
        if (t < -2147483648.0 || t > 2147483647.0) {
            return fail(d, "status code attribute outside int32");
        }
        *out = (int32_t)t;
        return 0;
    }
    case AV_STRING:
    case AV_BYTES: {
        PyObject *obj = c->kase == AV_STRING
                            ? PyUnicode_DecodeUTF8((const char *)c->p, (Py_ssize_t)c->len, "strict")
                            : PyBytes_FromStringAndSize((const char *)c->p, (Py_ssize_t)c->len);
        if (obj == NULL) {
            return -1;
        }
        PyObject *num = PyNumber_Long(obj);
        Py_DECREF(obj);
        if (num == NULL) {
            if (PyErr_ExceptionMatches(PyExc_ValueError) ||
                PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                *out = dflt;
                return 0;
            }
            return -1;
        }
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(num, &overflow);
        Py_DECREF(num);
        if (x == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (overflow || x < INT32_MIN || x > INT32_MAX) {
            return fail(d, "status code attribute outside int32");
        }
        *out = (int32_t)x;
        return 0;
    }
    default:
        *out = dflt;
        return 0;
    }
}

static int parse_span(Dec *d, const uint8_t *p, const uint8_t *end, int depth) {
    if (depth > MAX_DEPTH) {
        return fail(d, "messages nest too deeply");
    }
    const uint8_t *span_start = p;
    int64_t ids[6] = {0, 0, 0, 0, 0, 0};
    const uint8_t *name = p; /* any pointer into the data; length 0 when absent */
    size_t name_len = 0;
    int32_t kind = 0, status = 0;
    uint64_t t0 = 0, t1 = 0;
    AnyCap http = {AV_NONE, 0, NULL, 0}, rpc = {AV_NONE, 0, NULL, 0};
    while (p < end) {
        uint32_t fn;
        int wt;
        uint64_t v;
        size_t n;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) {
            return -1;
        }
        if (wt == 2 && (fn == 1 || fn == 2 || fn == 4)) {
            if (rd_size(d, &p, end, &n) < 0) {
                return -1;
            }
            int k = fn == 1 ? 0 : fn == 2 ? 2 : 4;
            ids[k] = (int64_t)(p - d->base);
            ids[k + 1] = (int64_t)n;
            p += n;
        } else if (wt == 2 && fn == 5) {
            if (rd_string(d, &p, end, &name, &name_len) < 0) {
                return -1;
            }
        } else if (wt == 0 && fn == 6) {
            if (rd_varint(d, &p, end, &v) < 0) {
                return -1;
            }
            kind = (int32_t)(uint32_t)v;
        } else if (wt == 1 && (fn == 7 || fn == 8)) {
            if (rd_fixed64(d, &p, end, fn == 7 ? &t0 : &t1) < 0) {
                return -1;
            }
        } else if (wt == 2 && fn == 9) {
            if (rd_size(d, &p, end, &n) < 0) {
                return -1;
            }
            if (parse_kv_cap(d, p, p + n, depth + 1, &http, &rpc) < 0) {
                return -1;
            }
            p += n;
        } else if (wt == 2 && fn == 15) {
            if (rd_size(d, &p, end, &n) < 0) {
                return -1;
            }
            if (parse_status(d, p, p + n, depth + 1, &status) < 0) {
                return -1;
            }
            p += n;
        } else if (generic_field(d, M_SPAN, fn, wt, &p, end, depth) < 0) {
            return -1;
        }
    }
    if (kind < -128 || kind > 127) {
        return fail(d, "span kind outside int8");
    }
    if (status < -128 || status > 127) {
        return fail(d, "span status code outside int8");
    }
    if (t0 > (uint64_t)INT64_MAX || t1 > (uint64_t)INT64_MAX) {
        return fail(d, "span time outside int64");
    }
    int32_t h = 0, g = -1, name_i;
    if (kind == 2 || kind == 5) {
        if (any_to_int32(d, &http, 0, &h) < 0 || any_to_int32(d, &rpc, -1, &g) < 0) {
            return -1;
        }
    }
    if (intern_name(d, name, name_len, &name_i) < 0) {
        return -1;
    }
    int32_t rs = (int32_t)(d->n_rs - 1);
    int8_t k8 = (int8_t)kind, s8 = (int8_t)status;
    int64_t s0 = (int64_t)t0, s1 = (int64_t)t1;
    int64_t off[2] = {(int64_t)(span_start - d->base), (int64_t)(end - span_start)};
    if (buf_put(&d->rs_idx, &rs, 4) < 0 || buf_put(&d->name_idx, &name_i, 4) < 0 ||
        buf_put(&d->kind, &k8, 1) < 0 || buf_put(&d->status, &s8, 1) < 0 ||
        buf_put(&d->start, &s0, 8) < 0 || buf_put(&d->end, &s1, 8) < 0 ||
        buf_put(&d->http, &h, 4) < 0 || buf_put(&d->rpc, &g, 4) < 0 ||
        buf_put(&d->offs, off, sizeof off) < 0 || buf_put(&d->ids, ids, sizeof ids) < 0) {
        return -1;
    }
    d->n_spans++;
    return 0;
}

static int parse_scope_spans(Dec *d, const uint8_t *p, const uint8_t *end, int depth) {
    if (depth > MAX_DEPTH) {
        return fail(d, "messages nest too deeply");
    }
    while (p < end) {
        uint32_t fn;
        int wt;
        size_t n;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) {
            return -1;
        }
        if (wt == 2 && fn == 2) {
            if (rd_size(d, &p, end, &n) < 0) {
                return -1;
            }
            if (parse_span(d, p, p + n, depth + 1) < 0) {
                return -1;
            }
            p += n;
        } else if (generic_field(d, M_SS, fn, wt, &p, end, depth) < 0) {
            return -1;
        }
    }
    return 0;
}

static int parse_resource_spans(Dec *d, const uint8_t *p, const uint8_t *end, int depth) {
    if (depth > MAX_DEPTH) {
        return fail(d, "messages nest too deeply");
    }
    if (d->n_rs >= 0x7fffffff) {
        return fail(d, "too many resourceSpans");
    }
    int64_t rs = d->n_rs++;
    while (p < end) {
        uint32_t fn;
        int wt;
        size_t n;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) {
            return -1;
        }
        if (wt == 2 && fn == 1) {
            if (rd_size(d, &p, end, &n) < 0) {
                return -1;
            }
            if (validate(d, M_RES, p, p + n, depth + 1) < 0) {
                return -1;
            }
            int64_t chunk[3] = {rs, (int64_t)(p - d->base), (int64_t)n};
            if (buf_put(&d->res_chunks, chunk, sizeof chunk) < 0) {
                return -1;
            }
            p += n;
        } else if (wt == 2 && fn == 2) {
            if (rd_size(d, &p, end, &n) < 0) {
                return -1;
            }
            if (parse_scope_spans(d, p, p + n, depth + 1) < 0) {
                return -1;
            }
            p += n;
        } else if (generic_field(d, M_RS, fn, wt, &p, end, depth) < 0) {
            return -1;
        }
    }
    return 0;
}

static int parse_request(Dec *d, const uint8_t *p, const uint8_t *end) {
    while (p < end) {
        uint32_t fn;
        int wt;
        size_t n;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) {
            return -1;
        }
        if (wt == 2 && fn == 1) {
            if (rd_size(d, &p, end, &n) < 0) {
                return -1;
            }
            if (parse_resource_spans(d, p, p + n, 1) < 0) {
                return -1;
            }
            p += n;
        } else if (generic_field(d, M_REQ, fn, wt, &p, end, 0) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* results                                                                                    */

static void dec_free(Dec *d) {
    Buf *bufs[] = {&d->rs_idx, &d->name_idx, &d->kind, &d->status,     &d->start, &d->end,
                   &d->http,   &d->rpc,      &d->offs, &d->res_chunks, &d->names, &d->ids};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        buf_free(bufs[i]);
    }
    PyMem_Free(d->tab);
    d->tab = NULL;
}

/* dict[key] = obj, stealing obj (which may be NULL after a failed constructor). */
static int put(PyObject *dict, const char *key, PyObject *obj) {
    if (obj == NULL) {
        return -1;
    }
    int r = PyDict_SetItemString(dict, key, obj);
    Py_DECREF(obj);
    return r;
}

static PyObject *buf_bytes(const Buf *b) {
    return PyBytes_FromStringAndSize(b->len ? b->data : NULL, (Py_ssize_t)b->len);
}

static PyObject *id_list(const Dec *d, int k) {
    Py_ssize_t n = (Py_ssize_t)d->n_spans;
    PyObject *list = PyList_New(n);
    if (list == NULL) {
        return NULL;
    }
    const int64_t *ids = (const int64_t *)d->ids.data;
    for (Py_ssize_t i = 0; i < n; i++) {
        const int64_t *e = ids + 6 * i + k;
        PyObject *b = PyBytes_FromStringAndSize((const char *)d->base + e[0], (Py_ssize_t)e[1]);
        if (b == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, b);
    }
    return list;
}

/* int32 (trace_id, span_id, parent_span_id) lengths per span, for Python's length checks */
static PyObject *id_lengths(const Dec *d) {
    Py_ssize_t n = (Py_ssize_t)d->n_spans;
    PyObject *b = PyBytes_FromStringAndSize(NULL, n * 3 * (Py_ssize_t)sizeof(int32_t));
    if (b == NULL) {
        return NULL;
    }
    int32_t *out = (int32_t *)PyBytes_AS_STRING(b);
    const int64_t *ids = (const int64_t *)d->ids.data;
    for (Py_ssize_t i = 0; i < n; i++) {
        out[3 * i] = (int32_t)ids[6 * i + 1];
        out[3 * i + 1] = (int32_t)ids[6 * i + 3];
        out[3 * i + 2] = (int32_t)ids[6 * i + 5];
    }
    return b;
}

static PyObject *resource_list(const Dec *d) {
    Py_ssize_t n = (Py_ssize_t)d->n_rs;
    PyObject *list = PyList_New(n);
    if (list == NULL) {
        return NULL;
    }
    const int64_t *ch = (const int64_t *)d->res_chunks.data;
    size_t n_ch = d->res_chunks.len / (3 * sizeof(int64_t));
    size_t c = 0;
    for (Py_ssize_t rs = 0; rs < n; rs++) {
        size_t first = c;
        Py_ssize_t total = 0;
        while (c < n_ch && ch[3 * c] == rs) {
            total += (Py_ssize_t)ch[3 * c + 2];
            c++;
        }
        PyObject *b;
        if (c - first == 1) {
            b = PyBytes_FromStringAndSize((const char *)d->base + ch[3 * first + 1], total);
        } else {
            /* several Resource fields merge: their concatenation parses as the merged message */
            b = PyBytes_FromStringAndSize(NULL, total);
            if (b != NULL) {
                char *out = PyBytes_AS_STRING(b);
                for (size_t j = first; j < c; j++) {
                    memcpy(out, d->base + ch[3 * j + 1], (size_t)ch[3 * j + 2]);
                    out += ch[3 * j + 2];
                }
            }
        }
        if (b == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, rs, b);
    }
    return list;
}

static PyObject *build_result(Dec *d) {
    PyObject *res = PyDict_New();
    if (res == NULL) {
        return NULL;
    }
    Py_ssize_t n_names = (Py_ssize_t)d->n_names;
    PyObject *names = PyList_New(n_names);
    if (names == NULL) {
        Py_DECREF(res);
        return NULL;
    }
    const int64_t *np = (const int64_t *)d->names.data;
    for (Py_ssize_t i = 0; i < n_names; i++) {
        PyObject *s =
            PyUnicode_DecodeUTF8((const char *)d->base + np[2 * i], (Py_ssize_t)np[2 * i + 1], "strict");
        if (s == NULL) {
            Py_DECREF(names);
            Py_DECREF(res);
            return NULL;
        }
        PyList_SET_ITEM(names, i, s);
    }
    Py_ssize_t n = (Py_ssize_t)d->n_spans;
    PyObject *ops = PyList_New(n);
    if (ops == NULL) {
        Py_DECREF(names);
        Py_DECREF(res);
        return NULL;
    }
    const int32_t *ni = (const int32_t *)d->name_idx.data;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PyList_GET_ITEM(names, ni[i]);
        Py_INCREF(s);
        PyList_SET_ITEM(ops, i, s);
    }
    if (put(res, "names", names) < 0 || put(res, "operations", ops) < 0 ||
        put(res, "n", PyLong_FromLongLong(d->n_spans)) < 0 ||
        put(res, "resources", resource_list(d)) < 0 ||
        put(res, "resource_index", buf_bytes(&d->rs_idx)) < 0 ||
        put(res, "name_index", buf_bytes(&d->name_idx)) < 0 ||
        put(res, "kind", buf_bytes(&d->kind)) < 0 ||
        put(res, "status", buf_bytes(&d->status)) < 0 ||
        put(res, "start", buf_bytes(&d->start)) < 0 || put(res, "end", buf_bytes(&d->end)) < 0 ||
        put(res, "http_status", buf_bytes(&d->http)) < 0 ||
        put(res, "rpc_status", buf_bytes(&d->rpc)) < 0 ||
        put(res, "span_offsets", buf_bytes(&d->offs)) < 0 ||
        put(res, "trace_id", id_list(d, 0)) < 0 || put(res, "span_id", id_list(d, 2)) < 0 ||
        put(res, "parent_span_id", id_list(d, 4)) < 0 ||
        put(res, "id_lengths", id_lengths(d)) < 0) {
        Py_DECREF(res);
        return NULL;
    }
    return res;
}

static PyObject *decode_spans(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Dec d;
    memset(&d, 0, sizeof d);
    d.base = (const uint8_t *)view.buf;
    const uint8_t *end = d.base + view.len;
    /* a lean span is about 170 bytes; reserve for that much and grow if needed */
    size_t est = (size_t)view.len / 128 + 16;
    PyObject *res = NULL;
    if (buf_grow(&d.rs_idx, est * 4) < 0 || buf_grow(&d.name_idx, est * 4) < 0 ||
        buf_grow(&d.kind, est) < 0 || buf_grow(&d.status, est) < 0 ||
        buf_grow(&d.start, est * 8) < 0 || buf_grow(&d.end, est * 8) < 0 ||
        buf_grow(&d.http, est * 4) < 0 || buf_grow(&d.rpc, est * 4) < 0 ||
        buf_grow(&d.offs, est * 16) < 0 || buf_grow(&d.ids, est * 48) < 0) {
        goto done;
    }
    if (parse_request(&d, d.base, end) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, d.err ? d.err : "malformed protobuf");
        }
        goto done;
    }
    res = build_result(&d);
done:
    dec_free(&d);
    PyBuffer_Release(&view);
    return res;
}

static PyMethodDef methods[] = {
    {"decode_spans", decode_spans, METH_O,
     "decode_spans(data: bytes) -> dict: columns of an OTLP ExportTraceServiceRequest."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "operators.otlp._wire",
    "Compiled OTLP trace protobuf decoder (wire format to columns).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wire(void) { return PyModule_Create(&module); }

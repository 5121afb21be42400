/*
 * operators.otlp._wire: extraction, request -> resource spans -> scope spans -> span, into the
 * column buffers of Dec; span names interned; the HTTP/gRPC status attributes of entry spans; the
 * selected attributes' text and the events' JSON when Dec.text asks for them (_wire_cols.c).
 */
#include "_wire.h"

#include <math.h>

/* ------------------------------------------------------------------------------------------ */
/* span names, interned in first-seen order                                                   */

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

/* Index of the name (p, n) in first-seen order; p is never NULL (points into the data). A name is
 * checked for UTF-8 when first seen: a span whose name repeats an earlier one is valid. */
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
            if (!utf8_ok(p, n)) {
                return fail(d, "string field is not valid UTF-8");
            }
            if (d->n_names >= 0x7fffffff) {
                return fail(d, "too many span names");
            }
            e->p = p;
            e->len = (uint32_t)n;
            e->hash = h;
            e->idx = (uint32_t)d->n_names++;
            int64_t pair[2] = {(int64_t)(uintptr_t)p, (int64_t)n};
            TRY(buf_put(&d->names, pair, sizeof pair));
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

/* ------------------------------------------------------------------------------------------ */
/* status attributes                                                                          */

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

static int parse_any_cap(Dec *d, const uint8_t *p, const uint8_t *end, int depth, AnyCap *c) {
    TRY(nest(d, depth));
    uint32_t fn;
    int wt, more;
    while ((more = next_field(d, &p, end, &fn, &wt)) > 0) {
        if (wt == 0 && (fn == 2 || fn == 3 || fn == 8)) {
            TRY(rd_varint(d, &p, end, &c->v));
            c->kase = (int)fn;
        } else if (wt == 2 && (fn == 1 || fn == 7)) {
            TRY(fn == 1 ? rd_string(d, &p, end, &c->p, &c->len)
                        : rd_bytes(d, &p, end, &c->p, &c->len));
            c->kase = (int)fn;
        } else if (wt == 1 && fn == 4) {
            TRY(rd_fixed64(d, &p, end, &c->v));
            c->kase = AV_DOUBLE;
        } else {
            TRY(generic_field(d, M_ANY, fn, wt, &p, end, depth));
            if (wt == 2 && (fn == 5 || fn == 6)) {
                c->kase = (int)fn;
            }
        }
    }
    return more;
}

/* True when the n bytes at s spell the string literal lit. */
#define IS_KEY(s, n, lit) ((n) == sizeof(lit) - 1 && memcmp((s), (lit), (n)) == 0)

/* A span attribute: validated like any KeyValue, the status keys' values captured, and the value
 * of a selected key when text columns are extracted. */
static int parse_kv_cap(Dec *d, const uint8_t *p, const uint8_t *end, int depth, AnyCap *http,
                        AnyCap *rpc) {
    TRY(nest(d, depth));
    const uint8_t *key = NULL, *val = NULL, *s;
    size_t klen = 0, vlen = 0, n;
    AnyCap cap = {AV_NONE, 0, NULL, 0};
    uint32_t fn;
    int wt, more;
    while ((more = next_field(d, &p, end, &fn, &wt)) > 0) {
        if (wt == 2 && fn == 1) {
            TRY(rd_string(d, &p, end, &key, &klen));
        } else if (wt == 2 && fn == 2) {
            TRY(rd_bytes(d, &p, end, &s, &n));
            TRY(parse_any_cap(d, s, s + n, depth + 1, &cap));
            val = s, vlen = n; /* the text column reads the last value alone, not the merge */
        } else {
            TRY(generic_field(d, M_KV, fn, wt, &p, end, depth));
        }
    }
    TRY(more);
    if (d->text != NULL) {
        TRY(text_attr(d, d->text, key, klen, val, vlen));
    }
    if (IS_KEY(key, klen, "http.response.status_code") || IS_KEY(key, klen, "http.status_code")) {
        *http = cap;
    } else if (IS_KEY(key, klen, "rpc.grpc.status_code")) {
        *rpc = cap;
    }
    return 0;
}

static int parse_status(Dec *d, const uint8_t *p, const uint8_t *end, int depth, int32_t *code) {
    TRY(nest(d, depth));
    uint64_t v;
    uint32_t fn;
    int wt, more;
    while ((more = next_field(d, &p, end, &fn, &wt)) > 0) {
        if (wt == 0 && fn == 3) {
            TRY(rd_varint(d, &p, end, &v));
            *code = (int32_t)(uint32_t)v;
        } else {
            TRY(generic_field(d, M_STATUS, fn, wt, &p, end, depth));
        }
    }
    return more;
}

static int int32_or_fail(Dec *d, long long x, int32_t *out) {
    if (x < INT32_MIN || x > INT32_MAX) {
        return fail(d, "status code attribute outside int32");
    }
    *out = (int32_t)x;
    return 0;
}

/* Python's int() of a str or bytes value; `dflt` where int() raises TypeError/ValueError. */
static int text_to_int32(Dec *d, const AnyCap *c, int32_t dflt, int32_t *out) {
    PyObject *obj = c->kase == AV_STRING
                        ? PyUnicode_DecodeUTF8((const char *)c->p, (Py_ssize_t)c->len, "strict")
                        : PyBytes_FromStringAndSize((const char *)c->p, (Py_ssize_t)c->len);
    if (obj == NULL) {
        return -1;
    }
    PyObject *num = PyNumber_Long(obj);
    Py_DECREF(obj);
    if (num == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_TypeError)) {
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
    if (overflow) {
        return fail(d, "status code attribute outside int32");
    }
    return int32_or_fail(d, x, out);
}

/* Python's `int(value)` on an attribute value, `default` where int() raises TypeError/ValueError;
 * results outside int32 are an error (numpy would refuse them in the Python decoder). */
static int any_to_int32(Dec *d, const AnyCap *c, int32_t dflt, int32_t *out) {
    switch (c->kase) {
    case AV_INT:
        return int32_or_fail(d, (long long)(int64_t)c->v, out);
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
    case AV_BYTES:
        return text_to_int32(d, c, dflt, out);
    default:
        *out = dflt;
        return 0;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* the message tree                                                                           */

/* Inlined into each caller, so that `sub` is a direct call there (through the pointer, decoding
 * took 5% longer). */
#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

typedef int (*SubParser)(Dec *d, const uint8_t *p, const uint8_t *end, int depth);

/* Message type mt in [p, end) whose repeated sub-message field `field` goes to `sub`; every other
 * field is validated or skipped. */
static ALWAYS_INLINE int walk_repeated(Dec *d, int mt, uint32_t field, SubParser sub,
                                       const uint8_t *p, const uint8_t *end, int depth) {
    TRY(nest(d, depth));
    const uint8_t *s;
    size_t n;
    uint32_t fn;
    int wt, more;
    while ((more = next_field(d, &p, end, &fn, &wt)) > 0) {
        if (wt == 2 && fn == field) {
            TRY(rd_bytes(d, &p, end, &s, &n));
            TRY(sub(d, s, s + n, depth + 1));
        } else {
            TRY(generic_field(d, mt, fn, wt, &p, end, depth));
        }
    }
    return more;
}

/* The span's columns, checked against their numpy types, onto the end of Dec's buffers. */
static int put_span(Dec *d, const uint8_t *span_start, const uint8_t *end, const int64_t ids[6],
                    const uint8_t *name, size_t name_len, int32_t kind, int32_t status, uint64_t t0,
                    uint64_t t1, const AnyCap *http, const AnyCap *rpc) {
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
        TRY(any_to_int32(d, http, 0, &h));
        TRY(any_to_int32(d, rpc, -1, &g));
    }
    TRY(intern_name(d, name, name_len, &name_i));
    int32_t rs = (int32_t)(d->n_rs - 1);
    int8_t k8 = (int8_t)kind, s8 = (int8_t)status;
    int64_t s0 = (int64_t)t0, s1 = (int64_t)t1;
    int64_t off[2] = {(int64_t)((uintptr_t)span_start - d->bias), (int64_t)(end - span_start)};
    if (buf_put(&d->rs_idx, &rs, 4) < 0 || buf_put(&d->name_idx, &name_i, 4) < 0 ||
        buf_put(&d->kind, &k8, 1) < 0 || buf_put(&d->status, &s8, 1) < 0 ||
        buf_put(&d->start, &s0, 8) < 0 || buf_put(&d->end, &s1, 8) < 0 ||
        buf_put(&d->http, &h, 4) < 0 || buf_put(&d->rpc, &g, 4) < 0 ||
        buf_put(&d->offs, off, sizeof off) < 0 || buf_put(&d->ids, ids, 6 * sizeof ids[0]) < 0) {
        return -1;
    }
    d->n_spans++;
    return 0;
}

static int parse_span(Dec *d, const uint8_t *p, const uint8_t *end, int depth) {
    TRY(nest(d, depth));
    const uint8_t *span_start = p, *s;
    int64_t ids[6] = {0, 0, 0, 0, 0, 0};
    const uint8_t *name = p; /* any pointer into the data; length 0 when absent */
    size_t name_len = 0, n;
    int32_t kind = 0, status = 0;
    uint64_t t0 = 0, t1 = 0, v;
    AnyCap http = {AV_NONE, 0, NULL, 0}, rpc = {AV_NONE, 0, NULL, 0};
    uint32_t fn;
    int wt, more;
    if (d->text != NULL) {
        text_span_begin(d->text);
    }
    while ((more = next_field(d, &p, end, &fn, &wt)) > 0) {
        if (wt == 2 && (fn == 1 || fn == 2 || fn == 4)) {
            TRY(rd_bytes(d, &p, end, &s, &n));
            int k = fn == 1 ? 0 : fn == 2 ? 2 : 4;
            ids[k] = (int64_t)(uintptr_t)s;
            ids[k + 1] = (int64_t)n;
        } else if (wt == 2 && fn == 5) {
            /* The name kept is checked for UTF-8 by intern_name, one it replaces here. */
            if (name_len && !utf8_ok(name, name_len)) {
                return fail(d, "string field is not valid UTF-8");
            }
            TRY(rd_bytes(d, &p, end, &name, &name_len));
        } else if (wt == 0 && fn == 6) {
            TRY(rd_varint(d, &p, end, &v));
            kind = (int32_t)(uint32_t)v;
        } else if (wt == 1 && (fn == 7 || fn == 8)) {
            TRY(rd_fixed64(d, &p, end, fn == 7 ? &t0 : &t1));
        } else if (wt == 2 && fn == 9) {
            TRY(rd_bytes(d, &p, end, &s, &n));
            TRY(parse_kv_cap(d, s, s + n, depth + 1, &http, &rpc));
        } else if (wt == 2 && fn == 15) {
            TRY(rd_bytes(d, &p, end, &s, &n));
            TRY(parse_status(d, s, s + n, depth + 1, &status));
        } else if (wt == 2 && fn == 11 && d->text != NULL) {
            /* an Event, validated as generic_field would, then its JSON */
            TRY(rd_bytes(d, &p, end, &s, &n));
            TRY(validate(d, M_EVENT, s, s + n, depth + 1));
            TRY(text_event(d, d->text, s, s + n));
        } else {
            TRY(generic_field(d, M_SPAN, fn, wt, &p, end, depth));
        }
    }
    TRY(more);
    TRY(put_span(d, span_start, end, ids, name, name_len, kind, status, t0, t1, &http, &rpc));
    return d->text != NULL ? text_span_end(d->text) : 0;
}

static int parse_resource_spans(Dec *d, const uint8_t *p, const uint8_t *end, int depth) {
    TRY(nest(d, depth));
    if (d->n_rs >= 0x7fffffff) {
        return fail(d, "too many resourceSpans");
    }
    int64_t rs = d->n_rs++;
    const uint8_t *s;
    size_t n;
    uint32_t fn;
    int wt, more;
    while ((more = next_field(d, &p, end, &fn, &wt)) > 0) {
        if (wt == 2 && fn == 1) {
            TRY(rd_bytes(d, &p, end, &s, &n));
            TRY(validate(d, M_RES, s, s + n, depth + 1));
            int64_t chunk[3] = {rs, (int64_t)(uintptr_t)s, (int64_t)n};
            TRY(buf_put(&d->res_chunks, chunk, sizeof chunk));
        } else if (wt == 2 && fn == 2) {
            TRY(rd_bytes(d, &p, end, &s, &n));
            TRY(walk_repeated(d, M_SS, 2, parse_span, s, s + n, depth + 1));
        } else {
            TRY(generic_field(d, M_RS, fn, wt, &p, end, depth));
        }
    }
    return more;
}

int parse_request(Dec *d, const uint8_t *p, const uint8_t *end) {
    return walk_repeated(d, M_REQ, 1, parse_resource_spans, p, end, 0);
}

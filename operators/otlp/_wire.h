/*
 * Shared by the C files of operators.otlp._wire (see _wire.c): the decoder state, growable
 * buffers, and the protobuf wire-format reader primitives (the UTF-8 check included), inline
 * because the span loops call them for every field.
 *
 * Every reader returns 0, or -1 with the reason in Dec.err (or a Python exception set).
 */
#ifndef OTLP_WIRE_H
#define OTLP_WIRE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
/* only PyInit__wire (declared visible by PyMODINIT_FUNC) leaves the shared object */
#pragma GCC visibility push(hidden)
#endif

#define MAX_DEPTH 100

#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((call) < 0) {                                                                          \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* growable byte buffer */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} Buf;

/* at most this many selected attributes per text extraction */
#define MAX_KEYS 64

enum { ST_ABSENT = 0, ST_SET = 1, ST_PYTHON = 2 };

/* One attribute value as far as the text column needs it (last oneof member wins). */
typedef struct {
    int state;
    int is_bool, is_int;
    uint64_t v;
    const uint8_t *p;
    size_t len;
} Val;

/* The selected attributes' text columns and the events' JSON column (_wire_cols.c), filled one
 * span at a time: text_span_begin, its attributes and events, text_span_end. */
typedef struct {
    Py_ssize_t n_keys;
    const char *key[MAX_KEYS];
    Py_ssize_t key_len[MAX_KEYS];
    uint64_t lengths; /* bit min(n, 63) set when a key is n bytes long */
    /* Each span's end offsets (int32) and states (int8), all keys' side by side: a span's row is
     * written in one go (a buffer per key made two checked appends per key and span, a third of
     * the extraction); cols_build turns the rows into a column per key. */
    Buf row_off;
    Buf row_state;
    Buf text[MAX_KEYS];
    Buf ev_off;
    Buf ev_text;
    Buf ev_state;
    /* the span being read */
    Val vals[MAX_KEYS];
    size_t ev_start; /* its events' JSON starts here in ev_text */
    int events;      /* how many it has */
    int python;      /* whether Python writes its events' JSON */
} Cols;

/* one interned span name */
typedef struct {
    const uint8_t *p;
    uint32_t len;
    uint32_t idx;
    uint64_t hash;
} NameEnt;

/* The columns hold addresses (as int64) of the names, ids and resources in the input, which is
 * alive until they are copied out; and each span's offset in the input for Python, its address
 * minus `bias` (several requests walked together: offsets into them as if end to end). */
typedef struct {
    const uint8_t *base; /* span_columns: the data its span offsets are into */
    uintptr_t bias;
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
    Buf ids;         /* int64 (address, length) x 3 per span: trace, span, parent */
    Buf res_chunks;  /* int64 (resource spans index, address, length) per Resource field */
    Buf names;       /* int64 (address, length) per unique name */
    int64_t n_rs;
    int64_t n_spans;
    NameEnt *tab;
    size_t tab_cap;
    size_t n_names;
    Cols *text; /* the text columns extracted in the same walk; NULL when not asked for */
} Dec;

/* The message types of ExportTraceServiceRequest, for the schema table in _wire_read.c. */
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

/* _wire_read.c */
int buf_grow(Buf *b, size_t extra);
void buf_free(Buf *b);
int utf8_seq(const uint8_t *s, size_t n, size_t *i);
int skip_value(Dec *d, const uint8_t **pp, const uint8_t *end, uint32_t fn, int wt, int depth);
int generic_field(Dec *d, int mt, uint32_t fn, int wt, const uint8_t **pp, const uint8_t *end,
                  int depth);
int validate(Dec *d, int mt, const uint8_t *p, const uint8_t *end, int depth);

/* _wire_spans.c */
int parse_request(Dec *d, const uint8_t *p, const uint8_t *end);

/* _wire_cols.c */
PyObject *span_columns(PyObject *self, PyObject *args);
int cols_init(Cols *c, PyObject *keys);
void cols_free(Cols *c);
PyObject *cols_build(const Cols *c);
void text_span_begin(Cols *c);
int text_attr(Dec *d, Cols *c, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen);
int text_event(Dec *d, Cols *c, const uint8_t *p, const uint8_t *end);
int text_span_end(Cols *c);

/* The n < 8 bytes at s as one little-endian word, zero above: two overlapping loads (the
 * bytes they share are the same). A copy of n bytes into a word was a call to memcpy, and the
 * word's load then waited for its bytes' stores (7 to 8% of the walk, twice). */
static inline uint64_t load_short(const uint8_t *s, size_t n) {
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
        return (uint64_t)lo | (uint64_t)hi << (8 * (n - 4));
    }
    if (n == 0) {
        return 0;
    }
    return (uint64_t)s[0] | (uint64_t)s[n / 2] << (8 * (n / 2)) |
           (uint64_t)s[n - 1] << (8 * (n - 1));
}

/* FNV-1a over 8-byte words (the tail zero-padded, the length mixed in first), then mixed down:
 * byte by byte it was a tenth of the walk. It places names in the wire and JSON decoders' name
 * tables only, and is never stored. */
static inline uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)n, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 1099511628211ull;
    }
    if (i < n) {
        h = (h ^ load_short(p + i, n - i)) * 1099511628211ull;
    }
    h ^= h >> 32;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

/* UTF-8 as Python and upb accept it. All-ASCII text (nearly every string) is told in a few word
 * loads, the last one overlapping; other text goes byte by byte, sequences by utf8_seq. */
static inline int utf8_ok(const uint8_t *s, size_t n) {
    uint64_t any = 0, w = 0;
    if (n >= 8) {
        for (size_t j = 0; j + 8 <= n; j += 8) {
            memcpy(&w, s + j, 8);
            any |= w;
        }
        memcpy(&w, s + n - 8, 8);
        any |= w;
    } else {
        any = load_short(s, n);
    }
    if (!(any & 0x8080808080808080ull)) {
        return 1;
    }
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
        } else if (!utf8_seq(s, n, &i)) {
            return 0;
        }
    }
    return 1;
}

static inline int buf_put(Buf *b, const void *v, size_t n) {
    if (b->len + n > b->cap && buf_grow(b, n) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, v, n);
    b->len += n;
    return 0;
}

/* Record the first wire error's reason. */
static inline int fail(Dec *d, const char *why) {
    if (d->err == NULL) {
        d->err = why;
    }
    return -1;
}

static inline int nest(Dec *d, int depth) {
    return depth > MAX_DEPTH ? fail(d, "messages nest too deeply") : 0;
}

static inline int need(Dec *d, const uint8_t *p, const uint8_t *end, ptrdiff_t n,
                       const char *why) {
    return end - p < n ? fail(d, why) : 0;
}

/* A varint of at most `max` bytes; `too_long` is the reason when it runs on. */
static inline int rd_varint_max(Dec *d, const uint8_t **pp, const uint8_t *end, uint64_t *out,
                                int max, const char *too_long) {
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) {
        *out = *p;
        *pp = p + 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < max; i++) {
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
    return fail(d, too_long);
}

static inline int rd_varint(Dec *d, const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    return rd_varint_max(d, pp, end, out, 10, "varint longer than 10 bytes");
}

/* A tag or a size: at most 5 bytes. */
static inline int rd_varint5(Dec *d, const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    return rd_varint_max(d, pp, end, out, 5, "tag or length varint longer than 5 bytes");
}

static inline int rd_tag(Dec *d, const uint8_t **pp, const uint8_t *end, uint32_t *fn, int *wt) {
    uint64_t t;
    TRY(rd_varint5(d, pp, end, &t));
    if (t > 0xffffffffu) {
        return fail(d, "tag over 32 bits");
    }
    *fn = (uint32_t)(t >> 3);
    *wt = (int)(t & 7);
    return 0;
}

/* 1 when a field's tag was read, 0 at the end of the message, -1 on an error. */
static inline int next_field(Dec *d, const uint8_t **pp, const uint8_t *end, uint32_t *fn,
                             int *wt) {
    if (*pp >= end) {
        return 0;
    }
    return rd_tag(d, pp, end, fn, wt) < 0 ? -1 : 1;
}

static inline int rd_size(Dec *d, const uint8_t **pp, const uint8_t *end, size_t *out) {
    uint64_t s;
    TRY(rd_varint5(d, pp, end, &s));
    if (s >= 0x7fffffffu || s > (uint64_t)(end - *pp)) {
        return fail(d, "length past the end");
    }
    *out = (size_t)s;
    return 0;
}

/* A length-delimited value: its n bytes at *s, and *pp past them. */
static inline int rd_bytes(Dec *d, const uint8_t **pp, const uint8_t *end, const uint8_t **s,
                           size_t *n) {
    TRY(rd_size(d, pp, end, n));
    *s = *pp;
    *pp += *n;
    return 0;
}

static inline int rd_string(Dec *d, const uint8_t **pp, const uint8_t *end, const uint8_t **s,
                            size_t *n) {
    TRY(rd_bytes(d, pp, end, s, n));
    if (!utf8_ok(*s, *n)) {
        return fail(d, "string field is not valid UTF-8");
    }
    return 0;
}

static inline int rd_fixed64(Dec *d, const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    TRY(need(d, *pp, end, 8, "truncated fixed64"));
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | (*pp)[i];
    }
    *out = v;
    *pp += 8;
    return 0;
}

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif

/*
 * Shared by the C files of operators.otlp._json (see _json.c): the decoder state, the column
 * buffers (Buf and its helpers come from the wire decoder's _wire.h and _wire_read.c) and the
 * reader primitives, inline because every value goes through them.
 *
 * Every function returns 0, or -1: with a Python exception set (out of memory), or with
 * JDec.bail set when the input leaves the subset this decoder handles, so the caller hands it to
 * the Python decoder, which accepts or rejects it with a reason.
 */
#ifndef OTLP_JSON_H
#define OTLP_JSON_H

#include "_wire.h"

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

/* one interned span name: its bytes inside the input */
typedef struct {
    const uint8_t *p;
    uint32_t len;
    uint32_t idx;
    uint64_t hash;
} JName;

typedef struct {
    const uint8_t *base;
    const uint8_t *end;
    const uint8_t *p; /* the read position */
    int bail;         /* set: not an error, the input is outside the fast subset */
    Buf rs_idx;       /* int32 per span */
    Buf name_idx;     /* int32 per span */
    Buf kind;         /* int8 per span */
    Buf status;       /* int8 per span */
    Buf start;        /* int64 per span */
    Buf end_ns;       /* int64 per span */
    Buf http;         /* int32 per span */
    Buf rpc;          /* int32 per span */
    Buf offs;         /* int64 (offset, length) of each span object */
    Buf ids;          /* 16 + 8 + 8 raw id bytes and 1 parent length byte per span */
    Buf res;          /* int64 (offset, length) of each resource object */
    Buf names;        /* int64 (offset, length) per unique name */
    int64_t n_rs;
    int64_t n_spans;
    JName *tab;
    size_t tab_cap;
    size_t n_names;
} JDec;

#define ID_STRIDE 33
#define MAX_NEST 200
#define KEY(k, lit) ((k).n == sizeof(lit) - 1 && memcmp((k).s, lit, sizeof(lit) - 1) == 0)

typedef struct {
    const uint8_t *s;
    size_t n;
    int esc; /* holds a backslash escape */
} Str;

static inline int bail(JDec *j) {
    j->bail = 1;
    return -1;
}

/* The byte at p is c (and p is inside the input). */
static inline int is_at(const JDec *j, const uint8_t *p, uint8_t c) { return p < j->end && *p == c; }

static inline void ws(JDec *j) {
    const uint8_t *p = j->p;
    while (p < j->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
    }
    j->p = p;
}

/* The next non-blank byte, not consumed. */
static inline int peek(JDec *j, uint8_t *c) {
    ws(j);
    if (j->p >= j->end) {
        return bail(j);
    }
    *c = *j->p;
    return 0;
}

static inline int expect(JDec *j, uint8_t c) {
    uint8_t got;
    TRY(peek(j, &got));
    if (got != c) {
        return bail(j);
    }
    j->p++;
    return 0;
}

static inline int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A string at the read position: its raw bytes between the quotes. */
static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

/* _json_read.c: the JSON grammar, and the typed fields of OTLP/JSON */
int string(JDec *j, Str *out);
int number(JDec *j, Str *out, int *integer);
int next_key(JDec *j, int *first, Str *key);
int next_elem(JDec *j, int *first);
int skip_json(JDec *j, int depth);
int int_field(JDec *j, int sign, int64_t lo, int64_t hi, int64_t *out);
int enum_field(JDec *j, const char *const *names, int count, int64_t *out);
int hex_id(JDec *j, uint8_t *out, size_t size);
extern const char *const SPAN_KINDS[6];
extern const char *const STATUS_CODES[3];

/* _json_scan.c */
int json_request(JDec *j);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif

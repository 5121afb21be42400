/*
 * Shared by the C files of operators.otlp._json (see _json.c): the decoder state and the column
 * buffers (Buf and its helpers come from the wire decoder's _wire.h and _wire_read.c).
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

/* _json_scan.c */
int json_request(JDec *j);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif

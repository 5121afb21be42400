/*
 * operators.otlp._json: one pass over an OTLP/JSON trace request, strict JSON grammar checked on
 * every byte, the fields the columns need read in place, everything else skipped.
 *
 * The subset handled is what the Collector and the SDKs write: lowerCamelCase keys, hex ids, enums
 * as integers or their names, nanos as decimal strings or integers. Anything else (snake_case keys,
 * escapes in a key or a span name, a duplicated field, a value of an odd type) bails, and the
 * Python decoder, which is the reference, takes the request whole.
 */
#include "_json.h"

/* ------------------------------------------------------------------------------------------ */
/* attributes: only the HTTP and gRPC status codes are read here                              */

typedef struct {
    int64_t http, rpc;
    int odd; /* something the status walk of an entry span cannot read: bail if entry */
} Status;

/* The AnyValue at `at` as a status code: `dflt` unless it is {"intValue": n}. */
static int status_value(JDec *j, const uint8_t *at, int64_t dflt, Status *st, int64_t *out) {
    *out = dflt;
    if (at == NULL || !is_at(j, at, '{')) {
        return 0; /* absent or not an object: OTLP reads no value */
    }
    const uint8_t *saved = j->p;
    Str k;
    int first = 1, r;
    j->p = at + 1;
    while ((r = next_key(j, &first, &k)) > 0) {
        if (!k.esc && KEY(k, "intValue")) {
            TRY(int_field(j, 1, INT32_MIN, INT32_MAX, out));
        } else {
            st->odd = 1;
            TRY(skip_json(j, 3));
        }
    }
    j->p = saved;
    return r;
}

static int one_attribute(JDec *j, Status *st) {
    Str k, key = {NULL, 0, 0};
    const uint8_t *value = NULL;
    int first = 1, r, have_key = 0;
    j->p++; /* '{' */
    while ((r = next_key(j, &first, &k)) > 0) {
        if (!k.esc && KEY(k, "key")) {
            uint8_t c;
            TRY(peek(j, &c));
            have_key = c == '"';
            TRY(have_key ? string(j, &key) : skip_json(j, 3));
        } else if (!k.esc && KEY(k, "value")) {
            value = j->p;
            TRY(skip_json(j, 3));
        } else {
            st->odd |= k.esc;
            TRY(skip_json(j, 3));
        }
    }
    TRY(r);
    if (!have_key) {
        return 0;
    }
    if (key.esc) {
        st->odd = 1; /* the escaped key may spell a status key */
    } else if (KEY(key, "http.response.status_code") || KEY(key, "http.status_code")) {
        TRY(status_value(j, value, 0, st, &st->http));
    } else if (KEY(key, "rpc.grpc.status_code")) {
        TRY(status_value(j, value, -1, st, &st->rpc));
    }
    return 0;
}

static int attributes(JDec *j, Status *st) {
    uint8_t c;
    int first = 1, r;
    TRY(peek(j, &c));
    if (c != '[') {
        st->odd = 1;
        return skip_json(j, 3);
    }
    j->p++;
    while ((r = next_elem(j, &first)) > 0) {
        if (is_at(j, j->p, '{')) {
            TRY(one_attribute(j, st));
        } else {
            st->odd = 1;
            TRY(skip_json(j, 3));
        }
    }
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* span names, interned in first-seen order                                                   */

static int tab_grow(JDec *j) {
    size_t cap = j->tab_cap ? j->tab_cap * 2 : 64;
    JName *t = PyMem_Calloc(cap, sizeof(JName));
    if (t == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < j->tab_cap; i++) {
        if (j->tab[i].p != NULL) {
            size_t k = (size_t)j->tab[i].hash & (cap - 1);
            while (t[k].p != NULL) {
                k = (k + 1) & (cap - 1);
            }
            t[k] = j->tab[i];
        }
    }
    PyMem_Free(j->tab);
    j->tab = t;
    j->tab_cap = cap;
    return 0;
}

static int intern_name(JDec *j, const uint8_t *p, size_t n, int32_t *idx) {
    if ((j->n_names + 1) * 2 > j->tab_cap) {
        TRY(tab_grow(j));
    }
    uint64_t h = hash_bytes(p, n);
    size_t mask = j->tab_cap - 1;
    for (size_t k = (size_t)h & mask;; k = (k + 1) & mask) {
        JName *e = &j->tab[k];
        if (e->p == NULL) {
            *e = (JName){p, (uint32_t)n, (uint32_t)j->n_names++, h};
            int64_t pair[2] = {(int64_t)(p - j->base), (int64_t)n};
            *idx = (int32_t)e->idx;
            return buf_put(&j->names, pair, sizeof pair);
        }
        if (e->hash == h && e->len == n && memcmp(e->p, p, n) == 0) {
            *idx = (int32_t)e->idx;
            return 0;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* the request                                                                                */

enum { F_TRACE = 1, F_SPAN = 2, F_PARENT = 4, F_NAME = 8, F_KIND = 16, F_STATUS = 32,
       F_START = 64, F_END = 128, F_ATTRS = 256 };

/* Which column field a span key is (0: skipped); -1 for a snake_case spelling (bail). */
static int span_field(const Str *k) {
    if (k->esc) {
        return -1;
    }
    if (KEY(*k, "traceId")) return F_TRACE;
    if (KEY(*k, "spanId")) return F_SPAN;
    if (KEY(*k, "parentSpanId")) return F_PARENT;
    if (KEY(*k, "name")) return F_NAME;
    if (KEY(*k, "kind")) return F_KIND;
    if (KEY(*k, "status")) return F_STATUS;
    if (KEY(*k, "startTimeUnixNano")) return F_START;
    if (KEY(*k, "endTimeUnixNano")) return F_END;
    if (KEY(*k, "attributes")) return F_ATTRS;
    if (KEY(*k, "trace_id") || KEY(*k, "span_id") || KEY(*k, "parent_span_id") ||
        KEY(*k, "start_time_unix_nano") || KEY(*k, "end_time_unix_nano")) {
        return -1;
    }
    return 0;
}

static int span_status(JDec *j, int64_t *code) {
    Str k;
    int first = 1, r, seen = 0;
    TRY(expect(j, '{'));
    while ((r = next_key(j, &first, &k)) > 0) {
        if (k.esc || (KEY(k, "code") && seen++)) {
            return bail(j);
        }
        TRY(KEY(k, "code") ? enum_field(j, STATUS_CODES, 3, code) : skip_json(j, 5));
    }
    return r;
}

static int span(JDec *j, int32_t rs) {
    uint8_t ids[ID_STRIDE] = {0};
    const uint8_t *at = j->p;
    Str k, name = {j->base, 0, 0};
    int64_t kind = 0, code = 0, t0 = 0, t1 = 0;
    Status st = {0, -1, 0};
    int first = 1, r;
    unsigned seen = 0;
    TRY(expect(j, '{'));
    while ((r = next_key(j, &first, &k)) > 0) {
        int f = span_field(&k);
        if (f < 0 || (seen & (unsigned)f)) {
            return bail(j); /* snake_case or a repeated field: the Python decoder's call */
        }
        seen |= (unsigned)f;
        switch (f) {
        case F_TRACE: TRY(hex_id(j, ids, 16)); break;
        case F_SPAN: TRY(hex_id(j, ids + 16, 8)); break;
        case F_PARENT:
            if (is_at(j, j->p, '"') && is_at(j, j->p + 1, '"')) {
                j->p += 2; /* "": a root span */
            } else {
                TRY(hex_id(j, ids + 24, 8));
                ids[32] = 8;
            }
            break;
        case F_NAME:
            TRY(string(j, &name));
            if (name.esc) {
                return bail(j);
            }
            break;
        case F_KIND: TRY(enum_field(j, SPAN_KINDS, 6, &kind)); break;
        case F_STATUS: TRY(span_status(j, &code)); break;
        case F_START: TRY(int_field(j, 0, 0, INT64_MAX, &t0)); break;
        case F_END: TRY(int_field(j, 0, 0, INT64_MAX, &t1)); break;
        case F_ATTRS: TRY(attributes(j, &st)); break;
        default: TRY(skip_json(j, 4));
        }
    }
    TRY(r);
    if ((seen & (F_TRACE | F_SPAN)) != (F_TRACE | F_SPAN)) {
        return bail(j);
    }
    if (kind != 2 && kind != 5) {
        st.http = 0; /* only server and consumer spans are judged on HTTP/gRPC codes */
        st.rpc = -1;
    } else if (st.odd) {
        return bail(j);
    }
    int32_t name_idx, http = (int32_t)st.http, rpc = (int32_t)st.rpc;
    int8_t k8 = (int8_t)kind, c8 = (int8_t)code;
    int64_t off[2] = {(int64_t)(at - j->base), (int64_t)(j->p - at)};
    TRY(intern_name(j, name.s, name.n, &name_idx));
    TRY(buf_put(&j->rs_idx, &rs, 4));
    TRY(buf_put(&j->name_idx, &name_idx, 4));
    TRY(buf_put(&j->kind, &k8, 1));
    TRY(buf_put(&j->status, &c8, 1));
    TRY(buf_put(&j->start, &t0, 8));
    TRY(buf_put(&j->end_ns, &t1, 8));
    TRY(buf_put(&j->http, &http, 4));
    TRY(buf_put(&j->rpc, &rpc, 4));
    TRY(buf_put(&j->offs, off, sizeof off));
    TRY(buf_put(&j->ids, ids, ID_STRIDE));
    j->n_spans++;
    return 0;
}

/* A list of objects, each read by `one`. */
static int each(JDec *j, int (*one)(JDec *, int32_t), int32_t rs) {
    int first = 1, r;
    TRY(expect(j, '['));
    while ((r = next_elem(j, &first)) > 0) {
        TRY(one(j, rs));
    }
    return r;
}

static int scope_spans(JDec *j, int32_t rs) {
    Str k;
    int first = 1, r, seen = 0;
    TRY(expect(j, '{'));
    while ((r = next_key(j, &first, &k)) > 0) {
        if (k.esc || (KEY(k, "spans") && seen++)) {
            return bail(j);
        }
        TRY(KEY(k, "spans") ? each(j, span, rs) : skip_json(j, 3));
    }
    return r;
}

static int resource_spans(JDec *j, int32_t unused) {
    (void)unused;
    Str k;
    int first = 1, r;
    unsigned seen = 0;
    int64_t res[2] = {0, 0};
    if (j->n_rs >= INT32_MAX) {
        return bail(j);
    }
    int32_t rs = (int32_t)j->n_rs++;
    TRY(expect(j, '{'));
    while ((r = next_key(j, &first, &k)) > 0) {
        unsigned f = k.esc ? 4 : KEY(k, "resource") ? 1 : KEY(k, "scopeSpans") ? 2
                   : KEY(k, "scope_spans") ? 4 : 0;
        if (f == 4 || (seen & f)) {
            return bail(j);
        }
        seen |= f;
        if (f == 1) {
            if (!is_at(j, j->p, '{')) {
                return bail(j);
            }
            res[0] = (int64_t)(j->p - j->base);
            TRY(skip_json(j, 2));
            res[1] = (int64_t)(j->p - j->base) - res[0];
        } else {
            TRY(f == 2 ? each(j, scope_spans, rs) : skip_json(j, 2));
        }
    }
    TRY(r);
    if (!(seen & 1)) {
        return bail(j); /* no resource, so no service.name: the Python decoder's error */
    }
    return buf_put(&j->res, res, sizeof res);
}

int json_request(JDec *j) {
    Str k;
    int first = 1, r, seen = 0;
    TRY(expect(j, '{'));
    while ((r = next_key(j, &first, &k)) > 0) {
        if (k.esc || !KEY(k, "resourceSpans") || seen++) {
            return bail(j); /* metrics, a Jaeger wrapper, snake_case: not this path */
        }
        TRY(each(j, resource_spans, 0));
    }
    TRY(r);
    ws(j);
    if (!seen || j->p != j->end) {
        return bail(j);
    }
    return 0;
}

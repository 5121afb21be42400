/*
 * operators.otlp._wire: selected span attributes as Arrow-layout string columns, and the number
 * of events per span, from spans that decode_spans already validated (given by their offsets).
 *
 * span_columns(data, span_offsets, keys) -> (columns, events): for each key, a tuple
 * (offsets: int32 x n+1, values: utf-8 bytes, state: int8 x n) where state is 0 when the span has
 * no such attribute, 1 when the value is in the column, 2 when its text needs Python (a double,
 * bytes, array, kvlist or empty value, whose str() the caller computes). events is the same tuple
 * for the span's events as `json.dumps(events, separators=(",", ":"), sort_keys=True)` of
 * [{"attributes": {...}, "name": ..., "time_ns": ...}]: state 0 without events, 2 when an event
 * attribute's value is not a string, int or bool (Python writes those).
 *
 * decode_spans(data, keys) builds the same columns in its own walk, through the text_* functions
 * (read_span below is their walk over spans already decoded).
 */
#include "_wire.h"

#include <stdio.h>

#define MAX_EVENT_ATTRS 128

static int read_value(Dec *d, const uint8_t *p, const uint8_t *end, Val *out) {
    uint32_t fn;
    int wt, more;
    Val v = {ST_PYTHON, 0, 0, 0, NULL, 0};
    while ((more = next_field(d, &p, end, &fn, &wt)) > 0) {
        if (wt == 2 && fn == 1) {
            TRY(rd_bytes(d, &p, end, &v.p, &v.len));
            v.state = ST_SET;
            v.is_bool = v.is_int = 0;
        } else if (wt == 0 && (fn == 2 || fn == 3)) {
            TRY(rd_varint(d, &p, end, &v.v));
            v.state = ST_SET;
            v.is_bool = fn == 2;
            v.is_int = fn == 3;
        } else {
            TRY(skip_value(d, &p, end, fn, wt, 0));
            if (fn >= 4 && fn <= 8) {
                v.state = ST_PYTHON; /* double, array, kvlist, bytes or string index */
            }
        }
    }
    TRY(more);
    *out = v;
    return 0;
}

static int length_bit(size_t n) { return n < 63 ? (int)n : 63; }

/* The first and last bytes first: keys of one length mostly differ there, and a call to memcmp
 * for each took a tenth of the decoding walk on spans of 20 attributes. */
static inline int same_key(const char *a, size_t alen, const uint8_t *b, size_t blen) {
    return alen == blen &&
           (blen == 0 || ((uint8_t)a[0] == b[0] && (uint8_t)a[blen - 1] == b[blen - 1] &&
                          memcmp(a, b, blen) == 0));
}

/* A span attribute (key, value bytes; val NULL without a value): when its key is selected, its
 * value replaces that key's earlier one in the span being read. */
int text_attr(Dec *d, Cols *c, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen) {
    if (!(c->lengths >> length_bit(klen) & 1)) {
        return 0; /* most attributes: no key is that long */
    }
    for (Py_ssize_t k = 0; k < c->n_keys; k++) {
        if (same_key(c->key[k], (size_t)c->key_len[k], key, klen)) {
            if (val == NULL) {
                c->vals[k].state = ST_PYTHON; /* present without a value: Python says None */
                return 0;
            }
            return read_value(d, val, val + vlen, &c->vals[k]);
        }
    }
    return 0;
}

/* One KeyValue of the span being read. */
static int read_kv(Dec *d, Cols *c, const uint8_t *p, const uint8_t *end) {
    const uint8_t *key = NULL, *val = NULL, *s;
    size_t klen = 0, vlen = 0, n;
    uint32_t fn;
    int wt, more;
    while ((more = next_field(d, &p, end, &fn, &wt)) > 0) {
        if (wt == 2 && (fn == 1 || fn == 2)) {
            TRY(rd_bytes(d, &p, end, &s, &n));
            if (fn == 1) {
                key = s, klen = n;
            } else {
                val = s, vlen = n;
            }
        } else {
            TRY(skip_value(d, &p, end, fn, wt, 0));
        }
    }
    TRY(more);
    return text_attr(d, c, key, klen, val, vlen);
}

/* A text column's end as an Arrow int32 offset. */
static int text_end(const Buf *text, int32_t *end) {
    if (text->len > 0x7fffffff) {
        PyErr_SetString(PyExc_ValueError, "text column over 2 GiB");
        return -1;
    }
    *end = (int32_t)text->len;
    return 0;
}

/* Close one span's value of a text column: its end offset and its state. */
static int end_text(Buf *off, const Buf *text, Buf *state, int8_t st) {
    int32_t o;
    TRY(text_end(text, &o));
    return buf_put(off, &o, 4) < 0 || buf_put(state, &st, 1) < 0 ? -1 : 0;
}

/* Key k's value of the span being read onto its text; *end its end offset. */
static int put_value(Cols *c, Py_ssize_t k, const Val *v, int32_t *end) {
    char num[32];
    const void *text = NULL;
    size_t len = 0;
    if (v->state == ST_SET) {
        if (v->is_bool) {
            text = v->v ? "True" : "False";
            len = v->v ? 4 : 5;
        } else if (v->is_int) {
            len = (size_t)snprintf(num, sizeof num, "%lld", (long long)(int64_t)v->v);
            text = num;
        } else {
            text = v->p, len = v->len;
        }
    }
    if (len && buf_put(&c->text[k], text, len) < 0) {
        return -1;
    }
    return text_end(&c->text[k], end);
}

static int put_str(Buf *b, const char *s) { return buf_put(b, s, strlen(s)); }

/* A JSON string as Python's json.dumps writes it (ensure_ascii): the bytes are valid UTF-8, as
 * decode_spans checked every string field. */
static int json_string(Buf *b, const uint8_t *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    TRY(buf_put(b, "\"", 1));
    for (size_t i = 0; i < n;) {
        uint32_t c = s[i];
        const char *esc = NULL;
        if (c < 0x80) {
            i++;
            switch (c) {
            case '"': esc = "\\\""; break;
            case '\\': esc = "\\\\"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            default:
                if (c >= 0x20 && c < 0x7f) { /* json.dumps escapes DEL too */
                    char ch = (char)c;
                    TRY(buf_put(b, &ch, 1));
                    continue;
                }
            }
            if (esc != NULL) {
                TRY(put_str(b, esc));
                continue;
            }
        } else if (c < 0xe0) {
            c = ((c & 0x1f) << 6) | (s[i + 1] & 0x3f);
            i += 2;
        } else if (c < 0xf0) {
            c = ((c & 0x0f) << 12) | ((uint32_t)(s[i + 1] & 0x3f) << 6) | (s[i + 2] & 0x3f);
            i += 3;
        } else {
            c = ((c & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3f) << 12) |
                ((uint32_t)(s[i + 2] & 0x3f) << 6) | (s[i + 3] & 0x3f);
            i += 4;
        }
        uint32_t units[2] = {c, 0};
        int n_units = 1;
        if (c >= 0x10000) {
            c -= 0x10000;
            units[0] = 0xd800 | (c >> 10);
            units[1] = 0xdc00 | (c & 0x3ff);
            n_units = 2;
        }
        for (int u = 0; u < n_units; u++) {
            char e[6] = {'\\', 'u', hex[(units[u] >> 12) & 15], hex[(units[u] >> 8) & 15],
                         hex[(units[u] >> 4) & 15], hex[units[u] & 15]};
            TRY(buf_put(b, e, 6));
        }
    }
    return buf_put(b, "\"", 1);
}

typedef struct {
    const uint8_t *key, *val;
    size_t klen, vlen;
} Attr;

static int key_before(const Attr *a, const Attr *b) {
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int r = memcmp(a->key, b->key, n);
    return r < 0 || (r == 0 && a->klen < b->klen);
}

/* One Event as JSON onto b; *python set when a value needs Python. */
static int event_json(Dec *d, Buf *b, const uint8_t *p, const uint8_t *end, int *python) {
    Attr attrs[MAX_EVENT_ATTRS];
    size_t n_attrs = 0;
    const uint8_t *name = p, *s, *kp;
    size_t name_len = 0, n, kn;
    uint64_t t = 0;
    uint32_t fn;
    int wt, more;
    while ((more = next_field(d, &p, end, &fn, &wt)) > 0) {
        if (wt == 1 && fn == 1) {
            TRY(rd_fixed64(d, &p, end, &t));
        } else if (wt == 2 && fn == 2) {
            TRY(rd_bytes(d, &p, end, &name, &name_len));
        } else if (wt == 2 && fn == 3) {
            TRY(rd_bytes(d, &p, end, &s, &n));
            if (n_attrs == MAX_EVENT_ATTRS) {
                *python = 1;
                continue;
            }
            Attr a = {s, NULL, 0, 0}; /* a KeyValue without a key has the key "" */
            const uint8_t *q = s, *qend = s + n;
            while ((more = next_field(d, &q, qend, &fn, &wt)) > 0) {
                if (wt == 2 && (fn == 1 || fn == 2)) {
                    TRY(rd_bytes(d, &q, qend, &kp, &kn));
                    if (fn == 1) {
                        a.key = kp, a.klen = kn;
                    } else {
                        a.val = kp, a.vlen = kn;
                    }
                } else {
                    TRY(skip_value(d, &q, qend, fn, wt, 0));
                }
            }
            TRY(more);
            /* insertion sort, stable: of equal keys the last stays last and wins, as in a dict */
            size_t j = n_attrs++;
            while (j > 0 && key_before(&a, &attrs[j - 1])) {
                attrs[j] = attrs[j - 1];
                j--;
            }
            attrs[j] = a;
        } else {
            TRY(skip_value(d, &p, end, fn, wt, 0));
        }
    }
    TRY(more);
    TRY(put_str(b, "{\"attributes\":{"));
    int first = 1;
    for (size_t i = 0; i < n_attrs && !*python; i++) {
        const Attr *a = &attrs[i];
        if (i + 1 < n_attrs && a->klen == attrs[i + 1].klen &&
            memcmp(a->key, attrs[i + 1].key, a->klen) == 0) {
            continue; /* a later value of the same key wins */
        }
        Val v = {ST_PYTHON, 0, 0, 0, NULL, 0};
        if (a->val != NULL) {
            TRY(read_value(d, a->val, a->val + a->vlen, &v));
        }
        if (v.state != ST_SET) {
            *python = 1;
            break;
        }
        TRY(first ? 0 : buf_put(b, ",", 1));
        first = 0;
        TRY(json_string(b, a->key, a->klen));
        TRY(buf_put(b, ":", 1));
        if (v.is_bool) {
            TRY(put_str(b, v.v ? "true" : "false"));
        } else if (v.is_int) {
            char num[32];
            int len = snprintf(num, sizeof num, "%lld", (long long)(int64_t)v.v);
            TRY(buf_put(b, num, (size_t)len));
        } else {
            TRY(json_string(b, v.p, v.len));
        }
    }
    TRY(put_str(b, "},\"name\":"));
    TRY(json_string(b, name, name_len));
    char num[48]; /* ,"time_ns": and up to 20 digits and } */
    int len = snprintf(num, sizeof num, ",\"time_ns\":%llu}", (unsigned long long)t);
    TRY(buf_put(b, num, (size_t)len));
    return 0;
}

/* A span starts: no values, no events yet. */
void text_span_begin(Cols *c) {
    for (Py_ssize_t k = 0; k < c->n_keys; k++) {
        c->vals[k].state = ST_ABSENT;
    }
    c->ev_start = c->ev_text.len;
    c->events = c->python = 0;
}

/* One Event (its bytes) of the span being read. */
int text_event(Dec *d, Cols *c, const uint8_t *p, const uint8_t *end) {
    TRY(buf_put(&c->ev_text, c->events++ ? "," : "[", 1));
    return event_json(d, &c->ev_text, p, end, &c->python);
}

/* The span being read onto the columns: each key's value, and its events. */
int text_span_end(Cols *c) {
    size_t n_keys = (size_t)c->n_keys;
    if ((c->row_off.len + 4 * n_keys > c->row_off.cap && buf_grow(&c->row_off, 4 * n_keys) < 0) ||
        (c->row_state.len + n_keys > c->row_state.cap && buf_grow(&c->row_state, n_keys) < 0)) {
        return -1;
    }
    int32_t *ends = (int32_t *)(c->row_off.data + c->row_off.len);
    int8_t *states = (int8_t *)(c->row_state.data + c->row_state.len);
    for (size_t k = 0; k < n_keys; k++) {
        TRY(put_value(c, (Py_ssize_t)k, &c->vals[k], &ends[k]));
        states[k] = (int8_t)c->vals[k].state;
    }
    c->row_off.len += 4 * n_keys;
    c->row_state.len += n_keys;
    if (c->python) {
        c->ev_text.len = c->ev_start; /* Python writes this span's events */
    } else if (c->events) {
        TRY(buf_put(&c->ev_text, "]", 1));
    }
    return end_text(&c->ev_off, &c->ev_text, &c->ev_state,
                    c->python ? ST_PYTHON : c->events ? ST_SET : ST_ABSENT);
}

static int read_span(Dec *d, Cols *c, const uint8_t *p, const uint8_t *end) {
    text_span_begin(c);
    const uint8_t *s;
    size_t n;
    uint32_t fn;
    int wt, more;
    while ((more = next_field(d, &p, end, &fn, &wt)) > 0) {
        if (wt == 2 && fn == 9 && c->n_keys) {
            TRY(rd_bytes(d, &p, end, &s, &n));
            TRY(read_kv(d, c, s, s + n));
        } else if (wt == 2 && fn == 11) {
            TRY(rd_bytes(d, &p, end, &s, &n));
            TRY(text_event(d, c, s, s + n));
        } else {
            TRY(skip_value(d, &p, end, fn, wt, 0));
        }
    }
    TRY(more);
    return text_span_end(c);
}

/* Empty columns for the tuple of str `keys`; -1 with a Python exception set. cols_free frees them
 * either way. */
int cols_init(Cols *c, PyObject *keys) {
    memset(c, 0, sizeof *c);
    Py_ssize_t n_keys = PyTuple_GET_SIZE(keys);
    if (n_keys > MAX_KEYS) {
        PyErr_Format(PyExc_ValueError, "at most %d selected attributes", MAX_KEYS);
        return -1;
    }
    int32_t zero = 0;
    TRY(buf_put(&c->ev_off, &zero, 4));
    for (Py_ssize_t k = 0; k < n_keys; k++) {
        c->key[k] = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(keys, k), &c->key_len[k]);
        if (c->key[k] == NULL) {
            return -1;
        }
        c->lengths |= 1ull << length_bit((size_t)c->key_len[k]);
        c->n_keys = k + 1;
    }
    return 0;
}

void cols_free(Cols *c) {
    for (Py_ssize_t k = 0; k < MAX_KEYS; k++) {
        buf_free(&c->text[k]);
    }
    buf_free(&c->row_off);
    buf_free(&c->row_state);
    buf_free(&c->ev_off);
    buf_free(&c->ev_text);
    buf_free(&c->ev_state);
}

static PyObject *as_bytes(const Buf *b) {
    return PyBytes_FromStringAndSize(b->len ? b->data : NULL, (Py_ssize_t)b->len);
}

/* (columns, events) as span_columns returns them */
PyObject *cols_build(const Cols *c) {
    PyObject *cols = PyList_New(c->n_keys);
    if (cols == NULL) {
        return NULL;
    }
    size_t n_keys = (size_t)c->n_keys, n = n_keys ? c->row_state.len / n_keys : 0;
    const int32_t *ends = (const int32_t *)c->row_off.data;
    const int8_t *states = (const int8_t *)c->row_state.data;
    for (size_t k = 0; k < n_keys; k++) {
        /* key k's column out of the spans' rows: offsets 0 then each span's end, and states */
        PyObject *off = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(4 * (n + 1)));
        PyObject *st = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
        PyObject *t = NULL;
        if (off != NULL && st != NULL) {
            int32_t *o = (int32_t *)PyBytes_AS_STRING(off);
            int8_t *s = (int8_t *)PyBytes_AS_STRING(st);
            o[0] = 0;
            for (size_t i = 0; i < n; i++) {
                o[i + 1] = ends[i * n_keys + k];
                s[i] = states[i * n_keys + k];
            }
            t = Py_BuildValue("(NNN)", off, as_bytes(&c->text[k]), st);
        } else {
            Py_XDECREF(off);
            Py_XDECREF(st);
        }
        if (t == NULL) {
            Py_DECREF(cols);
            return NULL;
        }
        PyList_SET_ITEM(cols, (Py_ssize_t)k, t);
    }
    return Py_BuildValue("(N(NNN))", cols, as_bytes(&c->ev_off), as_bytes(&c->ev_text),
                         as_bytes(&c->ev_state));
}

PyObject *span_columns(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data, offs;
    PyObject *keys;
    if (!PyArg_ParseTuple(args, "y*y*O!", &data, &offs, &PyTuple_Type, &keys)) {
        return NULL;
    }
    Cols c;
    Dec d;
    memset(&d, 0, sizeof d);
    d.base = (const uint8_t *)data.buf;
    PyObject *res = NULL;
    Py_ssize_t n_spans = offs.len / (Py_ssize_t)(2 * sizeof(int64_t));
    const int64_t *span = (const int64_t *)offs.buf;
    if (cols_init(&c, keys) < 0) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_spans; i++) {
        int64_t at = span[2 * i], len = span[2 * i + 1];
        if (at < 0 || len < 0 || at + len > (int64_t)data.len) {
            PyErr_SetString(PyExc_ValueError, "span offset outside the data");
            goto done;
        }
        if (read_span(&d, &c, d.base + at, d.base + at + len) < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, d.err ? d.err : "malformed span");
            }
            goto done;
        }
    }
    res = cols_build(&c);
done:
    cols_free(&c);
    PyBuffer_Release(&data);
    PyBuffer_Release(&offs);
    return res;
}

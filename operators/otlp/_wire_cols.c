/*
 * operators.otlp._wire: selected span attributes as Arrow-layout string columns, and the number
 * of events per span, from spans that decode_spans already validated (given by their offsets).
 *
 * span_columns(data, span_offsets, keys) -> (columns, events): for each key, a tuple
 * (offsets: int32 x n+1, values: utf-8 bytes, state: int8 x n) where state is 0 when the span has
 * no such attribute, 1 when the value is in the column, 2 when its text needs Python (a double,
 * bytes, array, kvlist or empty value, whose str() the caller computes); events: int32 x n.
 */
#include "_wire.h"

#include <stdio.h>

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

typedef struct {
    Py_ssize_t n_keys;
    const char *key[MAX_KEYS];
    Py_ssize_t key_len[MAX_KEYS];
    Buf off[MAX_KEYS];
    Buf text[MAX_KEYS];
    Buf state[MAX_KEYS];
    Buf events;
} Cols;

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

/* One KeyValue: when its key is selected, its value replaces that key's earlier one. */
static int read_kv(Dec *d, const Cols *c, const uint8_t *p, const uint8_t *end, Val *vals) {
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
    for (Py_ssize_t k = 0; k < c->n_keys; k++) {
        if ((size_t)c->key_len[k] == klen && memcmp(c->key[k], key, klen) == 0) {
            if (val == NULL) {
                vals[k].state = ST_PYTHON; /* present without a value: Python says None */
                return 0;
            }
            return read_value(d, val, val + vlen, &vals[k]);
        }
    }
    return 0;
}

static int put_value(Cols *c, Py_ssize_t k, const Val *v) {
    int8_t st = (int8_t)v->state;
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
    if (c->text[k].len > 0x7fffffff) {
        PyErr_SetString(PyExc_ValueError, "selected attribute column over 2 GiB");
        return -1;
    }
    int32_t o = (int32_t)c->text[k].len;
    return buf_put(&c->off[k], &o, 4) < 0 || buf_put(&c->state[k], &st, 1) < 0 ? -1 : 0;
}

static int read_span(Dec *d, Cols *c, const uint8_t *p, const uint8_t *end) {
    Val vals[MAX_KEYS];
    for (Py_ssize_t k = 0; k < c->n_keys; k++) {
        vals[k].state = ST_ABSENT;
    }
    int32_t events = 0;
    const uint8_t *s;
    size_t n;
    uint32_t fn;
    int wt, more;
    while ((more = next_field(d, &p, end, &fn, &wt)) > 0) {
        if (wt == 2 && fn == 9 && c->n_keys) {
            TRY(rd_bytes(d, &p, end, &s, &n));
            TRY(read_kv(d, c, s, s + n, vals));
        } else {
            events += wt == 2 && fn == 11;
            TRY(skip_value(d, &p, end, fn, wt, 0));
        }
    }
    TRY(more);
    for (Py_ssize_t k = 0; k < c->n_keys; k++) {
        TRY(put_value(c, k, &vals[k]));
    }
    return buf_put(&c->events, &events, 4);
}

static void cols_free(Cols *c) {
    for (Py_ssize_t k = 0; k < MAX_KEYS; k++) {
        buf_free(&c->off[k]);
        buf_free(&c->text[k]);
        buf_free(&c->state[k]);
    }
    buf_free(&c->events);
}

static PyObject *as_bytes(const Buf *b) {
    return PyBytes_FromStringAndSize(b->len ? b->data : NULL, (Py_ssize_t)b->len);
}

static PyObject *build(Cols *c) {
    PyObject *cols = PyList_New(c->n_keys);
    if (cols == NULL) {
        return NULL;
    }
    for (Py_ssize_t k = 0; k < c->n_keys; k++) {
        PyObject *t = Py_BuildValue("(NNN)", as_bytes(&c->off[k]), as_bytes(&c->text[k]),
                                    as_bytes(&c->state[k]));
        if (t == NULL) {
            Py_DECREF(cols);
            return NULL;
        }
        PyList_SET_ITEM(cols, k, t);
    }
    return Py_BuildValue("(NN)", cols, as_bytes(&c->events));
}

PyObject *span_columns(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data, offs;
    PyObject *keys;
    if (!PyArg_ParseTuple(args, "y*y*O!", &data, &offs, &PyTuple_Type, &keys)) {
        return NULL;
    }
    Cols c;
    memset(&c, 0, sizeof c);
    Dec d;
    memset(&d, 0, sizeof d);
    d.base = (const uint8_t *)data.buf;
    PyObject *res = NULL;
    Py_ssize_t n_spans = offs.len / (Py_ssize_t)(2 * sizeof(int64_t));
    const int64_t *span = (const int64_t *)offs.buf;
    c.n_keys = PyTuple_GET_SIZE(keys);
    if (c.n_keys > MAX_KEYS) {
        PyErr_Format(PyExc_ValueError, "at most %d selected attributes", MAX_KEYS);
        goto done;
    }
    for (Py_ssize_t k = 0; k < c.n_keys; k++) {
        c.key[k] = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(keys, k), &c.key_len[k]);
        int32_t zero = 0;
        if (c.key[k] == NULL || buf_put(&c.off[k], &zero, 4) < 0) {
            goto done;
        }
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
    res = build(&c);
done:
    cols_free(&c);
    PyBuffer_Release(&data);
    PyBuffer_Release(&offs);
    return res;
}

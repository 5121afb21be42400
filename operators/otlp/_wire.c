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
 * decode_spans(data: bytes, text_keys: tuple[str, ...] | None = None) -> dict, see
 * operators/otlp/wire.py for the keys; with text_keys, also "text_columns": span_columns(data,
 * span_offsets, text_keys) (_wire_cols.c) built in the same walk.
 * Wire errors and out-of-range column values raise ValueError with a short reason.
 *
 * Files: _wire.h (decoder state, reader primitives), _wire_read.c (buffers, skipping, schema
 * validation), _wire_spans.c (the message tree into columns), _wire_cols.c (selected attributes
 * as text columns), this one (the Python objects).
 */
#include "_wire.h"

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

/* Id k (0 trace, 2 span, 4 parent) of every span end to end, `width` bytes each: cut or zero-padded
 * to that width, zeros when absent (the lengths say which ids are whole). */
static PyObject *id_bytes(const Dec *d, int k, Py_ssize_t width) {
    Py_ssize_t n = (Py_ssize_t)d->n_spans;
    PyObject *b = PyBytes_FromStringAndSize(NULL, n * width);
    if (b == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(b);
    memset(out, 0, (size_t)(n * width));
    const int64_t *ids = (const int64_t *)d->ids.data;
    for (Py_ssize_t i = 0; i < n; i++) {
        const int64_t *e = ids + 6 * i + k;
        Py_ssize_t len = e[1] < width ? (Py_ssize_t)e[1] : width;
        if (len > 0) {
            memcpy(out + i * width, (const char *)d->base + e[0], (size_t)len);
        }
    }
    return b;
}

/* Whether a parent id is neither absent nor 8 bytes: only a list of the ids keeps it whole. */
static int odd_parents(const Dec *d) {
    const int64_t *ids = (const int64_t *)d->ids.data;
    for (int64_t i = 0; i < d->n_spans; i++) {
        if (ids[6 * i + 5] != 0 && ids[6 * i + 5] != 8) {
            return 1;
        }
    }
    return 0;
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
        put(res, "parent_span_id", odd_parents(d) ? id_list(d, 4) : Py_NewRef(Py_None)) < 0 ||
        put(res, "id_lengths", id_lengths(d)) < 0 ||
        put(res, "trace_id_bytes", id_bytes(d, 0, 16)) < 0 ||
        put(res, "span_id_bytes", id_bytes(d, 2, 8)) < 0 ||
        put(res, "parent_span_id_bytes", id_bytes(d, 4, 8)) < 0 ||
        (d->text != NULL && put(res, "text_columns", cols_build(d->text)) < 0)) {
        Py_DECREF(res);
        return NULL;
    }
    return res;
}

/* The text columns' keys: NULL without them (None), -1 when not a tuple. */
static int text_keys(PyObject *const *args, Py_ssize_t nargs, PyObject **keys) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "decode_spans(data, text_keys=None)");
        return -1;
    }
    *keys = nargs == 2 && args[1] != Py_None ? args[1] : NULL;
    if (*keys != NULL && !PyTuple_Check(*keys)) {
        PyErr_SetString(PyExc_TypeError, "decode_spans: text_keys must be a tuple or None");
        return -1;
    }
    return 0;
}

static PyObject *decode_spans(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    PyObject *keys;
    Py_buffer view;
    if (text_keys(args, nargs, &keys) < 0 || PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Dec d;
    memset(&d, 0, sizeof d);
    d.base = (const uint8_t *)view.buf;
    const uint8_t *end = d.base + view.len;
    /* a lean span is about 170 bytes; reserve for that much and grow if needed */
    size_t est = (size_t)view.len / 128 + 16;
    PyObject *res = NULL;
    Cols text; /* filled only with keys */
    if (keys != NULL) {
        d.text = &text;
        if (cols_init(&text, keys) < 0) {
            goto done;
        }
    }
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
    if (d.text != NULL) {
        cols_free(d.text);
    }
    dec_free(&d);
    PyBuffer_Release(&view);
    return res;
}

static PyMethodDef methods[] = {
    {"decode_spans", (PyCFunction)(void (*)(void))decode_spans, METH_FASTCALL,
     "decode_spans(data: bytes, text_keys: tuple[str, ...] | None = None) -> dict: columns of an"
     " OTLP ExportTraceServiceRequest (with text_keys, also the span_columns of those keys)."},
    {"span_columns", span_columns, METH_VARARGS,
     "span_columns(data, span_offsets, keys) -> (columns, events): selected attributes as text."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "operators.otlp._wire",
    "Compiled OTLP trace protobuf decoder (wire format to columns).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wire(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "MAX_KEYS", MAX_KEYS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

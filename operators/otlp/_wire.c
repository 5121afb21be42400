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
 * span_offsets, text_keys) (_wire_cols.c) built in the same walk. decode_requests(requests:
 * list[bytes], text_keys=None): the same over several requests, each walked on its own.
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

/* The input's bytes at an address the walk recorded. */
static inline const char *at(int64_t address) { return (const char *)(uintptr_t)address; }

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
        PyObject *b = PyBytes_FromStringAndSize(at(e[0]), (Py_ssize_t)e[1]);
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
            memcpy(out + i * width, at(e[0]), (size_t)len);
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
            b = PyBytes_FromStringAndSize(at(ch[3 * first + 1]), total);
        } else {
            /* several Resource fields merge: their concatenation parses as the merged message */
            b = PyBytes_FromStringAndSize(NULL, total);
            if (b != NULL) {
                char *out = PyBytes_AS_STRING(b);
                for (size_t j = first; j < c; j++) {
                    memcpy(out, at(ch[3 * j + 1]), (size_t)ch[3 * j + 2]);
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
            PyUnicode_DecodeUTF8(at(np[2 * i]), (Py_ssize_t)np[2 * i + 1], "strict");
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

/* The ValueError of a failed walk (unless a Python exception is set); `message` >= 0 names the
 * request of decode_requests it was in. */
static void wire_error(const Dec *d, Py_ssize_t message) {
    if (PyErr_Occurred()) {
        return;
    }
    const char *why = d->err ? d->err : "malformed protobuf";
    if (message < 0) {
        PyErr_SetString(PyExc_ValueError, why);
    } else {
        PyErr_Format(PyExc_ValueError, "request %zd: %s", message, why);
    }
}

/* The text columns' keys (args[1]): NULL without them (None), -1 when not a tuple. */
static int text_keys(const char *name, PyObject *const *args, Py_ssize_t nargs, PyObject **keys) {
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "%s takes 1 or 2 arguments", name);
        return -1;
    }
    *keys = nargs == 2 && args[1] != Py_None ? args[1] : NULL;
    if (*keys != NULL && !PyTuple_Check(*keys)) {
        PyErr_Format(PyExc_TypeError, "%s: text_keys must be a tuple or None", name);
        return -1;
    }
    return 0;
}

/* A decoder for `size` bytes of input, writing the text columns of `keys` (unless NULL). */
static int dec_init(Dec *d, Cols *text, PyObject *keys, size_t size) {
    memset(d, 0, sizeof *d);
    if (keys != NULL) {
        d->text = text; /* freed by dec_done, also when its init fails half way */
        if (cols_init(text, keys) < 0) {
            return -1;
        }
    }
    /* a lean span is about 170 bytes; reserve for that much and grow if needed */
    size_t est = size / 128 + 16;
    if (buf_grow(&d->rs_idx, est * 4) < 0 || buf_grow(&d->name_idx, est * 4) < 0 ||
        buf_grow(&d->kind, est) < 0 || buf_grow(&d->status, est) < 0 ||
        buf_grow(&d->start, est * 8) < 0 || buf_grow(&d->end, est * 8) < 0 ||
        buf_grow(&d->http, est * 4) < 0 || buf_grow(&d->rpc, est * 4) < 0 ||
        buf_grow(&d->offs, est * 16) < 0 || buf_grow(&d->ids, est * 48) < 0) {
        return -1;
    }
    return 0;
}

static void dec_done(Dec *d) {
    if (d->text != NULL) {
        cols_free(d->text);
    }
    dec_free(d);
}

static PyObject *decode_spans(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    PyObject *keys;
    Py_buffer view;
    if (text_keys("decode_spans", args, nargs, &keys) < 0 ||
        PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Dec d;
    Cols text; /* filled only with keys */
    PyObject *res = NULL;
    if (dec_init(&d, &text, keys, (size_t)view.len) == 0) {
        const uint8_t *p = (const uint8_t *)view.buf;
        d.bias = (uintptr_t)p;
        if (parse_request(&d, p, p + view.len) < 0) {
            wire_error(&d, -1);
        } else {
            res = build_result(&d);
        }
    }
    dec_done(&d);
    PyBuffer_Release(&view);
    return res;
}

/* Several export requests (a list of bytes) walked one after the other, each as a request of its
 * own (a field never runs from one into the next), into one set of columns: build_result's, the
 * span offsets into the requests as if end to end, plus "request_spans" and "request_resources":
 * each request's first span and resource (int64, one entry more than requests: the totals). */
static PyObject *decode_requests(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    PyObject *keys;
    if (text_keys("decode_requests", args, nargs, &keys) < 0) {
        return NULL;
    }
    if (!PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "decode_requests: the requests must be a list of bytes");
        return NULL;
    }
    PyObject *list = args[0];
    Py_ssize_t n = PyList_GET_SIZE(list);
    size_t size = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (!PyBytes_Check(PyList_GET_ITEM(list, k))) {
            PyErr_SetString(PyExc_TypeError, "decode_requests: the requests must be bytes");
            return NULL;
        }
        size += (size_t)PyBytes_GET_SIZE(PyList_GET_ITEM(list, k));
    }
    Dec d;
    Cols text;
    Buf spans = {0}, resources = {0};
    PyObject *res = NULL;
    if (dec_init(&d, &text, keys, size) < 0) {
        goto done;
    }
    uintptr_t at_start = 0; /* the request's offset in the requests end to end */
    for (Py_ssize_t k = 0; k <= n; k++) {
        if (buf_put(&spans, &d.n_spans, sizeof(int64_t)) < 0 ||
            buf_put(&resources, &d.n_rs, sizeof(int64_t)) < 0) {
            goto done;
        }
        if (k == n) {
            break;
        }
        /* The list holds the bytes (and the bytes their data) until the columns are built. */
        PyObject *value = PyList_GET_ITEM(list, k);
        const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(value);
        d.bias = (uintptr_t)p - at_start;
        if (parse_request(&d, p, p + PyBytes_GET_SIZE(value)) < 0) {
            wire_error(&d, k);
            goto done;
        }
        at_start += (uintptr_t)PyBytes_GET_SIZE(value);
    }
    res = build_result(&d);
    if (res != NULL && (put(res, "request_spans", buf_bytes(&spans)) < 0 ||
                        put(res, "request_resources", buf_bytes(&resources)) < 0)) {
        Py_CLEAR(res);
    }
done:
    buf_free(&spans);
    buf_free(&resources);
    dec_done(&d);
    return res;
}

static PyMethodDef methods[] = {
    {"decode_spans", (PyCFunction)(void (*)(void))decode_spans, METH_FASTCALL,
     "decode_spans(data: bytes, text_keys: tuple[str, ...] | None = None) -> dict: columns of an"
     " OTLP ExportTraceServiceRequest (with text_keys, also the span_columns of those keys)."},
    {"decode_requests", (PyCFunction)(void (*)(void))decode_requests, METH_FASTCALL,
     "decode_requests(requests: list[bytes], text_keys=None) -> dict: decode_spans of the"
     " requests together, each walked as a request of its own."},
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

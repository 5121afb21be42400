/*
 * operators.otlp._json: decode an OTLP/JSON ExportTraceServiceRequest into columns.
 *
 * decode_spans(data: bytes) -> dict | None: the columns (see operators/otlp/json_wire.py for the
 * keys), or None when the request is outside the subset _json_scan.c handles, or is not valid
 * JSON at all: the Python decoder then accepts or rejects it with its reason. So this extension
 * changes how fast a request decodes, never whether it does.
 *
 * Files: _json.h (the decoder state, primitives), _json_read.c (the JSON grammar, typed fields),
 * _json_scan.c (the one pass over the request), this one (the Python objects).
 */
#include "_json.h"

static void jdec_free(JDec *j) {
    Buf *bufs[] = {&j->rs_idx, &j->name_idx, &j->kind, &j->status, &j->start, &j->end_ns,
                   &j->http,   &j->rpc,      &j->offs, &j->ids,    &j->res,   &j->names};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        buf_free(bufs[i]);
    }
    PyMem_Free(j->tab);
    j->tab = NULL;
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

/* Python objects for (offset, length) pairs into the input: str or bytes. */
static PyObject *slices(const JDec *j, const Buf *pairs, int text) {
    Py_ssize_t n = (Py_ssize_t)(pairs->len / (2 * sizeof(int64_t)));
    PyObject *list = PyList_New(n);
    if (list == NULL) {
        return NULL;
    }
    const int64_t *pp = (const int64_t *)pairs->data;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *s = (const char *)j->base + pp[2 * i];
        Py_ssize_t len = (Py_ssize_t)pp[2 * i + 1];
        /* surrogatepass: what json.loads decodes bytes with */
        PyObject *o = text ? PyUnicode_DecodeUTF8(s, len, "surrogatepass")
                           : PyBytes_FromStringAndSize(s, len);
        if (o == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, o);
    }
    return list;
}

static PyObject *operations(const JDec *j, PyObject *names) {
    Py_ssize_t n = (Py_ssize_t)j->n_spans;
    PyObject *ops = PyList_New(n);
    if (ops == NULL) {
        return NULL;
    }
    const int32_t *ni = (const int32_t *)j->name_idx.data;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PyList_GET_ITEM(names, ni[i]);
        Py_INCREF(s);
        PyList_SET_ITEM(ops, i, s);
    }
    return ops;
}

static PyObject *build_result(JDec *j) {
    PyObject *res = PyDict_New();
    if (res == NULL) {
        return NULL;
    }
    PyObject *names = slices(j, &j->names, 1);
    if (put(res, "names", names) < 0 || put(res, "operations", operations(j, names)) < 0 ||
        put(res, "resources", slices(j, &j->res, 0)) < 0 ||
        put(res, "resource_index", buf_bytes(&j->rs_idx)) < 0 ||
        put(res, "name_index", buf_bytes(&j->name_idx)) < 0 ||
        put(res, "kind", buf_bytes(&j->kind)) < 0 ||
        put(res, "status", buf_bytes(&j->status)) < 0 ||
        put(res, "start", buf_bytes(&j->start)) < 0 ||
        put(res, "end", buf_bytes(&j->end_ns)) < 0 ||
        put(res, "http_status", buf_bytes(&j->http)) < 0 ||
        put(res, "rpc_status", buf_bytes(&j->rpc)) < 0 ||
        put(res, "span_offsets", buf_bytes(&j->offs)) < 0 ||
        /* every span's ID_STRIDE-byte record: no bytes object per id */
        put(res, "ids", buf_bytes(&j->ids)) < 0) {
        Py_DECREF(res);
        return NULL;
    }
    return res;
}

/* 1 when the bytes are valid for json.loads' UTF-8 decoding (surrogates pass), 0 if not, -1. */
static int utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull) {
            break;
        }
    }
    for (; i < n && s[i] < 0x80; i++) {
    }
    if (i == n) {
        return 1;
    }
    PyObject *u = PyUnicode_DecodeUTF8((const char *)s, (Py_ssize_t)n, "surrogatepass");
    if (u == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            return -1;
        }
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(u);
    return 1;
}

static PyObject *decode_spans(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    JDec j;
    memset(&j, 0, sizeof j);
    j.base = j.p = (const uint8_t *)view.buf;
    j.end = j.base + view.len;
    /* a lean span is about 400 bytes of OTLP/JSON; reserve for that and grow if needed */
    size_t est = (size_t)view.len / 256 + 16;
    PyObject *res = NULL;
    int valid = utf8_valid(j.base, (size_t)view.len);
    if (valid < 0) {
        goto done;
    }
    if (!valid) {
        res = Py_NewRef(Py_None);
        goto done;
    }
    if (buf_grow(&j.rs_idx, est * 4) < 0 || buf_grow(&j.name_idx, est * 4) < 0 ||
        buf_grow(&j.kind, est) < 0 || buf_grow(&j.status, est) < 0 ||
        buf_grow(&j.start, est * 8) < 0 || buf_grow(&j.end_ns, est * 8) < 0 ||
        buf_grow(&j.http, est * 4) < 0 || buf_grow(&j.rpc, est * 4) < 0 ||
        buf_grow(&j.offs, est * 16) < 0 || buf_grow(&j.ids, est * ID_STRIDE) < 0) {
        goto done;
    }
    if (json_request(&j) < 0) {
        if (j.bail && !PyErr_Occurred()) {
            res = Py_NewRef(Py_None);
        }
        goto done;
    }
    res = build_result(&j);
done:
    jdec_free(&j);
    PyBuffer_Release(&view);
    return res;
}

static PyMethodDef methods[] = {
    {"decode_spans", decode_spans, METH_O,
     "decode_spans(data: bytes) -> dict | None: columns of an OTLP/JSON trace request."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "operators.otlp._json",
    "Compiled OTLP/JSON trace decoder (one pass to columns; None hands over to Python).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__json(void) { return PyModule_Create(&module); }

/*
 * operators.signals._groups: the span aggregator's group-bys, one pass over a poll's spans each
 * where numpy made several (aggregate.py keeps the numpy forms, and uses them when this is not
 * built). Each returns what its numpy form returns, exactly; None where the keys span too wide a
 * range to count densely (the caller then sorts with numpy).
 *
 * groups(pair, end_ns, window_ns, n_pairs) -> (gids, ginv, wmin, width) | None
 *     each span's window end_ns // window_ns (floor), its group key pair * width + window - wmin,
 *     the sorted distinct keys and each span's index into them (np.unique's).
 * group_stats(ginv, ng, end_ns, dur_ms, is_error) -> (counts, errors, max_ts, lo, hi)
 *     per group: spans, failing spans, newest end, shortest and longest duration.
 * newest(ginv, ng, end_ns, kind, of_kind) -> idx
 *     per group the index of its newest span of kind `of_kind` (of equal ends, the last), or -1.
 * value_counts(ginv, ng, values) -> (values, counts, rows) | None
 *     per group its distinct values ascending with their counts, the groups one after the other:
 *     group g's are [rows[g], rows[g + 1]).
 *
 * Arrays come and go as bytes (int64, float64, int8 and bool as numpy lays them out).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Count densely while the range of keys is at most this many slots per key, or this many. */
#define RANGE_PER_KEY 8
#define MIN_RANGE (1 << 16)

static int dense_ok(int64_t range, Py_ssize_t n) {
    int64_t limit = (int64_t)n * RANGE_PER_KEY;
    return range <= (limit > MIN_RANGE ? limit : MIN_RANGE);
}

/* A read-only contiguous view of `obj` holding `n` items of `size` bytes (n = -1: any count). */
static int view(PyObject *obj, Py_buffer *buf, Py_ssize_t size, Py_ssize_t *n, const char *what) {
    if (PyObject_GetBuffer(obj, buf, PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    if (buf->len % size != 0 || (*n >= 0 && buf->len / size != *n)) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, not %zd items of %zd", what, buf->len, *n,
                     size);
        PyBuffer_Release(buf);
        return -1;
    }
    *n = buf->len / size;
    return 0;
}

typedef struct {
    Py_ssize_t arg, size;
    const char *what;
} Want;

static void release(Py_buffer *bufs, int count) {
    for (int k = 0; k < count; k++) {
        PyBuffer_Release(&bufs[k]);
    }
}

/* `view` of args[want[k].arg] for each of `count` wants, all of *n items; -1 with every view
 * taken so far released. */
static int views(PyObject *const *args, const Want *want, int count, Py_buffer *bufs,
                 Py_ssize_t *n) {
    for (int k = 0; k < count; k++) {
        if (view(args[want[k].arg], &bufs[k], want[k].size, n, want[k].what) < 0) {
            release(bufs, k);
            return -1;
        }
    }
    return 0;
}

/* The group count args[1] of a call that takes `n` arguments (`usage` says which); -1 with an
 * exception set when there are not `n` or the count is negative. */
static Py_ssize_t group_count(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t n,
                              const char *usage) {
    if (nargs != n) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    Py_ssize_t ng = PyLong_AsSsize_t(args[1]);
    if (ng < 0 && !PyErr_Occurred()) {
        char name[64]; /* the function's name: `usage` up to its "(" */
        snprintf(name, sizeof name, "%.*s", (int)strcspn(usage, "("), usage);
        PyErr_Format(PyExc_ValueError, "%s: ng < 0", name);
    }
    return ng;
}

static PyObject *new_bytes(Py_ssize_t size, void **data) {
    PyObject *b = PyBytes_FromStringAndSize(NULL, size);
    if (b != NULL) {
        *data = PyBytes_AS_STRING(b);
    }
    return b;
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static PyObject *groups(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "groups(pair, end_ns, window_ns, n_pairs)");
        return NULL;
    }
    long long window_ns = PyLong_AsLongLong(args[2]);
    long long n_pairs = PyLong_AsLongLong(args[3]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (window_ns <= 0 || n_pairs <= 0) {
        PyErr_SetString(PyExc_ValueError, "groups: window_ns and n_pairs must be positive");
        return NULL;
    }
    static const Want want[] = {{0, 8, "pair"}, {1, 8, "end_ns"}};
    Py_buffer bufs[2];
    Py_ssize_t n = -1;
    if (views(args, want, 2, bufs, &n) < 0) {
        return NULL;
    }
    const int64_t *pair = bufs[0].buf, *end = bufs[1].buf;
    PyObject *res = NULL, *gids = NULL, *ginv = NULL;
    int64_t *slot = NULL, *inv = NULL;
    void *inv_data;
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "groups: no spans");
        goto done;
    }
    if ((ginv = new_bytes(n * 8, &inv_data)) == NULL) {
        goto done;
    }
    inv = inv_data; /* each span's window first, then its key, then its group */
    int64_t wmin = INT64_MAX, wmax = INT64_MIN;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t w = inv[i] = floor_div(end[i], window_ns);
        wmin = w < wmin ? w : wmin;
        wmax = w > wmax ? w : wmax;
        if (pair[i] < 0 || pair[i] >= n_pairs) {
            PyErr_SetString(PyExc_ValueError, "groups: a pair code outside [0, n_pairs)");
            goto done;
        }
    }
    /* the keys' range, n_pairs * width, without overflow */
    uint64_t width = (uint64_t)wmax - (uint64_t)wmin + 1;
    if (width > (uint64_t)INT64_MAX / (uint64_t)n_pairs ||
        !dense_ok((int64_t)(width * (uint64_t)n_pairs), n)) {
        res = Py_NewRef(Py_None);
        goto done;
    }
    int64_t range = (int64_t)width * n_pairs;
    if ((slot = PyMem_Calloc((size_t)range, sizeof *slot)) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t key = pair[i] * (int64_t)width + (inv[i] - wmin);
        inv[i] = key;
        slot[key] = 1;
    }
    int64_t ng = 0;
    for (int64_t k = 0; k < range; k++) {
        ng += slot[k] != 0;
    }
    void *gid_data;
    gids = new_bytes(ng * 8, &gid_data);
    if (gids == NULL) {
        goto done;
    }
    int64_t *gid = gid_data;
    for (int64_t k = 0, g = 0; k < range; k++) {
        if (slot[k]) {
            gid[g] = k;
            slot[k] = g++; /* from here on only present keys' slots are read */
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        inv[i] = slot[inv[i]];
    }
    res = Py_BuildValue("(OOLL)", gids, ginv, (long long)wmin, (long long)width);
done:
    Py_XDECREF(gids);
    Py_XDECREF(ginv);
    PyMem_Free(slot);
    release(bufs, 2);
    return res;
}

static PyObject *group_stats(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Py_ssize_t ng = group_count(args, nargs, 5, "group_stats(ginv, ng, end_ns, dur_ms, is_error)");
    if (ng < 0) {
        return NULL;
    }
    static const Want want[] = {
        {0, 8, "ginv"}, {2, 8, "end_ns"}, {3, 8, "dur_ms"}, {4, 1, "is_error"}};
    Py_buffer bufs[4];
    Py_ssize_t n = -1;
    if (views(args, want, 4, bufs, &n) < 0) {
        return NULL;
    }
    const int64_t *ginv = bufs[0].buf, *end = bufs[1].buf;
    const double *dur = bufs[2].buf;
    const uint8_t *err = bufs[3].buf;
    PyObject *res = NULL, *out[5] = {NULL, NULL, NULL, NULL, NULL};
    void *data[5];
    for (int k = 0; k < 5; k++) {
        if ((out[k] = new_bytes(ng * 8, &data[k])) == NULL) {
            goto done;
        }
    }
    int64_t *counts = data[0], *errors = data[1], *max_ts = data[2];
    double *lo = data[3], *hi = data[4];
    for (Py_ssize_t g = 0; g < ng; g++) {
        counts[g] = errors[g] = 0;
        max_ts[g] = INT64_MIN;
        lo[g] = Py_HUGE_VAL;
        hi[g] = -Py_HUGE_VAL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t g = ginv[i];
        if (g < 0 || g >= ng) {
            PyErr_SetString(PyExc_ValueError, "group_stats: a group index outside [0, ng)");
            goto done;
        }
        double d = dur[i];
        counts[g]++;
        errors[g] += err[i] != 0;
        max_ts[g] = end[i] > max_ts[g] ? end[i] : max_ts[g];
        /* np.minimum and np.maximum: a NaN wins */
        lo[g] = (d < lo[g] || d != d) && lo[g] == lo[g] ? d : lo[g];
        hi[g] = (d > hi[g] || d != d) && hi[g] == hi[g] ? d : hi[g];
    }
    res = PyTuple_Pack(5, out[0], out[1], out[2], out[3], out[4]);
done:
    for (int k = 0; k < 5; k++) {
        Py_XDECREF(out[k]);
    }
    release(bufs, 4);
    return res;
}

static PyObject *newest(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Py_ssize_t ng = group_count(args, nargs, 5, "newest(ginv, ng, end_ns, kind, of_kind)");
    if (ng < 0) {
        return NULL;
    }
    long of_kind = PyLong_AsLong(args[4]);
    if (of_kind == -1 && PyErr_Occurred()) {
        return NULL;
    }
    static const Want want[] = {{0, 8, "ginv"}, {2, 8, "end_ns"}, {3, 1, "kind"}};
    Py_buffer bufs[3];
    Py_ssize_t n = -1;
    if (views(args, want, 3, bufs, &n) < 0) {
        return NULL;
    }
    const int64_t *ginv = bufs[0].buf, *end = bufs[1].buf;
    const int8_t *kind = bufs[2].buf;
    PyObject *res = NULL;
    int64_t *latest = PyMem_Malloc(ng ? (size_t)ng * 8 : 1);
    void *data;
    PyObject *out = new_bytes(ng * 8, &data);
    if (latest == NULL || out == NULL) {
        if (latest == NULL) {
            PyErr_NoMemory();
        }
        goto done;
    }
    int64_t *found = data;
    for (Py_ssize_t g = 0; g < ng; g++) {
        found[g] = -1;
        latest[g] = INT64_MIN;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (kind[i] != of_kind) {
            continue;
        }
        int64_t g = ginv[i];
        if (g < 0 || g >= ng) {
            PyErr_SetString(PyExc_ValueError, "newest: a group index outside [0, ng)");
            goto done;
        }
        if (end[i] >= latest[g]) { /* among equal ends, the last in arrival order */
            latest[g] = end[i];
            found[g] = i;
        }
    }
    res = Py_NewRef(out);
done:
    Py_XDECREF(out);
    PyMem_Free(latest);
    release(bufs, 3);
    return res;
}

static PyObject *value_counts(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Py_ssize_t ng = group_count(args, nargs, 4, "value_counts(ginv, ng, values, lowest)");
    if (ng < 0) {
        return NULL;
    }
    long long lowest = PyLong_AsLongLong(args[3]);
    if (lowest == -1 && PyErr_Occurred()) {
        return NULL;
    }
    static const Want want[] = {{0, 8, "ginv"}, {2, 8, "values"}};
    Py_buffer bufs[2];
    Py_ssize_t n = -1;
    if (views(args, want, 2, bufs, &n) < 0) {
        return NULL;
    }
    const int64_t *ginv = bufs[0].buf, *val = bufs[1].buf;
    PyObject *res = NULL, *values = NULL, *counts = NULL, *rows = NULL;
    /* per group: the lowest and highest value but `lowest`, its first cell, and its `lowest`s */
    int64_t *lo = PyMem_Malloc((size_t)(ng ? ng : 1) * 4 * sizeof(int64_t)), *cells = NULL;
    if (lo == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *hi = lo + ng, *first = hi + ng, *low = first + ng;
    for (Py_ssize_t g = 0; g < ng; g++) {
        lo[g] = INT64_MAX;
        hi[g] = INT64_MIN;
        low[g] = 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t g = ginv[i], v = val[i];
        if (g < 0 || g >= ng) {
            PyErr_SetString(PyExc_ValueError, "value_counts: a group index outside [0, ng)");
            goto done;
        }
        if (v == lowest) {
            low[g]++;
            continue;
        }
        if (v < lowest) {
            PyErr_SetString(PyExc_ValueError, "value_counts: a value below `lowest`");
            goto done;
        }
        lo[g] = v < lo[g] ? v : lo[g];
        hi[g] = v > hi[g] ? v : hi[g];
    }
    uint64_t total = 0;
    for (Py_ssize_t g = 0; g < ng; g++) {
        first[g] = (int64_t)total;
        if (lo[g] <= hi[g]) {
            total += (uint64_t)hi[g] - (uint64_t)lo[g] + 1;
            if (total > (uint64_t)INT64_MAX / 8 || !dense_ok((int64_t)total, n)) {
                res = Py_NewRef(Py_None);
                goto done;
            }
        }
    }
    cells = PyMem_Calloc(total ? total : 1, sizeof *cells);
    if (cells == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t g = ginv[i], v = val[i];
        if (v != lowest) {
            cells[first[g] + (v - lo[g])]++;
        }
    }
    Py_ssize_t m = 0;
    for (uint64_t c = 0; c < total; c++) {
        m += cells[c] != 0;
    }
    for (Py_ssize_t g = 0; g < ng; g++) {
        m += low[g] != 0;
    }
    void *vd, *cd, *rd;
    values = new_bytes(m * 8, &vd);
    counts = new_bytes(m * 8, &cd);
    rows = new_bytes((ng + 1) * 8, &rd);
    if (values == NULL || counts == NULL || rows == NULL) {
        goto done;
    }
    int64_t *ov = vd, *oc = cd, *orow = rd, at = 0;
    for (Py_ssize_t g = 0; g < ng; g++) {
        orow[g] = at;
        if (low[g]) {
            ov[at] = lowest;
            oc[at++] = low[g];
        }
        if (lo[g] > hi[g]) {
            continue;
        }
        int64_t width = hi[g] - lo[g] + 1;
        for (int64_t k = 0; k < width; k++) {
            int64_t c = cells[first[g] + k];
            if (c) {
                ov[at] = lo[g] + k;
                oc[at++] = c;
            }
        }
    }
    orow[ng] = at;
    res = PyTuple_Pack(3, values, counts, rows);
done:
    Py_XDECREF(values);
    Py_XDECREF(counts);
    Py_XDECREF(rows);
    PyMem_Free(lo);
    PyMem_Free(cells);
    release(bufs, 2);
    return res;
}

static PyMethodDef methods[] = {
    {"groups", (PyCFunction)(void (*)(void))groups, METH_FASTCALL,
     "Each span's (pair, window) group: the sorted keys and each span's index into them."},
    {"group_stats", (PyCFunction)(void (*)(void))group_stats, METH_FASTCALL,
     "Per group: spans, failing spans, newest end, shortest and longest duration."},
    {"newest", (PyCFunction)(void (*)(void))newest, METH_FASTCALL,
     "Per group: its newest span of one kind (the last of equal ends), or -1."},
    {"value_counts", (PyCFunction)(void (*)(void))value_counts, METH_FASTCALL,
     "Per group: its distinct values ascending (`lowest` first) and how often each occurs."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_groups", NULL, 0, methods};

PyMODINIT_FUNC PyInit__groups(void) { return PyModule_Create(&module); }

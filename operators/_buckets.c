/*
 * operators._buckets: a packed quantile sketch's buckets merged and ranked in one pass each, where
 * numpy took an argsort, a cumsum and a search of a few hundred buckets (sketch.py keeps the numpy
 * forms, and uses them when this is not built). Each returns what its numpy form returns, exactly.
 *
 * Buckets come as two byte strings: int32 indexes, non-decreasing (a packed sketch's always are),
 * and their uint32 counts. Indexes out of order give None: the caller then sorts with numpy.
 *
 * merge(idx_a, counts_a, idx_b, counts_b, max_count) -> (idx, counts) | None | False
 *     both sketches' buckets, each index once with its counts summed; False when a sum is over
 *     max_count (the caller then keeps a dict).
 * at_ranks(idx, counts, ranks) -> [bucket index or None] | None
 *     for each rank, the index of the first bucket whose running count passes it (None: no
 *     bucket's does).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

typedef struct {
    Py_buffer idx, counts;
    Py_ssize_t n;
} Buckets;

static void release(Buckets *b) {
    PyBuffer_Release(&b->idx);
    PyBuffer_Release(&b->counts);
}

/* Views of one sketch's two byte strings, as many counts as indexes; -1 with nothing held. */
static int take(PyObject *idx, PyObject *counts, Buckets *b) {
    if (PyObject_GetBuffer(idx, &b->idx, PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    if (PyObject_GetBuffer(counts, &b->counts, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&b->idx);
        return -1;
    }
    if (b->idx.len % 4 != 0 || b->idx.len != b->counts.len) {
        PyErr_Format(PyExc_ValueError, "buckets: %zd index bytes and %zd count bytes, not 4 each",
                     b->idx.len, b->counts.len);
        release(b);
        return -1;
    }
    b->n = b->idx.len / 4;
    return 0;
}

static int ascending(const Buckets *b) {
    const int32_t *idx = b->idx.buf;
    for (Py_ssize_t i = 1; i < b->n; i++) {
        if (idx[i] < idx[i - 1]) {
            return 0;
        }
    }
    return 1;
}

static PyObject *merge(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "merge(idx_a, counts_a, idx_b, counts_b, max_count)");
        return NULL;
    }
    unsigned long long max_count = PyLong_AsUnsignedLongLong(args[4]);
    if (max_count == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    Buckets a, b;
    if (take(args[0], args[1], &a) < 0) {
        return NULL;
    }
    if (take(args[2], args[3], &b) < 0) {
        release(&a);
        return NULL;
    }
    PyObject *result = NULL;
    if (!ascending(&a) || !ascending(&b)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *idx_out = PyBytes_FromStringAndSize(NULL, (a.n + b.n) * 4);
    PyObject *counts_out = PyBytes_FromStringAndSize(NULL, (a.n + b.n) * 4);
    if (idx_out == NULL || counts_out == NULL) {
        Py_XDECREF(idx_out);
        Py_XDECREF(counts_out);
        goto done;
    }
    const int32_t *ia = a.idx.buf, *ib = b.idx.buf;
    const uint32_t *ca = a.counts.buf, *cb = b.counts.buf;
    int32_t *io = (int32_t *)PyBytes_AS_STRING(idx_out);
    uint32_t *co = (uint32_t *)PyBytes_AS_STRING(counts_out);
    Py_ssize_t i = 0, j = 0, m = 0;
    int over = 0;
    while (i < a.n || j < b.n) {
        int32_t key = (j >= b.n || (i < a.n && ia[i] <= ib[j])) ? ia[i] : ib[j];
        uint64_t sum = 0;
        while (i < a.n && ia[i] == key) {
            sum += ca[i++];
        }
        while (j < b.n && ib[j] == key) {
            sum += cb[j++];
        }
        if (sum > max_count) {
            over = 1;
            break;
        }
        io[m] = key;
        co[m++] = (uint32_t)sum;
    }
    if (over) {
        Py_DECREF(idx_out);
        Py_DECREF(counts_out);
        result = Py_NewRef(Py_False);
        goto done;
    }
    if (_PyBytes_Resize(&idx_out, m * 4) < 0) {
        Py_DECREF(counts_out);
        goto done;
    }
    if (_PyBytes_Resize(&counts_out, m * 4) < 0) {
        Py_DECREF(idx_out);
        goto done;
    }
    result = PyTuple_Pack(2, idx_out, counts_out);
    Py_DECREF(idx_out);
    Py_DECREF(counts_out);
done:
    release(&a);
    release(&b);
    return result;
}

static PyObject *at_ranks(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "at_ranks(idx, counts, ranks)");
        return NULL;
    }
    PyObject *ranks = PySequence_Fast(args[2], "ranks must be a sequence");
    if (ranks == NULL) {
        return NULL;
    }
    Buckets b;
    if (take(args[0], args[1], &b) < 0) {
        Py_DECREF(ranks);
        return NULL;
    }
    PyObject *result = NULL;
    if (!ascending(&b)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    const int32_t *idx = b.idx.buf;
    const uint32_t *counts = b.counts.buf;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(ranks);
    PyObject *out = PyList_New(k);
    if (out == NULL) {
        goto done;
    }
    /* Ranks mostly ascend (p50, p95, p99): the walk goes on from the last one's bucket. */
    Py_ssize_t at = 0;
    long long running = b.n ? counts[0] : 0;
    for (Py_ssize_t r = 0; r < k; r++) {
        long long rank = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(ranks, r));
        if (rank == -1 && PyErr_Occurred()) {
            Py_DECREF(out);
            goto done;
        }
        if (at >= b.n || (at > 0 && rank < running - (long long)counts[at])) {
            at = 0;
            running = b.n ? counts[0] : 0;
        }
        while (at < b.n && running <= rank) {
            at++;
            running += at < b.n ? counts[at] : 0;
        }
        PyObject *found = at < b.n ? PyLong_FromLong(idx[at]) : Py_NewRef(Py_None);
        if (found == NULL) {
            Py_DECREF(out);
            goto done;
        }
        PyList_SET_ITEM(out, r, found);
    }
    result = out;
done:
    release(&b);
    Py_DECREF(ranks);
    return result;
}

static PyMethodDef methods[] = {
    {"merge", (PyCFunction)(void (*)(void))merge, METH_FASTCALL,
     "Two packed sketches' buckets merged, or None (out of order) or False (a count too large)."},
    {"at_ranks", (PyCFunction)(void (*)(void))at_ranks, METH_FASTCALL,
     "The bucket index at each rank (None past the last), or None (indexes out of order)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_buckets", NULL, 0, methods};

PyMODINIT_FUNC PyInit__buckets(void) { return PyModule_Create(&module); }

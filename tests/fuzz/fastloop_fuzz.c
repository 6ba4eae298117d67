/*
 * libFuzzer harness for the C loop's fast path, built with clang under AddressSanitizer:
 *
 *   every input is put in a Batch slot exactly as serve() receives a datagram and run
 *   through fast_answer(); when C answers, its reply must equal, byte for byte, what
 *   enumer.dns.wire.respond() gives (tests/fuzz/fastloop_oracle.py); ASan reports any
 *   out-of-bounds access, libFuzzer any crash, and a difference aborts.
 *
 * Built and run, bounded, by tests/fuzz/test_fastloop_fuzz.py; a long run:
 *   that test's build command, then ./fastloop_fuzz -max_total_time=600 CORPUS_DIR
 */
#include "../../src/enumer/dns/_fastloop.c"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static PyObject *zones, *expected;
static Zones zs; /* zones as serve() reads them: dicts and flat table mappings */
static Py_ssize_t pointers[3];
static Batch *batch;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    Py_Initialize();
    PyObject *oracle = PyImport_ImportModule("tests.fuzz.fastloop_oracle");
    if (oracle == NULL) {
        PyErr_Print();
        abort();
    }
    zones = PyObject_GetAttrString(oracle, "ZONES");
    expected = PyObject_GetAttrString(oracle, "expected");
    PyObject *ptrs = PyObject_GetAttrString(oracle, "POINTERS");
    if (zones == NULL || expected == NULL || ptrs == NULL || !PyDict_Check(zones) ||
        !PyArg_ParseTuple(ptrs, "nnn", &pointers[0], &pointers[1], &pointers[2])) {
        PyErr_Print();
        abort();
    }
    if (zones_open(zones, &zs) < 0) {
        PyErr_Print();
        abort();
    }
    batch = calloc(1, sizeof(Batch));
    return batch == NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > SLOT)
        return 0; /* serve() drops a datagram longer than a slot */
    memcpy(batch->data[0], data, size);
    batch->iovs[0].iov_base = batch->data[0];
    batch->iovs[0].iov_len = size;
    int rcode = fast_answer(batch, 0, (Py_ssize_t)size, &zs, pointers);
    if (rcode < 0)
        return 0; /* Python answers it: nothing of C's to check */
    PyObject *want = PyObject_CallFunction(expected, "y#", (const char *)data, (Py_ssize_t)size);
    if (want == NULL) {
        PyErr_Print();
        abort();
    }
    size_t got = batch->iovs[0].iov_len;
#ifdef CORRUPT_REPLY /* the harness's self-test: a wrong reply must be caught */
    batch->data[0][got - 1] ^= 1;
#endif
    if (!PyBytes_Check(want) || (size_t)PyBytes_GET_SIZE(want) != got ||
        memcmp(PyBytes_AS_STRING(want), batch->data[0], got) != 0) {
        fprintf(stderr, "fast path reply differs from wire.respond (rcode %d, %zu bytes)\n",
                rcode, got);
        abort();
    }
    Py_DECREF(want);
    return 0;
}

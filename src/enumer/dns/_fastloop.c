/*
 * The UDP hot loop of a gateway worker, in C: recvmmsg -> answer -> sendmmsg.
 *
 * Why C: measured on the benchmark machine, the Python batch loop spends
 * about as much CPU per query in the interpreter as the kernel spends moving
 * the packet; this loop takes the interpreter out of the common case.  It is
 * optional: without a C compiler the package installs without it and the
 * worker runs the same loop in Python (enumer.dns.server._batch_answerer).
 *
 * What it answers itself is exactly the "fast path" of enumer.dns.wire.respond
 * (tests compare the two byte for byte): a query with QR=0, opcode QUERY, one
 * question and no other records (so no EDNS), type NAPTR class IN, for a
 * compact name "<digits>.<zone>." whose zone allows the fast path, whose
 * number has a pre-built answer, and whose response fits 512 bytes.  Every
 * other datagram -- misses, NXDOMAIN, dotted names, EDNS, anything odd -- is
 * handed to a Python function, which runs the full, general code.
 *
 * serve(fd, stop_fd, zones, fallback, counters, indices, check_batches, loopback_only)
 *   fd        the UDP socket (blocking; SO_RCVTIMEO bounds each wait)
 *   stop_fd   non-blocking pipe; EOF (the parent closed it) ends the loop
 *   zones     dict: zone suffix in wire form (b"\x04enum\x00") ->
 *             (answers: dict[bytes, bytes], max_digits: int); empty = no fast path
 *   fallback  callable(datagram: bytes, sender: bytes) -> bytes | None
 *   counters  writable buffer of uint64 (the worker's metrics block)
 *   indices   (queries_udp, rcode_noerror, dropped, errors) in counters
 *   check_batches  look at stop_fd every this many busy batches
 *   loopback_only  answer in C only datagrams from 127.0.0.0/8, ::1 or
 *             ::ffff:127.0.0.0/104 (the clients a rate limiter exempts)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define BATCH 64
#define SLOT 4096          /* bytes per datagram slot; longer datagrams are dropped */
#define NAME_SIZE 28       /* sizeof(struct sockaddr_in6) */
#define PLAIN_UDP_SIZE 512 /* RFC 1035 limit without EDNS */

typedef struct {
    struct mmsghdr msgs[BATCH];
    struct iovec iovs[BATCH];
    unsigned char names[BATCH][NAME_SIZE];
    unsigned char data[BATCH][SLOT];
    char replied[BATCH];
} Batch;

static const unsigned char ONE_QUESTION[8] = {0, 1, 0, 0, 0, 0, 0, 0};
static const unsigned char NAPTR_IN[4] = {0x00, 0x23, 0x00, 0x01};

static void reset_slots(Batch *b, int n) {
    for (int i = 0; i < n; i++) {
        b->iovs[i].iov_len = SLOT;
        b->msgs[i].msg_hdr.msg_namelen = NAME_SIZE;
        b->replied[i] = 0;
    }
}

/* Number of RRs in a pointer-owned answer section (as wire.rr_count); -1 if malformed. */
static int count_rrs(const unsigned char *rrs, Py_ssize_t len) {
    Py_ssize_t pos = 0;
    int count = 0;
    while (pos < len) {
        if (pos + 12 > len)
            return -1;
        pos += 12 + ((rrs[pos + 10] << 8) | rrs[pos + 11]);
        count++;
    }
    return pos == len ? count : -1;
}

/* Whether slot i came from a loopback address (which rate limiting exempts). */
static int from_loopback(const Batch *b, int i) {
    const struct sockaddr *sa = (const struct sockaddr *)b->names[i];
    socklen_t len = b->msgs[i].msg_hdr.msg_namelen;
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)b->names[i];
        return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)b->names[i])->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

/*
 * The fast path for the datagram in slot i: 1 when the reply was written
 * into the slot, 0 when Python must answer it.  Never raises.
 */
static int fast_answer(Batch *b, int i, Py_ssize_t len, PyObject *zones) {
    unsigned char *q = b->data[i];
    if (len <= 17 || (q[2] & 0xF8) || memcmp(q + 4, ONE_QUESTION, 8) != 0 ||
        memcmp(q + len - 4, NAPTR_IN, 4) != 0)
        return 0;
    Py_ssize_t n = q[12];
    if (n == 0 || 13 + n > len - 4)
        return 0;
    for (Py_ssize_t k = 0; k < n; k++)
        if (q[13 + k] < '0' || q[13 + k] > '9')
            return 0;
    PyObject *suffix = PyBytes_FromStringAndSize((const char *)q + 13 + n, len - 4 - 13 - n);
    if (suffix == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *zone = PyDict_GetItemWithError(zones, suffix); /* borrowed */
    Py_DECREF(suffix);
    if (zone == NULL || !PyTuple_Check(zone) || PyTuple_GET_SIZE(zone) != 2) {
        PyErr_Clear();
        return 0;
    }
    PyObject *answers = PyTuple_GET_ITEM(zone, 0);
    long max_digits = PyLong_AsLong(PyTuple_GET_ITEM(zone, 1));
    if (max_digits == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (!PyDict_Check(answers) || n > max_digits)
        return 0;
    PyObject *key = PyBytes_FromStringAndSize((const char *)q + 13, n);
    if (key == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *rrs = PyDict_GetItemWithError(answers, key); /* borrowed */
    Py_DECREF(key);
    if (rrs == NULL || !PyBytes_Check(rrs)) {
        PyErr_Clear();
        return 0; /* a miss: toll-free or NXDOMAIN, Python decides */
    }
    Py_ssize_t rlen = PyBytes_GET_SIZE(rrs);
    const unsigned char *r = (const unsigned char *)PyBytes_AS_STRING(rrs);
    int count = count_rrs(r, rlen);
    if (rlen == 0 || count <= 0 || len + rlen > PLAIN_UDP_SIZE)
        return 0;
    /* Header: id kept; QR AA, RD copied; RA off; CD copied; NOERROR. */
    unsigned char rd = q[2] & 0x01, cd = q[3] & 0x10;
    q[2] = 0x84 | rd;
    q[3] = cd;
    q[6] = (unsigned char)(count >> 8);
    q[7] = (unsigned char)count;
    /* QD=1 and NS=AR=0 are already in place; the question stays as it came. */
    memcpy(q + len, r, (size_t)rlen);
    b->iovs[i].iov_len = (size_t)(len + rlen);
    return 1;
}

/* Python answers slot i: 1 when it gave a reply (copied into the slot), 0 when not. */
static int python_answer(Batch *b, int i, Py_ssize_t len, PyObject *fallback, int *error) {
    PyObject *res = PyObject_CallFunction(
        fallback, "y#y#", (const char *)b->data[i], len, (const char *)b->names[i],
        (Py_ssize_t)b->msgs[i].msg_hdr.msg_namelen);
    if (res == NULL) {
        PyErr_Clear(); /* UdpDuty.answer catches everything; this is a last resort */
        *error = 1;
        return 0;
    }
    int replied = 0;
    if (PyBytes_Check(res) && PyBytes_GET_SIZE(res) > 0 && PyBytes_GET_SIZE(res) <= SLOT) {
        memcpy(b->data[i], PyBytes_AS_STRING(res), (size_t)PyBytes_GET_SIZE(res));
        b->iovs[i].iov_len = (size_t)PyBytes_GET_SIZE(res);
        replied = 1;
    } else if (res != Py_None) {
        *error = 1;
    }
    Py_DECREF(res);
    return replied;
}

/* sendmmsg every run of consecutive replied slots; returns how many the kernel refused. */
static unsigned long long send_replies(int fd, Batch *b, int n) {
    unsigned long long failed = 0;
    int i = 0;
    while (i < n) {
        if (!b->replied[i]) {
            i++;
            continue;
        }
        int start = i;
        while (i < n && b->replied[i])
            i++;
        int count = i - start;
        while (count > 0) {
            int sent;
            Py_BEGIN_ALLOW_THREADS
            sent = sendmmsg(fd, b->msgs + start, (unsigned int)count, 0);
            Py_END_ALLOW_THREADS
            if (sent < 0) {
                if (errno == EINTR)
                    continue;
                sent = 1; /* this one cannot go (EPERM, EMSGSIZE, ...): skip it */
                failed++;
            }
            start += sent;
            count -= sent;
        }
    }
    return failed;
}

static PyObject *serve(PyObject *self, PyObject *args) {
    int fd, stop_fd, check_batches, loopback_only;
    PyObject *zones, *fallback;
    Py_buffer counters;
    Py_ssize_t i_queries, i_noerror, i_dropped, i_errors;
    (void)self;
    if (!PyArg_ParseTuple(args, "iiO!Ow*(nnnn)ip", &fd, &stop_fd, &PyDict_Type, &zones, &fallback,
                          &counters, &i_queries, &i_noerror, &i_dropped, &i_errors,
                          &check_batches, &loopback_only))
        return NULL;
    Py_ssize_t ncounters = counters.len / (Py_ssize_t)sizeof(unsigned long long);
    if (counters.readonly || i_queries < 0 || i_noerror < 0 || i_dropped < 0 || i_errors < 0 ||
        i_queries >= ncounters || i_noerror >= ncounters || i_dropped >= ncounters ||
        i_errors >= ncounters || !PyCallable_Check(fallback) || check_batches < 1) {
        PyBuffer_Release(&counters);
        PyErr_SetString(PyExc_ValueError, "serve: bad counters, indices or fallback");
        return NULL;
    }
    unsigned long long *counter = (unsigned long long *)counters.buf;
    Batch *b = PyMem_Calloc(1, sizeof(Batch));
    if (b == NULL) {
        PyBuffer_Release(&counters);
        return PyErr_NoMemory();
    }
    for (int i = 0; i < BATCH; i++) {
        b->iovs[i].iov_base = b->data[i];
        b->msgs[i].msg_hdr.msg_name = b->names[i];
        b->msgs[i].msg_hdr.msg_iov = &b->iovs[i];
        b->msgs[i].msg_hdr.msg_iovlen = 1;
    }
    reset_slots(b, BATCH);
    int batches = 0;
    PyObject *result = NULL;
    for (;;) {
        int n;
        Py_BEGIN_ALLOW_THREADS
        n = recvmmsg(fd, b->msgs, BATCH, MSG_WAITFORONE, NULL);
        Py_END_ALLOW_THREADS
        if (n < 0) {
            if (errno == EINTR) {
                if (PyErr_CheckSignals() < 0)
                    break;
                n = 0;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                n = 0;
            } else {
                PyErr_SetFromErrno(PyExc_OSError);
                break;
            }
        }
        for (int i = 0; i < n; i++) {
            Py_ssize_t len = (Py_ssize_t)b->msgs[i].msg_len;
            if (len == 0 || (b->msgs[i].msg_hdr.msg_flags & MSG_TRUNC)) {
                counter[i_dropped]++;
                continue;
            }
            if ((!loopback_only || from_loopback(b, i)) && fast_answer(b, i, len, zones)) {
                counter[i_queries]++;
                counter[i_noerror]++;
                b->replied[i] = 1;
                continue;
            }
            int error = 0;
            b->replied[i] = (char)python_answer(b, i, len, fallback, &error);
            if (error)
                counter[i_errors]++;
        }
        if (n > 0)
            counter[i_errors] += send_replies(fd, b, n);
        reset_slots(b, n > 0 ? n : 0);
        if (n > 0 && ++batches < check_batches)
            continue;
        batches = 0;
        char c;
        ssize_t r = read(stop_fd, &c, 1);
        if (r == 0) {
            result = Py_None; /* the parent closed the pipe: retire */
            Py_INCREF(result);
            break;
        }
        if (PyErr_CheckSignals() < 0)
            break;
    }
    PyMem_Free(b);
    PyBuffer_Release(&counters);
    return result;
}

static PyMethodDef methods[] = {
    {"serve", serve, METH_VARARGS,
     "Serve UDP on fd with recvmmsg/sendmmsg until stop_fd reaches EOF (see the module source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "enumer.dns._fastloop",
    "The gateway worker's UDP loop in C (optional; see _fastloop.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__fastloop(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "BATCH", BATCH) < 0 ||
        PyModule_AddIntConstant(m, "SLOT", SLOT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

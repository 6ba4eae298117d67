/*
 * The UDP hot loop of a gateway worker, in C: recvmmsg -> answer -> sendmmsg.
 *
 * Why C: measured on the benchmark machine, the Python batch loop spends
 * about as much CPU per query in the interpreter as the kernel spends moving
 * the packet; this loop takes the interpreter out of the common case.  It is
 * optional: without a C compiler the package installs without it and the
 * worker runs the same loop in Python (enumer.dns.udp._batch_answerer).
 *
 * What it answers itself is exactly what enumer.dns.wire.respond answers for
 * the common queries (tests compare the two byte for byte): a query with
 * QR=0, opcode QUERY, one question and no other records (so no EDNS), type
 * NAPTR class IN, for a name "<digits>.<zone>." (compact) or
 * "<d>.<d>...<d>.<zone>." (dotted), in lower case, of a zone that allows the
 * fast path:
 *   - a number with a pre-built answer that fits 512 bytes: NOERROR and the
 *     answer;
 *   - a number without one, when the zone's source is complete (no toll-free
 *     list, which only Python can match): NXDOMAIN with the zone's SOA.
 * Every other datagram -- toll-free candidates, EDNS, other types, anything
 * odd -- is handed to a Python function, which runs the full, general code.
 *
 * serve(fd, stop_fd, zones, fallback, counters, indices, check_batches,
 *       check_seconds, loopback_only, soa_pointers, stale) -> None | True
 *   fd        the UDP socket (blocking; SO_RCVTIMEO bounds each wait)
 *   stop_fd   non-blocking pipe; EOF (the parent closed it) ends the loop and
 *             serve returns None
 *   zones     dict: zone suffix in wire form (b"\x04enum\x00") ->
 *             (answers: dict[bytes, bytes], max_digits: int, soa: bytes | None);
 *             soa is the SOA RR of a complete zone (NXDOMAIN is answered
 *             here), None for a zone whose misses Python must answer
 *   fallback  callable(datagram: bytes, sender: bytes) -> bytes | None
 *   counters  writable buffer of uint64 (the worker's metrics block)
 *   indices   (queries_udp, rcode_noerror, rcode_nxdomain, dropped, errors)
 *             in counters
 *   check_batches, check_seconds  look at stop_fd (and ask stale) after this
 *             many batches or this long, whichever comes first, and whenever
 *             a wait ends without a datagram
 *   loopback_only  answer in C only datagrams from 127.0.0.0/8, ::1 or
 *             ::ffff:127.0.0.0/104 (the clients a rate limiter exempts)
 *   soa_pointers  (a, b, c): offsets in soa of the three compression
 *             pointers to the zone (owner, MNAME, RNAME), which C sets to
 *             where the zone starts in the question
 *   stale     None, or a callable asked whenever stop_fd is looked at:
 *             when it returns true, serve returns True so that the caller
 *             passes zones built from the current tables (a loop in a
 *             thread of the process that updates them)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
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

/*
 * The length of slot i's sender address, at most the buffer it was written to:
 * the kernel reports the address's full length, which for a family we did not
 * expect may exceed NAME_SIZE (it then wrote only NAME_SIZE bytes).
 */
static socklen_t name_len(const Batch *b, int i) {
    socklen_t len = b->msgs[i].msg_hdr.msg_namelen;
    return len < NAME_SIZE ? len : NAME_SIZE;
}

/* Whether slot i came from a loopback address (which rate limiting exempts). */
static int from_loopback(const Batch *b, int i) {
    const struct sockaddr *sa = (const struct sockaddr *)b->names[i];
    socklen_t len = name_len(b, i);
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

/* CLOCK_MONOTONIC in seconds (a vDSO call, no system call). */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The zone entry (answers, max_digits, soa) for the wire suffix q[start:end], or NULL. */
static PyObject *zone_entry(const unsigned char *q, Py_ssize_t start, Py_ssize_t end,
                            PyObject *zones) {
    PyObject *suffix = PyBytes_FromStringAndSize((const char *)q + start, end - start);
    if (suffix == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *zone = PyDict_GetItemWithError(zones, suffix); /* borrowed */
    Py_DECREF(suffix);
    if (zone == NULL || !PyTuple_Check(zone) || PyTuple_GET_SIZE(zone) != 3) {
        PyErr_Clear();
        return NULL;
    }
    return zone;
}

/*
 * The fast path for the datagram in slot i: the rcode of the reply written
 * into the slot (0 NOERROR, 3 NXDOMAIN), or -1 when Python must answer it.
 * soa_pointer: where the zone's compression pointers sit in an SOA RR (see
 * serve()).  Never raises.
 */
static int fast_answer(Batch *b, int i, Py_ssize_t len, PyObject *zones,
                       const Py_ssize_t soa_pointer[3]) {
    unsigned char *q = b->data[i];
    if (len <= 17 || (q[2] & 0xF8) || memcmp(q + 4, ONE_QUESTION, 8) != 0 ||
        memcmp(q + len - 4, NAPTR_IN, 4) != 0)
        return -1;
    /* The digits in label order, from one all-digit label or one-digit labels. */
    unsigned char digits[SLOT / 2];
    Py_ssize_t ndigits = 0, pos = 12, end = len - 4;
    if (q[12] > 1) { /* compact */
        if (q[12] > 63)
            return -1; /* not a label (a pointer, or reserved): FORMERR from Python */
        ndigits = q[12];
        if (13 + ndigits > end)
            return -1;
        for (Py_ssize_t k = 0; k < ndigits; k++) {
            if (q[13 + k] < '0' || q[13 + k] > '9')
                return -1;
            digits[k] = q[13 + k];
        }
        pos = 13 + ndigits;
    } else { /* dotted (a single digit is both) */
        while (pos + 2 <= end && q[pos] == 1 && q[pos + 1] >= '0' && q[pos + 1] <= '9') {
            digits[ndigits++] = q[pos + 1];
            pos += 2;
        }
        if (ndigits == 0)
            return -1;
    }
    Py_ssize_t zone_at = pos; /* where the zone starts: the SOA's pointers point here */
    PyObject *zone = zone_entry(q, pos, end, zones);
    if (zone == NULL)
        return -1;
    PyObject *answers = PyTuple_GET_ITEM(zone, 0);
    long max_digits = PyLong_AsLong(PyTuple_GET_ITEM(zone, 1));
    PyObject *soa = PyTuple_GET_ITEM(zone, 2);
    if (max_digits == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    if (!PyDict_Check(answers) || ndigits > max_digits)
        return -1;
    PyObject *key = PyBytes_FromStringAndSize((const char *)digits, ndigits);
    if (key == NULL) {
        PyErr_Clear();
        return -1;
    }
    PyObject *rrs = PyDict_GetItemWithError(answers, key); /* borrowed */
    Py_DECREF(key);
    if (rrs == NULL && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    /* Header: id kept; QR AA, RD copied; RA off; CD copied; QD=1 and AR=0 in place. */
    unsigned char rd = q[2] & 0x01, cd = q[3] & 0x10;
    if (rrs == NULL) { /* NXDOMAIN with the SOA, when the zone has no other answers */
        if (!PyBytes_Check(soa))
            return -1; /* toll-free lists and the like: Python decides */
        Py_ssize_t slen = PyBytes_GET_SIZE(soa);
        if (len + slen > PLAIN_UDP_SIZE || zone_at > 0x3FFF)
            return -1;
        for (int k = 0; k < 3; k++)
            if (soa_pointer[k] < 0 || soa_pointer[k] + 2 > slen)
                return -1;
        unsigned char *out = q + len;
        memcpy(out, PyBytes_AS_STRING(soa), (size_t)slen);
        for (int k = 0; k < 3; k++) {
            out[soa_pointer[k]] = (unsigned char)(0xC0 | (zone_at >> 8));
            out[soa_pointer[k] + 1] = (unsigned char)(zone_at & 0xFF);
        }
        q[2] = 0x84 | rd;
        q[3] = cd | 3;
        q[6] = q[7] = 0;
        q[8] = 0;
        q[9] = 1;
        b->iovs[i].iov_len = (size_t)(len + slen);
        return 3;
    }
    if (!PyBytes_Check(rrs))
        return -1;
    Py_ssize_t rlen = PyBytes_GET_SIZE(rrs);
    const unsigned char *r = (const unsigned char *)PyBytes_AS_STRING(rrs);
    int count = count_rrs(r, rlen);
    if (rlen == 0 || count <= 0 || len + rlen > PLAIN_UDP_SIZE)
        return -1; /* over 512 bytes: Python truncates */
    q[2] = 0x84 | rd;
    q[3] = cd;
    q[6] = (unsigned char)(count >> 8);
    q[7] = (unsigned char)count;
    memcpy(q + len, r, (size_t)rlen);
    b->iovs[i].iov_len = (size_t)(len + rlen);
    return 0;
}

/* Python answers slot i: 1 when it gave a reply (copied into the slot), 0 when not. */
static int python_answer(Batch *b, int i, Py_ssize_t len, PyObject *fallback, int *error) {
    PyObject *res = PyObject_CallFunction(
        fallback, "y#y#", (const char *)b->data[i], len, (const char *)b->names[i],
        (Py_ssize_t)name_len(b, i));
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
    double check_seconds;
    PyObject *zones, *fallback, *stale;
    Py_buffer counters;
    Py_ssize_t i_queries, i_noerror, i_nxdomain, i_dropped, i_errors;
    Py_ssize_t soa_pointer[3];
    (void)self;
    if (!PyArg_ParseTuple(args, "iiO!Ow*(nnnnn)idp(nnn)O", &fd, &stop_fd, &PyDict_Type, &zones,
                          &fallback, &counters, &i_queries, &i_noerror, &i_nxdomain, &i_dropped,
                          &i_errors, &check_batches, &check_seconds, &loopback_only,
                          &soa_pointer[0], &soa_pointer[1], &soa_pointer[2], &stale))
        return NULL;
    Py_ssize_t ncounters = counters.len / (Py_ssize_t)sizeof(unsigned long long);
    Py_ssize_t indices[5] = {i_queries, i_noerror, i_nxdomain, i_dropped, i_errors};
    int bad_index = 0;
    for (int k = 0; k < 5; k++)
        bad_index |= indices[k] < 0 || indices[k] >= ncounters;
    if (counters.readonly || bad_index || !PyCallable_Check(fallback) || check_batches < 1 ||
        !(check_seconds > 0) ||
        (stale != Py_None && !PyCallable_Check(stale))) {
        PyBuffer_Release(&counters);
        PyErr_SetString(PyExc_ValueError, "serve: bad counters, indices, fallback or stale");
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
    double next_check = now() + check_seconds;
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
            int rcode = -1;
            if (!loopback_only || from_loopback(b, i))
                rcode = fast_answer(b, i, len, zones, soa_pointer);
            if (rcode >= 0) {
                counter[i_queries]++;
                counter[rcode == 0 ? i_noerror : i_nxdomain]++;
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
        if (n > 0 && ++batches < check_batches && now() < next_check)
            continue;
        batches = 0;
        next_check = now() + check_seconds;
        char c;
        ssize_t r = read(stop_fd, &c, 1);
        if (r == 0) {
            result = Py_None; /* the parent closed the pipe: retire */
            Py_INCREF(result);
            break;
        }
        if (PyErr_CheckSignals() < 0)
            break;
        if (stale != Py_None) {
            PyObject *answer = PyObject_CallNoArgs(stale);
            int changed = answer == NULL ? -1 : PyObject_IsTrue(answer);
            Py_XDECREF(answer);
            if (changed < 0)
                break; /* the exception goes to the caller */
            if (changed) {
                result = Py_True; /* the tables changed: serve again with new zones */
                Py_INCREF(result);
                break;
            }
        }
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
    PyModuleDef_HEAD_INIT,
    .m_name = "enumer.dns._fastloop",
    .m_doc = "The gateway worker's UDP loop in C (optional; see _fastloop.c).",
    .m_size = -1,
    .m_methods = methods,
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

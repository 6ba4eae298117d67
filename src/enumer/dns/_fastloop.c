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
 * In a zone signed with DNSSEC keys, also a query whose only other record is
 * an OPT (version 0, no options) with the DO bit, for a dotted name with a
 * signed answer: that answer (NAPTRs and RRSIGs) and our OPT, when it fits the
 * client's size (at most 1232).  Every other datagram -- toll-free candidates,
 * other EDNS queries, signed denials, other types, anything odd -- is handed
 * to a Python function, which runs the full, general code.
 *
 * serve(fd, stop_fd, zones, fallback, counters, indices, check_batches,
 *       check_seconds, loopback_only, soa_pointers, stale) -> None | True
 *   fd        the UDP socket (blocking; SO_RCVTIMEO bounds each wait)
 *   stop_fd   non-blocking pipe; EOF (the parent closed it) ends the loop and
 *             serve returns None
 *   zones     dict: zone suffix in wire form (b"\x04enum\x00") ->
 *             (answers, max_digits: int, soa: bytes | None); answers is a
 *             dict[bytes, bytes] or the read-only mapping of a flat table
 *             file (enumer.dns.flat, read here by table_lookup); soa is the
 *             SOA RR of a complete zone (NXDOMAIN is answered here), None for
 *             a zone whose misses Python must answer.  Read once when serve
 *             starts: the caller passes new zones by calling serve again.
 *             A fourth item, when given and not None, is the map of DO=1
 *             entries of a signed zone (enumer.dns.signed.SignedZone.entries:
 *             by the answers' keys, a 2-byte length, the signed answer, the
 *             NSEC), a dict or a flat table's mapping like the answers: its
 *             hits are answered here too (signed_answer)
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
#include <stdint.h>
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

/*
 * The flat answer table (enumer/dns/flat.py writes it and documents the layout):
 * a 4 KiB header, an index of nslots u64 slots (open addressing, linear probing;
 * 0 empty, 1 deleted, else tag << 40 | entry offset), entries
 * "klen u8, key, vlen u32, value".  Only what a lookup needs is kept here.
 * Another map of the same format (same keys, other values) is read the same way.
 */
typedef struct {
    const unsigned char *base; /* the whole mapping */
    uint64_t size;             /* its length in bytes: every read is bounded by it */
    const uint64_t *slots;     /* the index (base + 4096, so 8-byte aligned) */
    uint64_t mask;             /* nslots - 1 */
} TableView;

#define TABLE_PAGE 4096
#define TABLE_OFFSET_BITS 40

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

/* The key's hash: zlib's CRC32 mixed by MurmurHash3's finalizer (flat.table_hash). */
static uint32_t table_hash(const unsigned char *key, size_t len) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t k = 0; k < len; k++)
        c = crc_table[(c ^ key[k]) & 0xFF] ^ (c >> 8);
    uint32_t h = c ^ 0xFFFFFFFFu;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    return h ^ (h >> 16);
}

static uint64_t read_u64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/*
 * Check a mapping's header enough to look keys up safely (magic, version, the
 * index inside the mapping); 0 on success.  Python checked the rest (checksums)
 * when it opened the file.  Little-endian hosts only (the file's byte order).
 */
static int table_view_open(const unsigned char *base, Py_ssize_t size, TableView *v) {
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    (void)base; (void)size; (void)v;
    return -1;
#else
    if (crc_table[1] == 0)
        crc_init();
    if (size < TABLE_PAGE || memcmp(base, "ENUMTBL\0", 8) != 0 || base[8] != 1 || base[9] ||
        base[10] || base[11])
        return -1;
    uint64_t nslots = read_u64(base + 48), index_off = read_u64(base + 56);
    if (nslots < 8 || (nslots & (nslots - 1)) || index_off != TABLE_PAGE ||
        nslots > ((uint64_t)size - TABLE_PAGE) / 8)
        return -1;
    v->base = base;
    v->size = (uint64_t)size;
    v->slots = (const uint64_t *)(base + index_off);
    v->mask = nslots - 1;
    return 0;
#endif
}

/*
 * Look key up: 1 and its value (pointing into the mapping) when found, 0 when not.
 * Lock-free against the one writer (flat.py): a slot is read with one atomic
 * 8-byte load, and the writer fills an entry before it stores the slot naming it.
 */
static int table_lookup(const TableView *v, const unsigned char *key, size_t klen,
                        const unsigned char **val, size_t *vlen) {
    uint32_t h = table_hash(key, klen);
    uint64_t tag = h >> 8, i = h & v->mask;
    for (uint64_t probes = 0; probes <= v->mask; probes++, i = (i + 1) & v->mask) {
        uint64_t s = __atomic_load_n(&v->slots[i], __ATOMIC_ACQUIRE);
        if (s == 0)
            return 0;
        if (s == 1 || (s >> TABLE_OFFSET_BITS) != tag)
            continue;
        uint64_t off = s & (((uint64_t)1 << TABLE_OFFSET_BITS) - 1);
        if (off < TABLE_PAGE || off + 1 + klen + 4 > v->size || v->base[off] != klen ||
            memcmp(v->base + off + 1, key, klen) != 0)
            continue;
        uint32_t n;
        memcpy(&n, v->base + off + 1 + klen, 4);
        uint64_t at = off + 1 + klen + 4;
        if (n > v->size - at)
            return 0; /* a damaged entry: not served */
        *val = v->base + at;
        *vlen = n;
        return 1;
    }
    return 0;
}

/* A map of bytes keys to bytes values: a dict, or a flat table file's mapping. */
typedef struct {
    PyObject *dict;  /* the dict (borrowed: the zones dict holds it), or NULL: table */
    TableView table;
    Py_buffer buf;   /* held while serving, when the map is a mapping */
    int has_buf;
} Map;

/* Read obj as a Map; 0 on success, -1 with an exception set. */
static int map_open(PyObject *obj, Map *m) {
    if (PyDict_Check(obj)) {
        m->dict = obj;
        return 0;
    }
    if (PyObject_GetBuffer(obj, &m->buf, PyBUF_SIMPLE) < 0)
        return -1;
    m->has_buf = 1;
    if (table_view_open(m->buf.buf, m->buf.len, &m->table) < 0) {
        PyErr_SetString(PyExc_ValueError, "serve: a zone's map is not a flat table");
        return -1;
    }
    return 0;
}

static void map_close(Map *m) {
    if (m->has_buf)
        PyBuffer_Release(&m->buf);
    m->has_buf = 0;
}

/* The value of key in a map: 1 and the bytes, 0 for none, -1 for Python. */
static int map_value(const Map *m, const unsigned char *key, Py_ssize_t klen,
                     const unsigned char **val, Py_ssize_t *vlen) {
    if (m->dict == NULL) {
        size_t n;
        if (!table_lookup(&m->table, key, (size_t)klen, val, &n))
            return 0;
        *vlen = (Py_ssize_t)n;
        return 1;
    }
    PyObject *k = PyBytes_FromStringAndSize((const char *)key, klen);
    if (k == NULL) {
        PyErr_Clear();
        return -1;
    }
    PyObject *found = PyDict_GetItemWithError(m->dict, k); /* borrowed */
    Py_DECREF(k);
    if (found == NULL) {
        if (!PyErr_Occurred())
            return 0;
        PyErr_Clear();
        return -1;
    }
    if (!PyBytes_Check(found))
        return -1;
    *val = (const unsigned char *)PyBytes_AS_STRING(found);
    *vlen = PyBytes_GET_SIZE(found);
    return 1;
}

/* One fast-path zone as serve() read it from the zones dict. */
typedef struct {
    const unsigned char *suffix; /* the zone in wire form (borrowed from the dict's key) */
    Py_ssize_t suffix_len;
    Map answers;
    long max_digits;
    const unsigned char *soa;    /* SOA RR of a complete zone, or NULL */
    Py_ssize_t soa_len;
    int is_signed;               /* signed_map holds the DO=1 entries of a signed zone */
    Map signed_map;
} Zone;

typedef struct {
    PyObject *owner; /* the zones dict, referenced while these point into it */
    Py_ssize_t n;
    Zone *zone;
} Zones;

static void zones_close(Zones *zs) {
    for (Py_ssize_t k = 0; k < zs->n; k++) {
        map_close(&zs->zone[k].answers);
        map_close(&zs->zone[k].signed_map);
    }
    PyMem_Free(zs->zone);
    Py_CLEAR(zs->owner);
    zs->zone = NULL;
    zs->n = 0;
}

/* Read the zones dict (see serve()); 0 on success, -1 with an exception set. */
static int zones_open(PyObject *zones, Zones *zs) {
    zs->owner = NULL;
    zs->n = 0;
    zs->zone = PyMem_Calloc((size_t)PyDict_Size(zones) + 1, sizeof(Zone));
    if (zs->zone == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_INCREF(zones);
    zs->owner = zones;
    Py_ssize_t pos = 0;
    PyObject *suffix, *entry;
    while (PyDict_Next(zones, &pos, &suffix, &entry)) {
        Zone *z = &zs->zone[zs->n];
        PyObject *answers, *soa, *signed_entries = Py_None;
        if (!PyBytes_Check(suffix) || !PyTuple_Check(entry) ||
            !PyArg_ParseTuple(entry, "OlO|O", &answers, &z->max_digits, &soa, &signed_entries) ||
            (soa != Py_None && !PyBytes_Check(soa))) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "serve: a zone is not (answers, int, soa)");
            zones_close(zs);
            return -1;
        }
        z->suffix = (const unsigned char *)PyBytes_AS_STRING(suffix);
        z->suffix_len = PyBytes_GET_SIZE(suffix);
        z->soa = soa == Py_None ? NULL : (const unsigned char *)PyBytes_AS_STRING(soa);
        z->soa_len = soa == Py_None ? 0 : PyBytes_GET_SIZE(soa);
        zs->n++;
        z->is_signed = signed_entries != Py_None;
        if (map_open(answers, &z->answers) < 0 ||
            (z->is_signed && map_open(signed_entries, &z->signed_map) < 0)) {
            zones_close(zs);
            return -1;
        }
    }
    return 0;
}

/* The zone whose wire suffix is q[start:end], or NULL. */
static const Zone *find_zone(const unsigned char *q, Py_ssize_t start, Py_ssize_t end,
                             const Zones *zs) {
    for (Py_ssize_t k = 0; k < zs->n; k++) {
        const Zone *z = &zs->zone[k];
        if (z->suffix_len == end - start && memcmp(z->suffix, q + start, (size_t)(end - start)) == 0)
            return z;
    }
    return NULL;
}

#define OPT_LEN 11
#define EDNS_UDP_SIZE 1232 /* what we advertise and the most we send (wire.EDNS_UDP_SIZE) */
static const unsigned char ONE_QUESTION_ONE_EXTRA[8] = {0, 1, 0, 0, 0, 0, 0, 1};

/*
 * A DO=1 NAPTR query for a dotted name of a signed zone whose number has a signed
 * answer: the reply written into slot i (what wire.respond's _signed_response
 * builds, byte for byte) and 0, or -1 when Python must answer it.  The query's
 * OPT must be its last 11 bytes: root owner, type 41, the client's size,
 * extended rcode and version 0, DO, no options.
 */
static int signed_answer(Batch *b, int i, Py_ssize_t len, const Zones *zones) {
    unsigned char *q = b->data[i];
    if (len <= 17 + OPT_LEN || (q[2] & 0xF8) || memcmp(q + 4, ONE_QUESTION_ONE_EXTRA, 8) != 0)
        return -1;
    const unsigned char *opt = q + len - OPT_LEN;
    if (opt[0] != 0 || opt[1] != 0 || opt[2] != 41 || opt[5] != 0 || opt[6] != 0 ||
        !(opt[7] & 0x80) || opt[9] != 0 || opt[10] != 0)
        return -1;
    Py_ssize_t qlen = len - OPT_LEN; /* header and question */
    if (memcmp(q + qlen - 4, NAPTR_IN, 4) != 0)
        return -1;
    unsigned char key[SLOT / 2];
    Py_ssize_t nkey = 0, pos = 12, end = qlen - 4;
    while (pos + 2 <= end && q[pos] == 1 && q[pos + 1] >= '0' && q[pos + 1] <= '9') {
        key[nkey++] = q[pos + 1];
        pos += 2;
    }
    if (nkey == 0)
        return -1;
    const Zone *zone = find_zone(q, pos, end, zones);
    if (zone == NULL || !zone->is_signed || nkey > zone->max_digits)
        return -1;
    const unsigned char *entry = NULL;
    Py_ssize_t elen = 0;
    if (map_value(&zone->signed_map, key, nkey, &entry, &elen) != 1 || elen < 2)
        return -1; /* no signed answer: the denial (or a toll-free answer) is Python's */
    Py_ssize_t alen = (entry[0] << 8) | entry[1];
    int count = alen + 2 <= elen ? count_rrs(entry + 2, alen) : -1;
    long size = (opt[3] << 8) | opt[4];
    long limit = size < PLAIN_UDP_SIZE ? PLAIN_UDP_SIZE : size;
    if (limit > EDNS_UDP_SIZE)
        limit = EDNS_UDP_SIZE;
    if (alen == 0 || count <= 0 || qlen + alen + OPT_LEN > limit)
        return -1; /* too large for the client: Python truncates */
    static const unsigned char OURS[OPT_LEN] = {
        0, 0, 41, EDNS_UDP_SIZE >> 8, EDNS_UDP_SIZE & 0xFF, 0, 0, 0x80, 0, 0, 0};
    unsigned char rd = q[2] & 0x01, cd = q[3] & 0x10;
    q[2] = 0x84 | rd;
    q[3] = cd;
    q[6] = (unsigned char)(count >> 8);
    q[7] = (unsigned char)count;
    memcpy(q + qlen, entry + 2, (size_t)alen);
    memcpy(q + qlen + alen, OURS, OPT_LEN);
    b->iovs[i].iov_len = (size_t)(qlen + alen + OPT_LEN);
    return 0;
}

/*
 * The fast path for the datagram in slot i: the rcode of the reply written
 * into the slot (0 NOERROR, 3 NXDOMAIN), or -1 when Python must answer it.
 * soa_pointer: where the zone's compression pointers sit in an SOA RR (see
 * serve()).  Never raises.
 */
static int fast_answer(Batch *b, int i, Py_ssize_t len, const Zones *zones,
                       const Py_ssize_t soa_pointer[3]) {
    unsigned char *q = b->data[i];
    if (len > 17 + OPT_LEN && q[10] == 0 && q[11] == 1)
        return signed_answer(b, i, len, zones); /* one extra record: a DO=1 query? */
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
    const Zone *zone = find_zone(q, pos, end, zones);
    if (zone == NULL || ndigits > zone->max_digits)
        return -1;
    const unsigned char *r = NULL;
    Py_ssize_t rlen = 0;
    int found = map_value(&zone->answers, digits, ndigits, &r, &rlen);
    if (found < 0)
        return -1;
    /* Header: id kept; QR AA, RD copied; RA off; CD copied; QD=1 and AR=0 in place. */
    unsigned char rd = q[2] & 0x01, cd = q[3] & 0x10;
    if (!found) { /* NXDOMAIN with the SOA, when the zone has no other answers */
        if (zone->soa == NULL)
            return -1; /* toll-free lists and the like: Python decides */
        Py_ssize_t slen = zone->soa_len;
        if (len + slen > PLAIN_UDP_SIZE || zone_at > 0x3FFF)
            return -1;
        for (int k = 0; k < 3; k++)
            if (soa_pointer[k] < 0 || soa_pointer[k] + 2 > slen)
                return -1;
        unsigned char *out = q + len;
        memcpy(out, zone->soa, (size_t)slen);
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
    Zones zs;
    if (zones_open(zones, &zs) < 0) {
        PyBuffer_Release(&counters);
        return NULL;
    }
    Batch *b = PyMem_Calloc(1, sizeof(Batch));
    if (b == NULL) {
        zones_close(&zs);
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
                rcode = fast_answer(b, i, len, &zs, soa_pointer);
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
    zones_close(&zs);
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

/*
 * Compiled core of the Hamming index: exact radius search over 256-bit codes.
 *
 * Why C: a radius-31 query over 13.4 M codes must answer in about a millisecond. The work is a
 * few thousand short sequential scans plus a few hundred random reads; in Python or NumPy the
 * per-step overhead alone is ten times the budget.
 *
 * The design (multi-index hashing, Norouzi et al. 2012, with two-level tables):
 *
 *   A code is 8 chunks of 32 bits (chunk c = bytes 4c..4c+3, read little-endian). If a code x
 *   lies within radius r of the query q and the per-chunk thresholds t_c satisfy
 *   sum(t_c + 1) = r + 1, some chunk has d_c(q, x) <= t_c (else the distance would be >= r + 1).
 *   So for each chunk we list every code whose chunk is within t_c bits of the query's chunk,
 *   check each such candidate with the full 256-bit distance, and report it only from the first
 *   chunk that qualifies it (a cheap test on the code itself), which makes results unique.
 *
 *   Per chunk, postings are sorted by the chunk value. A directory indexed by the high 16 bits
 *   (65,537 offsets) gives each bucket's range; the posting arrays hold the low 16 bits (uint16)
 *   and the row ("slot") of the code (uint32). A chunk within t bits of the query is found by
 *   visiting each bucket whose high half differs from the query's in k <= t bits and keeping the
 *   entries whose low half differs in at most t - k bits. For r = 31 (t = 3) that is 697 buckets
 *   per chunk; in 560 of them only the exact low half qualifies, which a look at 64 bytes around
 *   its interpolated position settles (buckets are sorted); the others are scanned whole, 16
 *   entries per AVX2 instruction.
 *
 *   A query runs in three stages: plan (read the directories: every bucket to visit), filter
 *   (in batches: first touch every line the batch needs with independent loads, so a dozen
 *   misses are in flight at once, then filter the now-cached lines), verify (full distances of
 *   the candidates, their codes fetched ahead). The cost is memory latency: ~14 k random cache
 *   lines per radius-31 query at 13.4 M codes, about half a millisecond on our VMs.
 *
 * Memory per code: 32 (code) + 8 (id) + 1 (alive flag) + 8 chunks x 6 bytes = 89 bytes, 2.8x
 * the raw code. Python owns every array (NumPy), so the index saves and loads as plain arrays.
 *
 * All functions release the GIL while they compute, so searches run in parallel from threads.
 * Tables are validated where they are used (bucket bounds and slots are clamped), so a crafted
 * file can at worst lose matches, never read out of bounds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LK_X86 1
#else
#define LK_X86 0
#endif

#define LK_CODE_BYTES 32
#define LK_NCHUNKS 8
#define LK_DIR_BITS 16
#define LK_NBUCKETS (1u << LK_DIR_BITS)
#define LK_DIR_LEN (LK_NBUCKETS + 1u)
/* The low-half array carries this many spare entries so a 16-lane vector load never leaves it. */
#define LK_LOW_PAD 16
/* Largest per-chunk threshold: a 32-bit chunk can differ in at most 32 bits. */
#define LK_MAX_THRESHOLD 32
/* Buckets are scanned in pieces of this many entries so the hit buffer has a fixed size. */
#define LK_PIECE 4096
/* Codes per block in the linear scan: 64 KiB stays in L2 while every query in a batch passes. */
#define LK_LINEAR_BLOCK 2048

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                               */

static inline uint32_t load_le32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline uint64_t load_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

/* All 16-bit masks ordered by popcount: the first g_upto[k] masks are those with <= k bits set. */
static uint16_t g_masks[LK_NBUCKETS];
static uint32_t g_upto[17];

static void init_masks(void) {
    uint32_t count[17] = {0};
    for (uint32_t m = 0; m < LK_NBUCKETS; m++) count[__builtin_popcount(m)]++;
    uint32_t start[17];
    uint32_t acc = 0;
    for (int k = 0; k <= 16; k++) {
        start[k] = acc;
        acc += count[k];
        g_upto[k] = acc;
    }
    for (uint32_t m = 0; m < LK_NBUCKETS; m++) g_masks[start[__builtin_popcount(m)]++] = (uint16_t)m;
}

/* ------------------------------------------------------------------------------------------ */
/* Bucket scans: positions p in [s, e) with popcount(lows[p] ^ ql) <= budget, written to out.  */
/* `lows` must have LK_LOW_PAD readable entries past e (the vector versions read them).        */

typedef size_t (*scan_fn)(const uint16_t *lows, size_t s, size_t e, uint16_t ql, int budget,
                          uint32_t *out);

static size_t scan_scalar(const uint16_t *lows, size_t s, size_t e, uint16_t ql, int budget,
                          uint32_t *out) {
    size_t k = 0;
    if (budget >= 16) {
        for (size_t p = s; p < e; p++) out[k++] = (uint32_t)p;
        return k;
    }
    if (budget == 0) {
        for (size_t p = s; p < e; p++)
            if (lows[p] == ql) out[k++] = (uint32_t)p;
        return k;
    }
    for (size_t p = s; p < e; p++)
        if (__builtin_popcount((unsigned)(lows[p] ^ ql)) <= budget) out[k++] = (uint32_t)p;
    return k;
}

#if LK_X86
/* movemask of 16-bit lane compares gives 2 bits per lane; keep the even ones and walk them. */
#define LK_EMIT_LANES(maskexpr)                                                  \
    do {                                                                         \
        uint32_t m_ = (uint32_t)(maskexpr) & 0x55555555u;                        \
        while (m_) {                                                             \
            size_t idx_ = p + ((unsigned)__builtin_ctz(m_) >> 1);                \
            if (idx_ >= e) break;                                                \
            out[k++] = (uint32_t)idx_;                                           \
            m_ &= m_ - 1;                                                        \
        }                                                                        \
    } while (0)

__attribute__((target("avx2"))) static size_t scan_avx2(const uint16_t *lows, size_t s,
                                                        size_t e, uint16_t ql, int budget,
                                                        uint32_t *out) {
    size_t k = 0;
    if (budget >= 16) return scan_scalar(lows, s, e, ql, budget, out);
    const __m256i q = _mm256_set1_epi16((short)ql);
    if (budget == 0) {
        for (size_t p = s; p < e; p += 16) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(lows + p));
            LK_EMIT_LANES(_mm256_movemask_epi8(_mm256_cmpeq_epi16(v, q)));
        }
        return k;
    }
    const __m256i zero = _mm256_setzero_si256();
    if (budget == 1) {
        /* x has at most one bit set  <=>  x & (x - 1) == 0 */
        const __m256i one = _mm256_set1_epi16(1);
        for (size_t p = s; p < e; p += 16) {
            __m256i x = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(lows + p)), q);
            __m256i y = _mm256_and_si256(x, _mm256_sub_epi16(x, one));
            LK_EMIT_LANES(_mm256_movemask_epi8(_mm256_cmpeq_epi16(y, zero)));
        }
        return k;
    }
    /* General budget: per-byte popcount by nibble lookup, then add the two bytes of each lane. */
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                         2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i nib = _mm256_set1_epi8(0x0f);
    const __m256i lane_lo = _mm256_set1_epi16(0x00ff);
    const __m256i limit = _mm256_set1_epi16((short)(budget + 1));
    for (size_t p = s; p < e; p += 16) {
        __m256i x = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(lows + p)), q);
        __m256i lo = _mm256_and_si256(x, nib);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), nib);
        __m256i pc8 = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
        __m256i pc16 =
            _mm256_add_epi16(_mm256_and_si256(pc8, lane_lo), _mm256_srli_epi16(pc8, 8));
        LK_EMIT_LANES(_mm256_movemask_epi8(_mm256_cmpgt_epi16(limit, pc16)));
    }
    return k;
}
#endif

static scan_fn g_scan = scan_scalar;
static const char *g_kernel = "scalar";

/* ------------------------------------------------------------------------------------------ */
/* Results                                                                                     */

typedef struct {
    int64_t id;
    int64_t dist;
} Hit;

typedef struct {
    Hit *v;
    size_t len, cap;
} HitVec;

static int hits_push(HitVec *h, int64_t id, int dist) {
    if (h->len == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 16;
        Hit *v = (Hit *)realloc(h->v, cap * sizeof(Hit));
        if (!v) return -1;
        h->v = v;
        h->cap = cap;
    }
    h->v[h->len].id = id;
    h->v[h->len].dist = dist;
    h->len++;
    return 0;
}

static int hit_cmp(const void *a, const void *b) {
    const Hit *x = (const Hit *)a, *y = (const Hit *)b;
    if (x->dist != y->dist) return x->dist < y->dist ? -1 : 1;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Segments: a block of codes, optionally with multi-index tables.                             */

typedef struct {
    const uint8_t *codes;  /* n x 32 */
    const int64_t *ids;    /* n */
    const uint8_t *alive;  /* n; 0 = removed */
    size_t n;
    const uint32_t *dirs;  /* LK_NCHUNKS x LK_DIR_LEN, or NULL */
    const uint16_t *lows;  /* LK_NCHUNKS x n + LK_LOW_PAD */
    const uint32_t *slots; /* LK_NCHUNKS x n */
} Segment;

/* Full distance of a candidate, or -1 when it is out of radius or belongs to an earlier chunk. */
static inline int verify(const uint8_t *code, const uint8_t *q, int chunk, const int *t,
                         int radius) {
    int d[LK_NCHUNKS];
    int total = 0;
    for (int j = 0; j < LK_NCHUNKS; j++) {
        d[j] = __builtin_popcount(load_le32(code + 4 * j) ^ load_le32(q + 4 * j));
        total += d[j];
    }
    if (total > radius) return -1;
    for (int j = 0; j < chunk; j++)
        if (d[j] <= t[j]) return -1;
    return total;
}

/* First position in [lo, hi) of sorted `a` holding a value >= x (hi if none). */
static inline size_t lower_bound16(const uint16_t *a, size_t lo, size_t hi, uint16_t x) {
    while (lo < hi) {
        size_t mid = lo + ((hi - lo) >> 1);
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Where x should sit in a sorted bucket [s, e), assuming its values are spread evenly. */
static inline size_t interpolate(size_t s, size_t e, uint16_t x) {
    return s + (((e - s) * (size_t)x) >> 16);
}

/* First position of a value >= x in the sorted bucket [s, e): galloping outwards from the
 * interpolated guess, so a skewed bucket costs a logarithmic number of steps, not a scan. */
static size_t find_first(const uint16_t *a, size_t s, size_t e, uint16_t x) {
    size_t g = interpolate(s, e, x);
    size_t lo, hi, step = 8;
    if (a[g] < x) {
        lo = g + 1; /* invariant: a[lo - 1] < x */
        for (;;) {
            hi = lo + step;
            if (hi >= e) {
                hi = e;
                break;
            }
            if (a[hi] >= x) break;
            lo = hi + 1;
            step <<= 1;
        }
    } else {
        hi = g; /* invariant: a[hi] >= x */
        for (;;) {
            if (hi - s <= step) {
                lo = s;
                break;
            }
            lo = hi - step;
            if (a[lo] < x) {
                lo++;
                break;
            }
            hi = lo;
            step <<= 1;
        }
    }
    return lower_bound16(a, lo, hi, x);
}

/* Exact lookups look at a window of this many entries (64 bytes) around the guess. */
#define LK_WINDOW 32
/* Visits whose lines are touched together before they are filtered. */
#define LK_BATCH 64
/* At most this many lines of a long bucket are touched ahead; the hardware streams the rest. */
#define LK_AHEAD_LINES 8
/* Candidates whose codes are requested from memory ahead of the one being verified. */
#define LK_AHEAD 12

/* The window [w0, w0 + LK_WINDOW) around where x should sit in bucket [s, e) (len > window). */
static inline size_t window_start(size_t s, size_t e, uint16_t x) {
    size_t g = interpolate(s, e, x);
    size_t w0 = g >= s + LK_WINDOW / 2 ? g - LK_WINDOW / 2 : s;
    return w0 + LK_WINDOW <= e ? w0 : e - LK_WINDOW;
}

/* One bucket a query visits: its posting range, its chunk, the query's low half for that chunk
 * and how many low bits may still differ (0: only exact low halves qualify). */
typedef struct {
    uint32_t start, end;
    uint16_t ql;
    uint8_t chunk;
    uint8_t budget;
} Visit;

/* A posting that passed the bucket filter, to be checked against the full code. */
typedef struct {
    uint32_t slot;
    uint32_t chunk;
} Candidate;

typedef struct {
    Visit *visits;
    uint32_t *hits;          /* LK_PIECE + LK_LOW_PAD */
    Candidate *cand;
    size_t ncand, capcand;
    uint32_t sink; /* keeps the touching loads of filter_visits from being optimised away */
} Scratch;

/* Sized to the thresholds (a radius-31 query visits 8 x 697 buckets), so the scratch of a
 * typical query stays small enough for the heap instead of fresh pages from the kernel. */
static int scratch_init(Scratch *s, const int *t) {
    size_t most = 1;
    for (int c = 0; c < LK_NCHUNKS; c++)
        if (t[c] >= 0) most += g_upto[t[c] < 16 ? t[c] : 16];
    s->visits = (Visit *)malloc(most * sizeof(Visit));
    s->hits = (uint32_t *)malloc((LK_PIECE + LK_LOW_PAD) * sizeof(uint32_t));
    s->capcand = 1024;
    s->ncand = 0;
    s->cand = (Candidate *)malloc(s->capcand * sizeof(Candidate));
    return (s->visits && s->hits && s->cand) ? 0 : -1;
}

static void scratch_free(Scratch *s) {
    free(s->visits);
    free(s->hits);
    free(s->cand);
}

static inline int add_candidate(Scratch *sc, uint32_t slot, int chunk) {
    if (sc->ncand == sc->capcand) {
        size_t cap = 2 * sc->capcand;
        Candidate *c = (Candidate *)realloc(sc->cand, cap * sizeof(Candidate));
        if (!c) return -1;
        sc->cand = c;
        sc->capcand = cap;
    }
    sc->cand[sc->ncand].slot = slot;
    sc->cand[sc->ncand].chunk = (uint32_t)chunk;
    sc->ncand++;
    return 0;
}

/* Stage 1: every non-empty bucket the query visits, over all chunks (the directories are small
 * and mostly cached; these reads are independent, so the CPU overlaps them). */
static size_t plan_query(const Segment *sg, const uint8_t *q, const int *t, Visit *visits) {
    const size_t n = sg->n;
    size_t k = 0;
    for (int c = 0; c < LK_NCHUNKS; c++) {
        if (t[c] < 0) continue;
        const uint32_t qw = load_le32(q + 4 * c);
        const uint32_t qh = qw >> 16;
        const uint16_t ql = (uint16_t)(qw & 0xffffu);
        const uint32_t *dir = sg->dirs + (size_t)c * LK_DIR_LEN;
        const uint32_t nm = g_upto[t[c] < 16 ? t[c] : 16];
        for (uint32_t j = 0; j < nm; j++) {
            uint32_t b = qh ^ g_masks[j];
            uint32_t s = dir[b], e = dir[b + 1];
            if (e > n) e = (uint32_t)n;
            if (s >= e) continue;
            visits[k].start = s;
            visits[k].end = e;
            visits[k].ql = ql;
            visits[k].chunk = (uint8_t)c;
            visits[k].budget = (uint8_t)(t[c] - __builtin_popcount(g_masks[j]));
            k++;
        }
    }
    return k;
}

/* Stage 2: filter each bucket by its low halves. Visits go in batches: first a tight loop of
 * independent loads that touches every line the batch will read (the CPU keeps a dozen or more
 * misses in flight; software prefetches proved no better on our VMs, where each miss also costs
 * a page walk), then the filtering itself, which then hits the cache. Exact lookups (most
 * visits) read only a 64-byte window around the interpolated position; the window settles the
 * question unless the bucket is skewed. */
static int filter_visits(const Segment *sg, const Visit *visits, size_t k, Scratch *sc) {
    const size_t n = sg->n;
    uint32_t touched = 0;
    for (size_t b0 = 0; b0 < k; b0 += LK_BATCH) {
        const size_t b1 = k - b0 > LK_BATCH ? b0 + LK_BATCH : k;
        for (size_t i = b0; i < b1; i++) {
            const Visit *v = &visits[i];
            const uint16_t *lows = sg->lows + (size_t)v->chunk * n;
            size_t s = v->start, e = v->end;
            if (v->budget == 0 && e - s > LK_WINDOW) {
                size_t w0 = window_start(s, e, v->ql);
                touched += lows[w0] + lows[w0 + LK_WINDOW - 1];
                continue;
            }
            if (e - s > (size_t)LK_AHEAD_LINES * 32) e = s + (size_t)LK_AHEAD_LINES * 32;
            for (size_t p = s; p < e; p += 32) touched += lows[p];
            touched += lows[e - 1];
        }
        for (size_t i = b0; i < b1; i++) {
            const Visit *v = &visits[i];
            const int c = v->chunk;
            const uint16_t *lows = sg->lows + (size_t)c * n;
            const uint32_t *slots = sg->slots + (size_t)c * n;
            const uint16_t ql = v->ql;
            size_t s = v->start, e = v->end;
            if (v->budget == 0 && e - s > LK_WINDOW) {
                size_t w0 = window_start(s, e, ql), w1 = w0 + LK_WINDOW;
                if ((w0 == s || lows[w0] < ql) && (w1 == e || lows[w1 - 1] > ql)) {
                    s = w0; /* every entry equal to ql lies in the window */
                    e = w1;
                } else {
                    for (size_t p = find_first(lows, s, e, ql); p < e && lows[p] == ql; p++)
                        if (add_candidate(sc, slots[p], c) < 0) return -1;
                    continue;
                }
            }
            while (s < e) {
                size_t pe = e - s > LK_PIECE ? s + LK_PIECE : e;
                size_t nh = g_scan(lows, s, pe, ql, v->budget, sc->hits);
                for (size_t h = 0; h < nh; h++)
                    if (add_candidate(sc, slots[sc->hits[h]], c) < 0) return -1;
                s = pe;
            }
        }
    }
    sc->sink = touched;
    return 0;
}

/* Stage 3: check each candidate against its full code; report it if it is live, within the
 * radius and not also found through an earlier chunk. */
static int verify_candidates(const Segment *sg, const uint8_t *q, const int *t, int radius,
                             const Scratch *sc, HitVec *out) {
    const Candidate *cand = sc->cand;
    const size_t nc = sc->ncand;
    for (size_t i = 0; i < nc && i < LK_AHEAD; i++)
        if (cand[i].slot < sg->n) prefetch(sg->codes + (size_t)cand[i].slot * LK_CODE_BYTES);
    for (size_t i = 0; i < nc; i++) {
        if (i + LK_AHEAD < nc && cand[i + LK_AHEAD].slot < sg->n)
            prefetch(sg->codes + (size_t)cand[i + LK_AHEAD].slot * LK_CODE_BYTES);
        const uint32_t slot = cand[i].slot;
        if (slot >= sg->n) continue;
        int d = verify(sg->codes + (size_t)slot * LK_CODE_BYTES, q, (int)cand[i].chunk, t, radius);
        if (d < 0 || !sg->alive[slot]) continue;
        if (hits_push(out, sg->ids[slot], d) < 0) return -1;
    }
    return 0;
}

/* One query against a segment's tables. t[c] < 0 skips chunk c. Returns -1 on out-of-memory. */
static int table_query(const Segment *sg, const uint8_t *q, const int *t, int radius, Scratch *sc,
                       HitVec *out) {
    size_t k = plan_query(sg, q, t, sc->visits);
    sc->ncand = 0;
    if (filter_visits(sg, sc->visits, k, sc) < 0) return -1;
    return verify_candidates(sg, q, t, radius, sc, out);
}

/* Every query against every code of a segment, blocked so a block of codes serves all queries. */
static int linear_scan(const Segment *sg, const uint8_t *qs, size_t nq, int radius, HitVec *outs) {
    for (size_t b0 = 0; b0 < sg->n; b0 += LK_LINEAR_BLOCK) {
        size_t b1 = sg->n - b0 > LK_LINEAR_BLOCK ? b0 + LK_LINEAR_BLOCK : sg->n;
        for (size_t qi = 0; qi < nq; qi++) {
            const uint8_t *q = qs + qi * LK_CODE_BYTES;
            const uint64_t q0 = load_u64(q), q1 = load_u64(q + 8), q2 = load_u64(q + 16),
                           q3 = load_u64(q + 24);
            for (size_t i = b0; i < b1; i++) {
                const uint8_t *x = sg->codes + i * LK_CODE_BYTES;
                int d = __builtin_popcountll(load_u64(x) ^ q0) +
                        __builtin_popcountll(load_u64(x + 8) ^ q1) +
                        __builtin_popcountll(load_u64(x + 16) ^ q2) +
                        __builtin_popcountll(load_u64(x + 24) ^ q3);
                if (d <= radius && sg->alive[i]) {
                    if (hits_push(&outs[qi], sg->ids[i], d) < 0) return -1;
                }
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Buffer parsing                                                                              */

typedef struct {
    Py_buffer views[6];
    int nviews;
} Views;

static void views_release(Views *v) {
    for (int i = 0; i < v->nviews; i++) PyBuffer_Release(&v->views[i]);
    v->nviews = 0;
}

/* Borrow a C-contiguous buffer of at least `need` bytes; NULL (with an exception) otherwise. */
static const void *take(Views *v, PyObject *obj, size_t need, int writable, const char *what) {
    Py_buffer *b = &v->views[v->nviews];
    if (PyObject_GetBuffer(obj, b, writable ? (PyBUF_SIMPLE | PyBUF_WRITABLE) : PyBUF_SIMPLE) < 0)
        return NULL;
    v->nviews++;
    if ((size_t)b->len < need) {
        PyErr_Format(PyExc_ValueError, "%s: buffer of %zd bytes, need at least %zu", what, b->len,
                     need);
        return NULL;
    }
    return b->buf;
}

/* seg = (codes, ids, alive, n, dirs | None, lows | None, slots | None) */
static int parse_segment(PyObject *tup, Segment *sg, Views *v) {
    if (!PyTuple_Check(tup) || PyTuple_GET_SIZE(tup) != 7) {
        PyErr_SetString(PyExc_TypeError, "segment must be a 7-tuple");
        return -1;
    }
    Py_ssize_t n = PyLong_AsSsize_t(PyTuple_GET_ITEM(tup, 3));
    if (n < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "segment size must be >= 0");
        return -1;
    }
    if ((uint64_t)n > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a segment holds at most 2**32 - 1 codes");
        return -1;
    }
    memset(sg, 0, sizeof *sg);
    sg->n = (size_t)n;
    if (!(sg->codes = take(v, PyTuple_GET_ITEM(tup, 0), sg->n * LK_CODE_BYTES, 0, "codes")))
        return -1;
    if (!(sg->ids = take(v, PyTuple_GET_ITEM(tup, 1), sg->n * 8, 0, "ids"))) return -1;
    if (!(sg->alive = take(v, PyTuple_GET_ITEM(tup, 2), sg->n, 0, "alive"))) return -1;
    PyObject *dirs = PyTuple_GET_ITEM(tup, 4);
    if (dirs != Py_None) {
        if (!(sg->dirs = take(v, dirs, (size_t)LK_NCHUNKS * LK_DIR_LEN * 4, 0, "dirs"))) return -1;
        if (!(sg->lows = take(v, PyTuple_GET_ITEM(tup, 5),
                              ((size_t)LK_NCHUNKS * sg->n + LK_LOW_PAD) * 2, 0, "lows")))
            return -1;
        if (!(sg->slots = take(v, PyTuple_GET_ITEM(tup, 6), (size_t)LK_NCHUNKS * sg->n * 4, 0,
                               "slots")))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* search(queries, nq, radius, thresholds, segments) -> list[list[tuple[int, int]]]            */

static PyObject *build_result(HitVec *outs, size_t nq) {
    PyObject *result = PyList_New((Py_ssize_t)nq);
    if (!result) return NULL;
    for (size_t qi = 0; qi < nq; qi++) {
        PyObject *row = PyList_New((Py_ssize_t)outs[qi].len);
        if (!row) goto fail;
        PyList_SET_ITEM(result, (Py_ssize_t)qi, row);
        for (size_t i = 0; i < outs[qi].len; i++) {
            PyObject *pair = PyTuple_New(2);
            if (!pair) goto fail;
            PyList_SET_ITEM(row, (Py_ssize_t)i, pair);
            PyObject *id = PyLong_FromLongLong((long long)outs[qi].v[i].id);
            if (!id) goto fail;
            PyTuple_SET_ITEM(pair, 0, id);
            PyObject *dist = PyLong_FromSsize_t((Py_ssize_t)outs[qi].v[i].dist);
            if (!dist) goto fail;
            PyTuple_SET_ITEM(pair, 1, dist);
        }
    }
    return result;
fail:
    Py_DECREF(result);
    return NULL;
}

static PyObject *py_search(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *qobj, *tobj, *segs;
    Py_ssize_t nq;
    int radius;
    if (!PyArg_ParseTuple(args, "OniOO!", &qobj, &nq, &radius, &tobj, &PyTuple_Type, &segs))
        return NULL;
    if (nq < 0 || radius < 0 || radius > 8 * LK_CODE_BYTES) {
        PyErr_SetString(PyExc_ValueError, "need nq >= 0 and 0 <= radius <= 256");
        return NULL;
    }
    int t[LK_NCHUNKS];
    int use_tables = 0;
    if (tobj != Py_None) {
        PyObject *fast = PySequence_Fast(tobj, "thresholds must be a sequence");
        if (!fast) return NULL;
        if (PySequence_Fast_GET_SIZE(fast) != LK_NCHUNKS) {
            Py_DECREF(fast);
            PyErr_SetString(PyExc_ValueError, "need one threshold per chunk");
            return NULL;
        }
        int sum = 0;
        for (int c = 0; c < LK_NCHUNKS; c++) {
            long x = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, c));
            if (x == -1 && PyErr_Occurred()) {
                Py_DECREF(fast);
                return NULL;
            }
            if (x < -1 || x > LK_MAX_THRESHOLD) {
                Py_DECREF(fast);
                PyErr_SetString(PyExc_ValueError, "thresholds must lie in -1..32");
                return NULL;
            }
            t[c] = (int)x;
            sum += (int)x + 1;
        }
        Py_DECREF(fast);
        /* The pigeonhole argument needs sum(t + 1) >= radius + 1; anything less misses matches. */
        if (sum < radius + 1) {
            PyErr_SetString(PyExc_ValueError, "thresholds do not cover the radius");
            return NULL;
        }
        use_tables = 1;
    }

    Py_ssize_t nseg = PyTuple_GET_SIZE(segs);
    Segment *sg = (Segment *)calloc((size_t)nseg + 1, sizeof(Segment));
    Views *views = (Views *)calloc((size_t)nseg + 1, sizeof(Views));
    HitVec *outs = (HitVec *)calloc((size_t)nq + 1, sizeof(HitVec));
    Py_buffer qbuf = {0};
    int have_q = 0;
    PyObject *result = NULL;
    if (!sg || !views || !outs) {
        PyErr_NoMemory();
        goto done;
    }
    if (PyObject_GetBuffer(qobj, &qbuf, PyBUF_SIMPLE) < 0) goto done;
    have_q = 1;
    if ((size_t)qbuf.len < (size_t)nq * LK_CODE_BYTES) {
        PyErr_SetString(PyExc_ValueError, "queries buffer too small");
        goto done;
    }
    for (Py_ssize_t i = 0; i < nseg; i++)
        if (parse_segment(PyTuple_GET_ITEM(segs, i), &sg[i], &views[i]) < 0) goto done;

    int oom = 0;
    Py_BEGIN_ALLOW_THREADS
    Scratch sc = {0};
    if (use_tables && scratch_init(&sc, t) < 0) oom = 1;
    const uint8_t *qs = (const uint8_t *)qbuf.buf;
    for (Py_ssize_t i = 0; i < nseg && !oom; i++) {
        if (use_tables && sg[i].dirs) {
            for (Py_ssize_t qi = 0; qi < nq && !oom; qi++)
                if (table_query(&sg[i], qs + qi * LK_CODE_BYTES, t, radius, &sc, &outs[qi]) < 0)
                    oom = 1;
        } else if (linear_scan(&sg[i], qs, (size_t)nq, radius, outs) < 0) {
            oom = 1;
        }
    }
    if (!oom)
        for (Py_ssize_t qi = 0; qi < nq; qi++)
            if (outs[qi].len > 1) qsort(outs[qi].v, outs[qi].len, sizeof(Hit), hit_cmp);
    scratch_free(&sc);
    Py_END_ALLOW_THREADS
    if (oom) {
        PyErr_NoMemory();
        goto done;
    }
    result = build_result(outs, (size_t)nq);

done:
    if (have_q) PyBuffer_Release(&qbuf);
    if (views)
        for (Py_ssize_t i = 0; i <= nseg; i++) views_release(&views[i]);
    if (outs)
        for (Py_ssize_t qi = 0; qi < nq; qi++) free(outs[qi].v);
    free(outs);
    free(views);
    free(sg);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* Table build                                                                                 */
/*                                                                                             */
/* Sorts the rows by the 32-bit value of one chunk, stably, in O(n) without comparisons: one   */
/* counting-sort pass on the top byte splits the rows into 256 partitions (a 256-way scatter   */
/* stays friendly to caches and TLBs, unlike a 65,536-way one), then each partition (~n/256    */
/* rows, cache-sized) is finished by two 12-bit LSD passes. The directory counts the high 16   */
/* bits. Scratch: 8n bytes, plus 8 bytes per row of the largest partition.                    */

/* Stable sort of m items (chunk value << 32 | row) by value bits 0..23, in two 12-bit LSD
 * passes whose 4,096 counters stay in L1; the items end where they started, `tmp` is scratch. */
static void lsd_24(uint64_t *items, uint64_t *tmp, size_t m) {
    uint32_t lo[4096], hi[4096];
    memset(lo, 0, sizeof lo);
    memset(hi, 0, sizeof hi);
    for (size_t i = 0; i < m; i++) {
        uint32_t k = (uint32_t)(items[i] >> 32);
        lo[k & 0xfffu]++;
        hi[(k >> 12) & 0xfffu]++;
    }
    uint32_t acc_lo = 0, acc_hi = 0;
    for (int b = 0; b < 4096; b++) {
        uint32_t x = lo[b], y = hi[b];
        lo[b] = acc_lo;
        hi[b] = acc_hi;
        acc_lo += x;
        acc_hi += y;
    }
    for (size_t i = 0; i < m; i++) tmp[lo[(items[i] >> 32) & 0xfffu]++] = items[i];
    for (size_t i = 0; i < m; i++) items[hi[(tmp[i] >> 44) & 0xfffu]++] = tmp[i];
}

typedef struct {
    uint64_t *items; /* n */
    uint64_t *tmp;   /* largest partition */
    size_t cap_tmp;
} BuildScratch;

static void build_scratch_free(BuildScratch *b) {
    free(b->items);
    free(b->tmp);
}

/* part: the top-byte histogram of this chunk, shifted by one (part[b + 1] = count of b). */
static int build_one(const uint8_t *codes, size_t n, int chunk, size_t *part, uint32_t *dir,
                     uint16_t *low, uint32_t *slot, BuildScratch *bs) {
    uint64_t *items = bs->items;
    const uint8_t *base = codes + 4 * chunk;
    size_t largest = 0;
    for (int b = 0; b < 256; b++) {
        if (part[b + 1] > largest) largest = part[b + 1];
        part[b + 1] += part[b];
    }
    size_t next[256];
    memcpy(next, part, sizeof next);
    for (size_t i = 0; i < n; i++) {
        uint64_t w = load_le32(base + i * LK_CODE_BYTES);
        items[next[w >> 24]++] = (w << 32) | (uint64_t)i;
    }
    if (largest > bs->cap_tmp) {
        free(bs->tmp);
        bs->tmp = (uint64_t *)malloc(largest * sizeof(uint64_t));
        bs->cap_tmp = bs->tmp ? largest : 0;
        if (!bs->tmp) return -1;
    }
    memset(dir, 0, LK_DIR_LEN * sizeof(uint32_t));
    for (int b = 0; b < 256; b++) {
        size_t a = part[b], z = part[b + 1];
        if (z - a > 1) lsd_24(items + a, bs->tmp, z - a);
        for (size_t i = a; i < z; i++) {
            uint32_t k = (uint32_t)(items[i] >> 32);
            low[i] = (uint16_t)(k & 0xffffu);
            slot[i] = (uint32_t)items[i];
            dir[k >> 16]++;
        }
    }
    uint32_t acc = 0;
    for (uint32_t b = 0; b <= LK_NBUCKETS; b++) {
        uint32_t x = dir[b];
        dir[b] = acc;
        acc += x;
    }
    return 0;
}

/* build_tables(codes, n, dirs, lows, slots, chunks): build the listed chunks, reusing one set of
 * scratch buffers (fresh memory is slow to fault in on some VMs: ~7 us per 4 KiB page here).
 * dirs: chunks x 65537 uint32; lows: chunks x n (+ pad) uint16; slots: chunks x n uint32. */
static PyObject *py_build_tables(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cobj, *dobj, *lobj, *sobj, *chunks_obj;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "OnOOOO", &cobj, &n, &dobj, &lobj, &sobj, &chunks_obj))
        return NULL;
    if (n < 0 || (uint64_t)n > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= n < 2**32");
        return NULL;
    }
    int chunks[LK_NCHUNKS];
    int nchunks = 0;
    PyObject *fast = PySequence_Fast(chunks_obj, "chunks must be a sequence");
    if (!fast) return NULL;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
    for (Py_ssize_t i = 0; i < len; i++) {
        long c = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if (c == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return NULL;
        }
        if (c < 0 || c >= LK_NCHUNKS || nchunks == LK_NCHUNKS) {
            Py_DECREF(fast);
            PyErr_SetString(PyExc_ValueError, "chunks must be distinct values in 0..7");
            return NULL;
        }
        chunks[nchunks++] = (int)c;
    }
    Py_DECREF(fast);

    const size_t un = (size_t)n;
    Views v = {0};
    PyObject *result = NULL;
    const uint8_t *codes = take(&v, cobj, un * LK_CODE_BYTES, 0, "codes");
    uint32_t *dirs =
        codes ? (uint32_t *)take(&v, dobj, (size_t)LK_NCHUNKS * LK_DIR_LEN * 4, 1, "dirs") : NULL;
    uint16_t *lows = dirs ? (uint16_t *)take(&v, lobj, (size_t)LK_NCHUNKS * un * 2, 1, "lows")
                          : NULL;
    uint32_t *slots =
        lows ? (uint32_t *)take(&v, sobj, (size_t)LK_NCHUNKS * un * 4, 1, "slots") : NULL;
    if (slots) {
        int rc = 0;
        Py_BEGIN_ALLOW_THREADS
        BuildScratch bs = {0};
        bs.items = (uint64_t *)malloc((un ? un : 1) * sizeof(uint64_t));
        if (!bs.items) rc = -1;
        /* one pass over the codes counts the top bytes of every chunk this call builds */
        size_t(*part)[257] = (size_t(*)[257])calloc(LK_NCHUNKS, sizeof *part);
        if (!part) rc = -1;
        for (size_t r = 0; r < un && rc == 0; r++)
            for (int i = 0; i < nchunks; i++)
                part[i][codes[r * LK_CODE_BYTES + 4 * chunks[i] + 3] + 1]++;
        for (int i = 0; i < nchunks && rc == 0; i++) {
            int c = chunks[i];
            rc = build_one(codes, un, c, part[i], dirs + (size_t)c * LK_DIR_LEN,
                           lows + (size_t)c * un, slots + (size_t)c * un, &bs);
        }
        free(part);
        build_scratch_free(&bs);
        Py_END_ALLOW_THREADS
        if (rc < 0)
            PyErr_NoMemory();
        else
            result = Py_NewRef(Py_None);
    }
    views_release(&v);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* xxh64(buffer, seed=0) -> int: XXH64, a fast non-cryptographic checksum for index files.     */

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t load_le64(const uint8_t *p) {
    uint64_t v = load_u64(p);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}
static inline uint64_t xx_round(uint64_t acc, uint64_t in) {
    return rotl64(acc + in * P2, 31) * P1;
}
static inline uint64_t xx_merge(uint64_t acc, uint64_t v) {
    return (acc ^ xx_round(0, v)) * P1 + P4;
}

static uint64_t xxh64(const uint8_t *p, size_t len, uint64_t seed) {
    const uint8_t *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        const uint8_t *limit = end - 32;
        do {
            v1 = xx_round(v1, load_le64(p));
            v2 = xx_round(v2, load_le64(p + 8));
            v3 = xx_round(v3, load_le64(p + 16));
            v4 = xx_round(v4, load_le64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = xx_merge(h, v1);
        h = xx_merge(h, v2);
        h = xx_merge(h, v3);
        h = xx_merge(h, v4);
    } else {
        h = seed + P5;
    }
    h += (uint64_t)len;
    while (p + 8 <= end) {
        h ^= xx_round(0, load_le64(p));
        h = rotl64(h, 27) * P1 + P4;
        p += 8;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)load_le32(p) * P1;
        h = rotl64(h, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        h ^= (*p) * P5;
        h = rotl64(h, 11) * P1;
        p++;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

static PyObject *py_xxh64(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer b;
    unsigned long long seed = 0;
    if (!PyArg_ParseTuple(args, "y*|K", &b, &seed)) return NULL;
    uint64_t h;
    Py_BEGIN_ALLOW_THREADS
    h = xxh64((const uint8_t *)b.buf, (size_t)b.len, (uint64_t)seed);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&b);
    return PyLong_FromUnsignedLongLong(h);
}

/* ------------------------------------------------------------------------------------------ */

static PyMethodDef methods[] = {
    {"search", py_search, METH_VARARGS,
     "search(queries, nq, radius, thresholds, segments) -> list of lists of (id, distance).\n"
     "thresholds: per-chunk limits for table search (None: linear scan of every segment).\n"
     "segments: tuple of (codes, ids, alive, n, dirs, lows, slots); tables may be None."},
    {"build_tables", py_build_tables, METH_VARARGS,
     "build_tables(codes, n, dirs, lows, slots, chunks): fill the tables of the listed chunks."},
    {"xxh64", py_xxh64, METH_VARARGS, "xxh64(data, seed=0) -> int: XXH64 checksum."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_hamming", "Compiled core of lightkeeper.index.hamming.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__hamming(void) {
    init_masks();
#if LK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        g_scan = scan_avx2;
        g_kernel = "avx2";
    }
#endif
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "NCHUNKS", LK_NCHUNKS) < 0 ||
        PyModule_AddIntConstant(m, "DIR_BITS", LK_DIR_BITS) < 0 ||
        PyModule_AddIntConstant(m, "DIR_LEN", LK_DIR_LEN) < 0 ||
        PyModule_AddIntConstant(m, "LOW_PAD", LK_LOW_PAD) < 0 ||
        PyModule_AddIntConstant(m, "MAX_THRESHOLD", LK_MAX_THRESHOLD) < 0 ||
        PyModule_AddStringConstant(m, "KERNEL", g_kernel) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

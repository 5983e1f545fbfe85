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
 *   A batch (search_batch) makes the same visits in another order: per chunk, all the batch's
 *   visits to a group of adjacent buckets together, groups in address order, so each line of
 *   the tables comes from memory once per batch and the work becomes arithmetic (AVX-512 where
 *   there is some), on worker threads of its own. See "Batched search" below.
 *
 *   Paired tables (optional, 6 more bytes per code per chunk) index each chunk by its low half
 *   too, so a query visits fewer buckets, scanned whole: single queries and batches both use
 *   them where a segment has them. See "Paired tables" below.
 *
 * Memory per code: 32 (code) + 8 (id) + 1 (alive flag) + 8 chunks x 6 bytes = 89 bytes, 2.8x
 * the raw code. Python owns every array (NumPy), so the index saves and loads as plain arrays.
 *
 * All functions release the GIL while they compute, so searches run in parallel from threads;
 * search_batch also starts threads of its own (POSIX threads; elsewhere it runs on one).
 * Tables are validated where they are used (bucket bounds and slots are clamped), so a crafted
 * file can at worst lose matches, never read out of bounds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define LK_THREADS 1
#else
#define LK_THREADS 0
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LK_X86 1
#else
#define LK_X86 0
#endif

#define LK_CODE_BYTES 32
#define LK_NCHUNKS 8
/* Tables a segment may have: one per chunk, and with paired tables a second per chunk. */
#define LK_NTABLES (2 * LK_NCHUNKS)
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
    /* Paired tables, or NULL: the same postings keyed by each chunk's low half instead (pdirs by
     * the low 16 bits, plows holding the high 16 bits). See "Paired tables" below. */
    const uint32_t *pdirs;
    const uint16_t *plows;
    const uint32_t *pslots;
} Segment;

/* A chunk's table (0 .. LK_NCHUNKS - 1) or its paired table (LK_NCHUNKS + chunk). */
static inline const uint16_t *table_lows(const Segment *sg, int table) {
    return table < LK_NCHUNKS ? sg->lows + (size_t)table * sg->n
                              : sg->plows + (size_t)(table - LK_NCHUNKS) * sg->n;
}

static inline const uint32_t *table_slots(const Segment *sg, int table) {
    return table < LK_NCHUNKS ? sg->slots + (size_t)table * sg->n
                              : sg->pslots + (size_t)(table - LK_NCHUNKS) * sg->n;
}

/* Full distance of a candidate found through `table`, or -1 when it is out of radius or is
 * reported elsewhere: through an earlier chunk, or, found in a paired table, through its chunk's
 * own table (its high half is within t / 2 bits: see "Paired tables"). */
static inline int verify(const uint8_t *code, const uint8_t *q, int table, const int *t,
                         int radius) {
    const int chunk = table < LK_NCHUNKS ? table : table - LK_NCHUNKS;
    int d[LK_NCHUNKS];
    int total = 0;
    for (int j = 0; j < LK_NCHUNKS; j++) {
        d[j] = __builtin_popcount(load_le32(code + 4 * j) ^ load_le32(q + 4 * j));
        total += d[j];
    }
    if (total > radius) return -1;
    for (int j = 0; j < chunk; j++)
        if (d[j] <= t[j]) return -1;
    if (table >= LK_NCHUNKS) {
        uint32_t high = (load_le32(code + 4 * chunk) ^ load_le32(q + 4 * chunk)) >> 16;
        if (__builtin_popcount(high) <= t[chunk] / 2) return -1;
    }
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

/* One bucket a query visits: its posting range, its table (see table_lows), the query's half
 * stored in that table and how many bits of it may still differ (0: only an exact value). */
typedef struct {
    uint32_t start, end;
    uint16_t ql;
    uint8_t table;
    uint8_t budget;
} Visit;

/* A posting that passed the bucket filter, to be checked against the full code. */
typedef struct {
    uint32_t slot;
    uint32_t table;
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
    for (int c = 0; c < LK_NCHUNKS; c++) {
        if (t[c] < 0) continue;
        const int half = t[c] / 2;
        const size_t one = g_upto[t[c] < 16 ? t[c] : 16];
        const size_t paired = 2 * (size_t)g_upto[half < 16 ? half : 16];
        most += one > paired ? one : paired; /* room for whichever plan plan_query makes */
    }
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

static inline int add_candidate(Scratch *sc, uint32_t slot, int table) {
    if (sc->ncand == sc->capcand) {
        size_t cap = 2 * sc->capcand;
        Candidate *c = (Candidate *)realloc(sc->cand, cap * sizeof(Candidate));
        if (!c) return -1;
        sc->cand = c;
        sc->capcand = cap;
    }
    sc->cand[sc->ncand].slot = slot;
    sc->cand[sc->ncand].table = (uint32_t)table;
    sc->ncand++;
    return 0;
}

/* Paired tables. A chunk within t bits of the query's has one of its 16-bit halves within
 * t / 2 bits (the two halves' distances add up to at most t). So where a segment has paired
 * tables, a query visits, in each chunk's own table, the buckets whose high half is within t / 2
 * bits (keeping postings whose low half is within the rest of t), and in its paired table, the
 * buckets whose low half is within t / 2 (keeping postings whose high half is within the rest).
 * For t = 3 (radius 31) that is 2 x 17 buckets per chunk, scanned whole, instead of 697 of
 * which 560 are exact lookups at random places: at 13.4 M codes, where a query waits on memory,
 * p50 0.085 ms against 0.38 ms (bench/index_bench.py), for 6 more bytes per code per chunk. A code
 * found in both tables of its chunk is reported from the first (verify). t = 0 keeps one table:
 * one exact lookup beats two scans. */
static inline int paired_chunk(const Segment *sg, int t) { return sg->pdirs != NULL && t >= 1; }

/* How many bits a visited bucket's key may differ from the query's in table `table` of a chunk
 * with threshold t (what is left of t then bounds the other half). */
static inline int table_within(const Segment *sg, int table, int t) {
    return table >= LK_NCHUNKS || paired_chunk(sg, t) ? t / 2 : t;
}

/* The buckets of one table within `within` bits of the query's key half qh. */
static size_t plan_table(const uint32_t *dir, size_t n, uint32_t qh, uint16_t ql, int table,
                         int t, int within, Visit *visits) {
    size_t k = 0;
    const uint32_t nm = g_upto[within < 16 ? within : 16];
    for (uint32_t j = 0; j < nm; j++) {
        uint32_t b = qh ^ g_masks[j];
        uint32_t s = dir[b], e = dir[b + 1];
        if (e > n) e = (uint32_t)n;
        if (s >= e) continue;
        visits[k].start = s;
        visits[k].end = e;
        visits[k].ql = ql;
        visits[k].table = (uint8_t)table;
        visits[k].budget = (uint8_t)(t - __builtin_popcount(g_masks[j]));
        k++;
    }
    return k;
}

/* Stage 1: every non-empty bucket the query visits, over all chunks (the directories are small
 * and mostly cached; these reads are independent, so the CPU overlaps them). */
static size_t plan_query(const Segment *sg, const uint8_t *q, const int *t, Visit *visits) {
    const size_t n = sg->n;
    size_t k = 0;
    for (int c = 0; c < LK_NCHUNKS; c++) {
        if (t[c] < 0) continue;
        const uint32_t qw = load_le32(q + 4 * c);
        const uint16_t qh = (uint16_t)(qw >> 16), ql = (uint16_t)(qw & 0xffffu);
        const uint32_t *dir = sg->dirs + (size_t)c * LK_DIR_LEN;
        if (!paired_chunk(sg, t[c])) {
            k += plan_table(dir, n, qh, ql, c, t[c], t[c], visits + k);
            continue;
        }
        const uint32_t *pdir = sg->pdirs + (size_t)c * LK_DIR_LEN;
        k += plan_table(dir, n, qh, ql, c, t[c], t[c] / 2, visits + k);
        k += plan_table(pdir, n, ql, qh, LK_NCHUNKS + c, t[c], t[c] / 2, visits + k);
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
    uint32_t touched = 0;
    for (size_t b0 = 0; b0 < k; b0 += LK_BATCH) {
        const size_t b1 = k - b0 > LK_BATCH ? b0 + LK_BATCH : k;
        for (size_t i = b0; i < b1; i++) {
            const Visit *v = &visits[i];
            const uint16_t *lows = table_lows(sg, v->table);
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
            const int c = v->table;
            const uint16_t *lows = table_lows(sg, c);
            const uint32_t *slots = table_slots(sg, c);
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
        int d = verify(sg->codes + (size_t)slot * LK_CODE_BYTES, q, (int)cand[i].table, t, radius);
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
                        __builtin_popcountll(load_u64(x + 8) ^ q1);
                if (d > radius) continue; /* half the code settles most pairs */
                d += __builtin_popcountll(load_u64(x + 16) ^ q2) +
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
/* Batched search                                                                              */
/*                                                                                             */
/* A lone query pays a memory miss for nearly every bucket it visits (~5,600 of them at radius */
/* 31). A batch turns the loop around, chunk by chunk:                                         */
/*                                                                                             */
/*   Groups. The 65,536 buckets of a chunk are cut into 2^G groups of 2^L adjacent buckets     */
/*   (L = 16 - G); the queries are counting-sorted by the top G bits of their chunk. The       */
/*   queries that visit group g are exactly those of the query groups g ^ m, for every G-bit  */
/*   mask m with kh = popcount(m) <= t; each visits the buckets of g whose last L high bits    */
/*   differ from its own in at most t - kh bits, with what is left of the budget for the low   */
/*   half. Walking g in order, every (query, bucket) visit of the single-query search happens  */
/*   exactly once, but all the visits to a group happen together while its low halves (a few  */
/*   tens of kilobytes, fetched ahead) sit in cache: each line of the tables comes from DRAM    */
/*   once per batch instead of once per visit.                                                 */
/*                                                                                             */
/*   Buckets. A group's visits are queued, counting-sorted by (bucket, kind of comparison) and */
/*   done bucket by bucket: a bucket of up to 256 entries is loaded once into eight AVX-512    */
/*   registers and each visit is a fixed run of vector operations ending in one test.          */
/*                                                                                             */
/*   Join. Four visits in five need the query's exact low half in a bucket, and almost all     */
/*   find nothing. When they outnumber the entries (large batches), they are not made at all:  */
/*   each (query, query group) pair registers its low half once, and one pass over the group's */
/*   entries picks out the entries whose low half was registered (see join_exact).             */
/*                                                                                             */
/*   Verification. Candidates are collected per worker and checked in bulk, rows and codes      */
/*   fetched ahead: the only random reads left.                                                */
/*                                                                                             */
/* Paired tables. Each table of a segment (a chunk's own, and its paired table where there is */
/* one) is walked as above, keyed by its own half: the query's key for a paired table is its   */
/* chunk with the halves swapped, and the buckets visited are those within t / 2 bits of it.  */
/* Every visit then scans a bucket whole (no exact lookups, no join): at 13.4 M codes and      */
/* radius 31, 17 visits per query per table instead of 697, and batches of 10,000 of uniform   */
/* codes twice as fast (bench/index_bench.py, lightkeeper-paired; clustered codes, whose time   */
/* goes mostly to their many true matches, about 8 % faster).                                   */
/*                                                                                             */
/* Work is cut into units (a range of groups of one table; a range of queries for a segment    */
/* without tables) that worker threads take in turn, each keeping its own hits, merged at the  */
/* end. Queries go in sub-batches of LK_SUB_BATCH, so the scratch stays bounded: 8 bytes per   */
/* query of a sub-batch per table searched (8 tables, or 16 with paired ones), and per worker  */
/* 34 bytes per query plus about half a megabyte: under 8 MB for a full sub-batch on two       */
/* workers.                                                                                    */

/* Queries per sub-batch (their index must fit the 22 bits of a queued visit). */
#define LK_SUB_BATCH 32768
/* Candidates a worker holds before verifying them (8 bytes each). */
#define LK_CAND_CAP (1u << 15)
/* Work units per chunk: enough that a few workers finish together. */
#define LK_UNITS_PER_CHUNK 8
/* Queries per linear-scan unit. */
#define LK_LINEAR_UNIT 256
/* Most worker threads one call starts. */
#define LK_MAX_WORKERS 64
/* Visits queued before they are sorted and done (within one group). */
#define LK_VISIT_FLUSH 8192
/* Buckets up to this many entries are held in registers (8 x 32 lanes). */
#define LK_REG_ENTRIES 256
/* Joining the exact lookups (a pass over every entry) pays when they exceed this share of the */
/* entries (measured at 13.4 M codes: a loss at 3,000 queries, a gain from about 5,000; at   */
/* 1 M codes a gain at 1,000). */
#define LK_JOIN_RATIO 0.25
/* Rows resolved (and codes fetched) this many candidates ahead during verification. */
#define LK_BATCH_AHEAD 16

typedef struct {
    uint32_t q;   /* query, within the sub-batch */
    uint32_t pos; /* posting within the chunk; the row once resolved */
} BatchCand;

typedef struct {
    int32_t seg;
    int32_t table;   /* -1: a linear scan of queries [lo, hi) */
    uint32_t lo, hi; /* groups [lo, hi) of the table, or queries */
} Unit;

typedef struct Worker Worker;
/* Searches groups [g0, g1) of table tb of a segment with tables. */
typedef int (*table_unit_fn)(Worker *w, const Segment *sg, int tb, uint32_t g0, uint32_t g1);

typedef struct {
    table_unit_fn unit;
    const Segment *segs;
    const uint8_t *qs; /* the sub-batch's queries */
    size_t nq;
    int t[LK_NCHUNKS]; /* -1: chunk not searched through tables */
    /* per table (a chunk's own, or LK_NCHUNKS + chunk for its paired table): */
    int join[LK_NTABLES];   /* exact lookups by join_exact */
    int stream[LK_NTABLES]; /* fetch each group's low halves ahead (dense batches only) */
    int radius;
    int gbits, lbits;
    /* all gbits-bit (and lbits-bit) masks ordered by popcount, with their popcounts;
     * gupto[k]: how many have at most k bits set */
    uint16_t *gmask, *lmask;
    uint8_t *gpop, *lpop;
    uint32_t gupto[17], lupto[17];
    /* lvisit[rem * 2^lbits + j]: what turns a query's packed visit (visit_pack, budget 0) into
     * its j-th visit of a group when rem bits of budget are left: bucket mask, kind, budget */
    uint64_t *lvisit;
    /* per table searched: the sub-batch's queries sorted by group, their keys (the chunk's
     * value, halves swapped for a paired table), and where each group starts (2^gbits + 1) */
    uint32_t *qidx[LK_NTABLES], *qval[LK_NTABLES], *qdir[LK_NTABLES];
    Unit *units;
    size_t nunits;
    size_t next; /* next unit to take (atomic) */
    int failed;  /* a worker ran out of memory (atomic) */
} Plan;

struct Worker {
    Plan *plan;
    HitVec *outs; /* per query of the sub-batch */
    BatchCand *cand;
    size_t ncand;
    uint32_t *hits; /* LK_PIECE + LK_WINDOW positions from one scan */
    /* the current group's queued visits (visit_pack), a copy sorted by bucket and kind, and
     * the counters of that sort (4 x 2^lbits + 1) */
    uint64_t *vis, *vis2;
    size_t nv;
    uint32_t *vcount;
    /* the join of a group's exact lookups (see join_exact): its (query, query group) pairs,
     * packed by join_pack, chained by low half (head: 4,096 chains; next: per pair), and a
     * bitmap of their low halves (2^16 bits) */
    uint64_t *jp;
    uint16_t *jhead, *jnext;
    size_t njp;
    uint64_t *seen;
    const Segment *sg;
    int table;
};

/* All `bits`-bit masks ordered by popcount; upto[k]: how many have at most k bits set. */
static void masks_by_popcount(int bits, uint16_t *mask, uint8_t *pop, uint32_t *upto) {
    uint32_t count[17] = {0}, start[17];
    const uint32_t total = 1u << bits;
    for (uint32_t m = 0; m < total; m++) count[__builtin_popcount(m)]++;
    uint32_t acc = 0;
    for (int k = 0; k <= 16; k++) {
        start[k] = acc;
        acc += count[k];
        upto[k] = acc;
    }
    for (uint32_t m = 0; m < total; m++) {
        const int k = __builtin_popcount(m);
        pop[start[k]] = (uint8_t)k;
        mask[start[k]++] = (uint16_t)m;
    }
}

/* Verify the worker's candidates (all from table w->table of segment w->sg): resolve postings
 * to rows, then compare full codes (`verify`), each fetched LK_BATCH_AHEAD candidates ahead. */
static int batch_verify(Worker *w) {
    const Plan *p = w->plan;
    const Segment *sg = w->sg;
    const size_t n = sg->n, nc = w->ncand;
    const uint32_t *slots = table_slots(sg, w->table);
    BatchCand *cd = w->cand;
    w->ncand = 0;
    for (size_t i = 0; i < nc; i++) {
        if (i + LK_BATCH_AHEAD < nc) prefetch(slots + cd[i + LK_BATCH_AHEAD].pos);
        cd[i].pos = slots[cd[i].pos];
    }
    for (size_t i = 0; i < nc && i < LK_BATCH_AHEAD; i++)
        if (cd[i].pos < n) prefetch(sg->codes + (size_t)cd[i].pos * LK_CODE_BYTES);
    for (size_t i = 0; i < nc; i++) {
        if (i + LK_BATCH_AHEAD < nc && cd[i + LK_BATCH_AHEAD].pos < n)
            prefetch(sg->codes + (size_t)cd[i + LK_BATCH_AHEAD].pos * LK_CODE_BYTES);
        const uint32_t row = cd[i].pos;
        if (row >= n) continue; /* a slot out of range (a damaged file): never read past n */
        const uint8_t *x = sg->codes + (size_t)row * LK_CODE_BYTES;
        const uint8_t *q = p->qs + (size_t)cd[i].q * LK_CODE_BYTES;
        const int d = verify(x, q, w->table, p->t, p->radius);
        if (d < 0 || !sg->alive[row]) continue;
        if (hits_push(&w->outs[cd[i].q], sg->ids[row], d) < 0) return -1;
    }
    return 0;
}

/* Room for `more` candidates (verifying the ones held when needed). */
static inline int cand_room(Worker *w, size_t more) {
    return w->ncand + more > LK_CAND_CAP ? batch_verify(w) : 0;
}

static inline int cand_add(Worker *w, uint32_t q, size_t pos) {
    if (cand_room(w, 1) < 0) return -1;
    w->cand[w->ncand].q = q;
    w->cand[w->ncand].pos = (uint32_t)pos;
    w->ncand++;
    return 0;
}

/* A queued visit, packed in 64 bits: low half (bits 0..15), budget left for it (16..23), kind
 * of comparison (24..25: 0 equal, 1 at most one bit off, 2 a few bits off, 3 anything), bucket
 * within the group (26..41), query (42..63). Bits 24..41 are the sort key: bucket, then kind. */
#define LK_VISIT_KEY(v) ((uint32_t)((v) >> 24) & 0x3ffffu)
static inline uint64_t visit_pack(uint32_t bucket, int budget, uint16_t ql, uint32_t q) {
    const uint64_t kind = budget == 0 ? 0 : budget == 1 ? 1 : budget < 16 ? 2 : 3;
    return (uint64_t)q << 42 | (uint64_t)bucket << 26 | kind << 24 | (uint64_t)budget << 16 | ql;
}

#if LK_X86
#define LK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,bmi,bmi2")))

/* As scan_avx2, 32 lanes at a time; the tail is a masked load, so nothing past e is read. */
LK_AVX512 static inline size_t scan_avx512(const uint16_t *lows, size_t s, size_t e, uint16_t ql,
                                           int budget, uint32_t *out) {
    size_t k = 0;
    if (budget >= 16) return scan_scalar(lows, s, e, ql, budget, out);
    const __m512i q = _mm512_set1_epi16((short)ql);
#define LK_EMIT512(maskexpr)                                        \
    do {                                                            \
        uint32_t m_ = (uint32_t)(maskexpr);                         \
        while (m_) {                                                \
            out[k++] = (uint32_t)(p + (unsigned)__builtin_ctz(m_)); \
            m_ &= m_ - 1;                                           \
        }                                                           \
    } while (0)
#define LK_LIVE512 ((__mmask32)_bzhi_u32(0xffffffffu, (unsigned)(e - p < 32 ? e - p : 32)))
    if (budget == 0) {
        for (size_t p = s; p < e; p += 32) {
            const __mmask32 live = LK_LIVE512;
            __m512i v = _mm512_maskz_loadu_epi16(live, lows + p);
            LK_EMIT512(_mm512_mask_cmpeq_epi16_mask(live, v, q));
        }
        return k;
    }
    if (budget == 1) {
        const __m512i one = _mm512_set1_epi16(1);
        for (size_t p = s; p < e; p += 32) {
            const __mmask32 live = LK_LIVE512;
            __m512i x = _mm512_xor_si512(_mm512_maskz_loadu_epi16(live, lows + p), q);
            LK_EMIT512(_mm512_mask_testn_epi16_mask(live, x, _mm512_sub_epi16(x, one)));
        }
        return k;
    }
    const __m512i lut = _mm512_broadcast_i32x4(
        _mm_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4));
    const __m512i nib = _mm512_set1_epi8(0x0f);
    const __m512i lane_lo = _mm512_set1_epi16(0x00ff);
    const __m512i limit = _mm512_set1_epi16((short)budget);
    for (size_t p = s; p < e; p += 32) {
        const __mmask32 live = LK_LIVE512;
        __m512i x = _mm512_xor_si512(_mm512_maskz_loadu_epi16(live, lows + p), q);
        __m512i lo = _mm512_and_si512(x, nib);
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), nib);
        __m512i pc8 = _mm512_add_epi8(_mm512_shuffle_epi8(lut, lo), _mm512_shuffle_epi8(lut, hi));
        __m512i pc16 =
            _mm512_add_epi16(_mm512_and_si512(pc8, lane_lo), _mm512_srli_epi16(pc8, 8));
        LK_EMIT512(_mm512_mask_cmple_epu16_mask(live, pc16, limit));
    }
#undef LK_LIVE512
#undef LK_EMIT512
    return k;
}

/* Emit the entries of a register-held bucket that visit x matches (its kind says how). */
LK_AVX512 static int bucket_emit512(Worker *w, const __m512i *v, const __mmask32 *live, size_t s,
                                    size_t len, uint64_t x) {
    const uint32_t qi = (uint32_t)(x >> 42);
    const uint32_t kind = (uint32_t)(x >> 24) & 3u;
    const int budget = (int)((x >> 16) & 0xff);
    const __m512i q = _mm512_set1_epi16((short)(uint16_t)x);
    const __m512i lut = _mm512_broadcast_i32x4(
        _mm_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4));
    const __m512i nib = _mm512_set1_epi8(0x0f);
    if (cand_room(w, len) < 0) return -1;
    for (int i = 0; i < LK_REG_ENTRIES / 32; i++) {
        uint32_t m = live[i];
        if (kind == 0) {
            m = _mm512_mask_cmpeq_epi16_mask(live[i], v[i], q);
        } else if (kind != 3 && budget <= 3) {
            /* popcount(d) <= budget: clearing the lowest set bit `budget` times leaves zero */
            const __m512i one = _mm512_set1_epi16(1);
            __m512i d = _mm512_xor_si512(v[i], q);
            for (int b = 1; b < budget; b++) d = _mm512_and_si512(d, _mm512_sub_epi16(d, one));
            m = _mm512_mask_testn_epi16_mask(live[i], d, _mm512_sub_epi16(d, one));
        } else if (kind == 2) { /* popcount by nibble lookup */
            const __m512i d = _mm512_xor_si512(v[i], q);
            const __m512i pc8 = _mm512_add_epi8(
                _mm512_shuffle_epi8(lut, _mm512_and_si512(d, nib)),
                _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(d, 4), nib)));
            const __m512i pc16 = _mm512_add_epi16(
                _mm512_and_si512(pc8, _mm512_set1_epi16(0xff)), _mm512_srli_epi16(pc8, 8));
            m = _mm512_mask_cmple_epu16_mask(live[i], pc16, _mm512_set1_epi16((short)budget));
        }
        for (; m; m &= m - 1) {
            w->cand[w->ncand].q = qi;
            w->cand[w->ncand].pos = (uint32_t)(s + 32 * (size_t)i + (unsigned)__builtin_ctz(m));
            w->ncand++;
        }
    }
    return 0;
}

/* The queued visits of one bucket [s, e) of at most LK_REG_ENTRIES entries, sorted by kind:
 * kind k's are [end[k - 1], end[k]) (end[-1] = 0). The bucket sits in eight registers, its
 * lanes past the end forced to all ones after the XOR with a visit's low half, so that an
 * exact or one-bit visit is a fixed, branch-free run of vector operations ending in one test
 * ("is any lane zero?", after a running minimum); the rare matches are then picked out by
 * bucket_emit512, which also does the few visits of other kinds. */
LK_AVX512 static int bucket_visits512(Worker *w, const uint16_t *lows, size_t s, size_t e,
                                      const uint64_t *vis, const uint32_t *end) {
#define LK_NREG (LK_REG_ENTRIES / 32)
#define LK_XOR_OR 0xbe /* vpternlog: (a ^ b) | c */
    __m512i v[LK_NREG], dead[LK_NREG];
    __mmask32 live[LK_NREG];
    const size_t len = e - s;
#pragma GCC unroll 8
    for (int i = 0; i < LK_NREG; i++) {
        const size_t at = 32 * (size_t)i, left = len > at ? len - at : 0;
        live[i] = (__mmask32)_bzhi_u32(0xffffffffu, (unsigned)(left < 32 ? left : 32));
        v[i] = _mm512_maskz_loadu_epi16(live[i], lows + s + (left ? at : 0));
        dead[i] = _mm512_movm_epi16(~live[i]);
    }
    const __m512i one = _mm512_set1_epi16(1);
    size_t k = 0;
    for (; k < end[0]; k++) { /* equal low halves */
        const __m512i q = _mm512_set1_epi16((short)(uint16_t)vis[k]);
        __m512i acc = _mm512_ternarylogic_epi32(v[0], q, dead[0], LK_XOR_OR);
#pragma GCC unroll 8
        for (int i = 1; i < LK_NREG; i++)
            acc = _mm512_min_epu16(acc, _mm512_ternarylogic_epi32(v[i], q, dead[i], LK_XOR_OR));
        if (_mm512_testn_epi16_mask(acc, acc) && bucket_emit512(w, v, live, s, len, vis[k]) < 0)
            return -1;
    }
    for (; k < end[1]; k++) { /* low halves at most one bit apart: d & (d - 1) == 0 */
        const __m512i q = _mm512_set1_epi16((short)(uint16_t)vis[k]);
        __m512i acc = _mm512_set1_epi16(-1);
#pragma GCC unroll 8
        for (int i = 0; i < LK_NREG; i++) {
            const __m512i d = _mm512_ternarylogic_epi32(v[i], q, dead[i], LK_XOR_OR);
            acc = _mm512_min_epu16(acc, _mm512_and_si512(d, _mm512_sub_epi16(d, one)));
        }
        if (_mm512_testn_epi16_mask(acc, acc) && bucket_emit512(w, v, live, s, len, vis[k]) < 0)
            return -1;
    }
    for (; k < end[2]; k++) { /* two or three bits apart: clear the lowest set bit, then as above */
        const int budget = (int)((vis[k] >> 16) & 0xff);
        if (budget > 3) {
            if (bucket_emit512(w, v, live, s, len, vis[k]) < 0) return -1;
            continue;
        }
        const __m512i q = _mm512_set1_epi16((short)(uint16_t)vis[k]);
        uint32_t m[LK_NREG], any = 0;
#pragma GCC unroll 8
        for (int i = 0; i < LK_NREG; i++) {
            __m512i d = _mm512_ternarylogic_epi32(v[i], q, dead[i], LK_XOR_OR);
            d = _mm512_and_si512(d, _mm512_sub_epi16(d, one));
            if (budget == 3) d = _mm512_and_si512(d, _mm512_sub_epi16(d, one));
            m[i] = _mm512_testn_epi16_mask(d, _mm512_sub_epi16(d, one));
            any |= m[i];
        }
        if (!any) continue;
        const uint32_t qi = (uint32_t)(vis[k] >> 42);
        if (cand_room(w, len) < 0) return -1;
        for (int i = 0; i < LK_NREG; i++) {
            for (uint32_t mi = m[i]; mi; mi &= mi - 1) {
                w->cand[w->ncand].q = qi;
                w->cand[w->ncand].pos = (uint32_t)(s + 32 * (size_t)i + (unsigned)__builtin_ctz(mi));
                w->ncand++;
            }
        }
    }
    for (; k < end[3]; k++) /* anything: every entry */
        if (bucket_emit512(w, v, live, s, len, vis[k]) < 0) return -1;
#undef LK_XOR_OR
#undef LK_NREG
    return 0;
}
#endif

/* One queued visit to bucket [s, e), the general way: a window lookup for an exact low half, a
 * scan (in pieces) otherwise. */
static inline __attribute__((always_inline)) int visit_one(Worker *w, const uint16_t *lows,
                                                           size_t s, size_t e, uint64_t x,
                                                           int wide) {
    const uint32_t qi = (uint32_t)(x >> 42);
    const int budget = (int)((x >> 16) & 0xff);
    const uint16_t ql = (uint16_t)x;
    if (budget == 0 && e - s > LK_WINDOW) {
        const size_t w0 = window_start(s, e, ql), w1 = w0 + LK_WINDOW;
        if ((w0 == s || lows[w0] < ql) && (w1 == e || lows[w1 - 1] > ql)) {
            s = w0; /* every entry equal to ql lies in the window */
            e = w1;
        } else {
            for (size_t p = find_first(lows, s, e, ql); p < e && lows[p] == ql; p++)
                if (cand_add(w, qi, p) < 0) return -1;
            return 0;
        }
    }
    while (s < e) {
        const size_t pe = e - s > LK_PIECE ? s + LK_PIECE : e;
        size_t nh;
#if LK_X86
        if (wide)
            nh = scan_avx512(lows, s, pe, ql, budget, w->hits);
        else
#endif
            nh = g_scan(lows, s, pe, ql, budget, w->hits);
        if (cand_room(w, nh) < 0) return -1;
        for (size_t h = 0; h < nh; h++) {
            w->cand[w->ncand + h].q = qi;
            w->cand[w->ncand + h].pos = w->hits[h];
        }
        w->ncand += nh;
        s = pe;
    }
    return 0;
}

/* Do the queued visits of the current group (directory slice dg, 2^L buckets). */
static inline __attribute__((always_inline)) int visits_flush(Worker *w, const uint32_t *dg,
                                                              int L, const uint16_t *lows,
                                                              int wide) {
    const size_t n = w->sg->n, nv = w->nv;
    const uint32_t nkeys = 4u << L;
    uint32_t *cnt = w->vcount;
    const uint64_t *vis = w->vis;
    uint64_t *sorted = w->vis2;
    w->nv = 0;
    if (nv * 4 < nkeys) { /* too few to be worth sorting (a small batch): one by one */
        for (size_t i = 0; i < nv; i++) {
            const uint32_t b = (uint32_t)(vis[i] >> 26) & 0xffffu;
            size_t s = dg[b], e = dg[b + 1];
            if (e > n) e = n;
            if (s < e && visit_one(w, lows, s, e, vis[i], wide) < 0) return -1;
        }
        return 0;
    }
    memset(cnt, 0, ((size_t)nkeys + 1) * sizeof(uint32_t));
    for (size_t i = 0; i < nv; i++) cnt[LK_VISIT_KEY(vis[i]) + 1]++;
    for (uint32_t b = 0; b < nkeys; b++) cnt[b + 1] += cnt[b];
    for (size_t i = 0; i < nv; i++) sorted[cnt[LK_VISIT_KEY(vis[i])]++] = vis[i];
    /* cnt[key] now ends that key's visits: bucket b's run from cnt[4b - 1] to cnt[4b + 3] */
    for (uint32_t b = 0; b < (1u << L); b++) {
        const size_t k0 = b ? cnt[4 * b - 1] : 0, k1 = cnt[4 * b + 3];
        if (k0 == k1) continue;
        size_t s = dg[b], e = dg[b + 1];
        if (e > n) e = n;
        if (s >= e) continue;
#if LK_X86
        if (wide && e - s <= LK_REG_ENTRIES) {
            uint32_t end[4];
            for (int kind = 0; kind < 4; kind++) end[kind] = (uint32_t)(cnt[4 * b + kind] - k0);
            if (bucket_visits512(w, lows, s, e, sorted + k0, end) < 0) return -1;
            continue;
        }
#endif
        for (size_t k = k0; k < k1; k++)
            if (visit_one(w, lows, s, e, sorted[k], wide) < 0) return -1;
    }
    return 0;
}

/* The exact lookups of a group, as a join. In a large batch most of a group's visits need the
 * query's exact low half (1 in 250 finds it); rather than look each one up, a (query, query
 * group) pair with rem bits of budget left registers its low half once, and one pass over the
 * group's entries finds, for each entry whose low half some pair registered (a bitmap test),
 * the pairs whose query differs from the entry's bucket in exactly rem of the bucket bits: the
 * very (query, entry) pairs those exact lookups would have found, and only those. */
#define LK_JOIN_CHAINS 4096
#define LK_JOIN_NONE 0xffffu

/* low half (0..15), bucket bits of the query (16..31), rem (32..39), query (40..63) */
static inline uint64_t join_pack(uint16_t ql, uint32_t qb, int rem, uint32_t q) {
    return (uint64_t)q << 40 | (uint64_t)(uint32_t)rem << 32 | (uint64_t)qb << 16 | ql;
}

static inline void join_add(Worker *w, uint16_t ql, uint32_t qb, int rem, uint32_t q) {
    const size_t i = w->njp++;
    w->jp[i] = join_pack(ql, qb, rem, q);
    w->seen[ql >> 6] |= 1ull << (ql & 63);
    w->jnext[i] = w->jhead[ql & (LK_JOIN_CHAINS - 1)];
    w->jhead[ql & (LK_JOIN_CHAINS - 1)] = (uint16_t)i;
}

/* Walk the group's entries (directory slice dg, 2^L buckets) against the registered pairs,
 * then clear the registrations. */
static int join_exact(Worker *w, const uint32_t *dg, int L, const uint16_t *lows) {
    const size_t n = w->sg->n;
    const uint64_t *seen = w->seen;
    for (uint32_t b = 0; b < (1u << L); b++) {
        size_t s = dg[b], e = dg[b + 1];
        if (e > n) e = n;
        for (size_t x = s; x < e; x++) {
            const uint16_t l = lows[x];
            if (!((seen[l >> 6] >> (l & 63)) & 1)) continue;
            for (uint32_t i = w->jhead[l & (LK_JOIN_CHAINS - 1)]; i != LK_JOIN_NONE;
                 i = w->jnext[i]) {
                const uint64_t pr = w->jp[i];
                if ((uint16_t)pr != l ||
                    __builtin_popcount(b ^ ((uint32_t)(pr >> 16) & 0xffffu)) !=
                        (int)((pr >> 32) & 0xff))
                    continue;
                if (cand_add(w, (uint32_t)(pr >> 40), x) < 0) return -1;
            }
        }
    }
    for (size_t i = 0; i < w->njp; i++) {
        const uint16_t l = (uint16_t)w->jp[i];
        w->seen[l >> 6] = 0;
        w->jhead[l & (LK_JOIN_CHAINS - 1)] = LK_JOIN_NONE;
    }
    w->njp = 0;
    return 0;
}

/* One unit of table work: groups [g0, g1) of table tb (a chunk's own table, or its paired table:
 * see "Paired tables"). The visits are those of plan_table: buckets whose key is within h bits
 * of the query's (h = t, or t / 2 with paired tables), each with what is left of t for the other
 * half. `wide` picks the AVX-512 kernels (a constant in each instantiation below, so the choice
 * costs nothing per visit). */
static inline __attribute__((always_inline)) int table_unit(Worker *w, const Segment *sg, int tb,
                                                            uint32_t g0, uint32_t g1, int wide) {
    const Plan *p = w->plan;
    const size_t n = sg->n;
    const int c = tb < LK_NCHUNKS ? tb : tb - LK_NCHUNKS;
    const int t = p->t[c], h = table_within(sg, tb, t);
    const int join = p->join[tb], stream = p->stream[tb];
    const int L = p->lbits;
    const uint32_t low_bits = (1u << L) - 1u, ngroups = 1u << p->gbits;
    const uint32_t *dir = (tb < LK_NCHUNKS ? sg->dirs : sg->pdirs) + (size_t)c * LK_DIR_LEN;
    const uint16_t *lows = table_lows(sg, tb);
    const uint32_t *qdir = p->qdir[tb], *qval = p->qval[tb], *qidx = p->qidx[tb];
    const uint32_t ng = p->gupto[h < 16 ? h : 16];
    w->sg = sg;
    w->table = tb;
    w->nv = 0;
    for (uint32_t g = g0; g < g1; g++) {
        const uint32_t *dg = dir + ((size_t)g << L);
        /* the low halves of the next group are requested a few lines at a time while this one
         * is searched (a burst would stall on the CPU's few outstanding misses) */
        size_t ahead = 0, ahead_end = 0;
        if (stream && g + 1 < ngroups) {
            ahead = dir[(size_t)(g + 1) << L];
            ahead_end = dir[(size_t)(g + 2) << L];
            if (ahead_end > n) ahead_end = n;
        }
        for (uint32_t j = 0; j < ng; j++) {
            if (ahead < ahead_end) {
                prefetch(lows + ahead);
                prefetch(lows + ahead + 32);
                prefetch(lows + ahead + 64);
                ahead += 96;
            }
            const uint32_t src = g ^ p->gmask[j];
            const uint32_t a = qdir[src], b = qdir[src + 1];
            if (a >= b) continue;
            /* budget left (rem) and bits the bucket may still differ in (within) */
            const int rem = t - p->gpop[j], within = h - p->gpop[j];
            /* this pair's visits [0, nscan) leave budget for the low half; [nscan, nall) do not
             * (exact lookups: queued like the others, or joined when `join`) */
            const int most = within < rem ? within : rem;
            const int most_scan = within < rem ? within : rem - 1;
            const uint32_t nscan = most_scan >= 0 ? p->lupto[most_scan < 16 ? most_scan : 16] : 0;
            const uint32_t nall = p->lupto[most < 16 ? most : 16];
            const uint64_t *pattern = p->lvisit + ((size_t)rem << L);
            for (uint32_t k = a; k < b; k++) {
                const uint32_t qv = qval[k], qb = (qv >> 16) & low_bits;
                const uint16_t ql = (uint16_t)qv;
                const uint64_t base = visit_pack(qb, 0, ql, qidx[k]);
                uint32_t nl = nall;
                if (join && nall > nscan) {
                    join_add(w, ql, qb, rem, qidx[k]);
                    nl = nscan;
                }
                uint64_t *out = w->vis + w->nv;
                for (uint32_t jj = 0; jj < nl; jj++) out[jj] = base ^ pattern[jj];
                w->nv += nl;
                if (w->nv >= LK_VISIT_FLUSH && visits_flush(w, dg, L, lows, wide) < 0) return -1;
            }
        }
        if (w->njp && join_exact(w, dg, L, lows) < 0) return -1;
        if (w->nv && visits_flush(w, dg, L, lows, wide) < 0) return -1;
        for (; ahead < ahead_end; ahead += 32) prefetch(lows + ahead);
    }
    return w->ncand ? batch_verify(w) : 0;
}

static int table_unit_generic(Worker *w, const Segment *sg, int tb, uint32_t g0, uint32_t g1) {
    return table_unit(w, sg, tb, g0, g1, 0);
}

#if LK_X86
LK_AVX512 static int table_unit_avx512(Worker *w, const Segment *sg, int tb, uint32_t g0,
                                       uint32_t g1) {
    return table_unit(w, sg, tb, g0, g1, 1);
}
#endif

static table_unit_fn g_table_unit = table_unit_generic;
static const char *g_batch_kernel = "portable";

static void *batch_worker(void *arg) {
    Worker *w = (Worker *)arg;
    Plan *p = w->plan;
    const table_unit_fn unit = p->unit;
    for (;;) {
        if (__atomic_load_n(&p->failed, __ATOMIC_RELAXED)) break;
        const size_t u = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
        if (u >= p->nunits) break;
        const Unit *un = &p->units[u];
        const Segment *sg = &p->segs[un->seg];
        int rc;
        if (un->table >= 0)
            rc = unit(w, sg, un->table, un->lo, un->hi);
        else
            rc = linear_scan(sg, p->qs + (size_t)un->lo * LK_CODE_BYTES, un->hi - un->lo,
                             p->radius, w->outs + un->lo);
        if (rc < 0) {
            __atomic_store_n(&p->failed, 1, __ATOMIC_RELAXED);
            break;
        }
    }
    return NULL;
}

/* Run the plan's units on `nw` workers (this thread is worker 0). Returns -1 on out-of-memory. */
static int batch_run(Plan *p, Worker *ws, int nw) {
    p->next = 0;
    p->failed = 0;
#if LK_THREADS
    pthread_t th[LK_MAX_WORKERS];
    int started = 0;
    for (int i = 1; i < nw; i++) {
        if (pthread_create(&th[started], NULL, batch_worker, &ws[i]) != 0) break;
        started++; /* a thread that cannot start leaves its share to the others */
    }
    batch_worker(&ws[0]);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
#else
    (void)nw;
    batch_worker(&ws[0]);
#endif
    return p->failed ? -1 : 0;
}

/* A query's key in table tb: its chunk's value, halves swapped for a paired table. */
static inline uint32_t query_key(const uint8_t *q, int tb) {
    if (tb < LK_NCHUNKS) return load_le32(q + 4 * tb);
    const uint32_t v = load_le32(q + 4 * (tb - LK_NCHUNKS));
    return v >> 16 | v << 16;
}

/* Sort the sub-batch's queries by group, per table searched (counting sort). */
static void batch_prepare(Plan *p) {
    const uint32_t ngroups = 1u << p->gbits;
    const int shift = 32 - p->gbits;
    for (int tb = 0; tb < LK_NTABLES; tb++) {
        if (!p->qdir[tb]) continue;
        uint32_t *dir = p->qdir[tb];
        memset(dir, 0, (ngroups + 1) * sizeof(uint32_t));
        for (size_t i = 0; i < p->nq; i++)
            dir[(query_key(p->qs + i * LK_CODE_BYTES, tb) >> shift) + 1]++;
        for (uint32_t g = 0; g < ngroups; g++) dir[g + 1] += dir[g];
        for (size_t i = 0; i < p->nq; i++) {
            const uint32_t v = query_key(p->qs + i * LK_CODE_BYTES, tb);
            const uint32_t at = dir[v >> shift]++;
            p->qval[tb][at] = v;
            p->qidx[tb][at] = (uint32_t)i;
        }
        for (uint32_t g = ngroups; g > 0; g--) dir[g] = dir[g - 1];
        dir[0] = 0;
    }
}

/* Exact lookups per query in a table of a chunk with threshold t whose visits reach buckets
 * within h bits: those whose key differs in exactly t bits (none when h < t: paired tables). */
static double exact_visits(int t, int h) {
    return t >= 0 && t <= 16 && h >= t ? (double)(g_upto[t] - (t ? g_upto[t - 1] : 0)) : 0.0;
}

static int use_join(size_t n, size_t nq, int t, int h) {
    const double exact = exact_visits(t, h);
    return exact > 0 && (double)nq * exact >= LK_JOIN_RATIO * (double)n;
}

/* The group size, from runs at 1 M and 13.4 M codes with 100 to 10,000 queries (radius 31).
 * Joined (large batches): groups of about 16 K entries (32 KB of low halves, cache-sized),
 * whatever the batch. Otherwise a model of the work per query, in units of one visit: larger
 * groups mean fewer (query, query group) pairs per query, smaller ones fewer masks to try per
 * group (0.3 each, shared by the batch); a group's low halves should stay within 128 KB. */
static int choose_group_bits(size_t n, size_t nq, int t, int h) {
    if (use_join(n, nq, t, h)) {
        int gb = 1;
        while (gb < 12 && (double)n / (double)(1u << gb) > 16384 * 1.41421356) gb++;
        return gb;
    }
    int best = 12;
    double best_cost = -1;
    for (int gb = 1; gb <= 12; gb++) {
        const double groups = (double)(1u << gb);
        if ((double)n / groups * 2 > 128 * 1024) continue;
        double pairs = 0;
        for (int k = 0; k <= h && k <= gb; k++) {
            double ck = 1;
            for (int i = 0; i < k; i++) ck = ck * (gb - i) / (i + 1);
            pairs += ck;
        }
        const double cost = 0.84 * pairs + 0.3 * groups * pairs / (double)(nq ? nq : 1);
        if (best_cost < 0 || cost < best_cost) {
            best = gb;
            best_cost = cost;
        }
    }
    return best;
}

/* Append every hit of `from` to `to` and free `from`. */
static int hits_move(HitVec *to, HitVec *from) {
    if (!to->v) {
        *to = *from;
    } else if (from->len) {
        if (to->len + from->len > to->cap) {
            Hit *v = (Hit *)realloc(to->v, (to->len + from->len) * sizeof(Hit));
            if (!v) return -1;
            to->v = v;
            to->cap = to->len + from->len;
        }
        memcpy(to->v + to->len, from->v, from->len * sizeof(Hit));
        to->len += from->len;
        free(from->v);
    } else {
        free(from->v);
    }
    from->v = NULL;
    from->len = from->cap = 0;
    return 0;
}

/* The whole batched search, GIL released: every query against every segment, the ones with
 * tables through them (thresholds t, when use_tables), the others by linear scan. gbits: the
 * group size (0: chosen here); join: -1 to decide per chunk, 0 never, 1 always; portable: the
 * kernels without AVX-512 even where it is there. Hits are appended to outs[q], unsorted.
 * Returns -1 on out-of-memory. */
static int batch_search(const Segment *segs, size_t nseg, const uint8_t *qs, size_t nq,
                        const int *t, int use_tables, int radius, int nw, int gbits, int join,
                        int portable, HitVec *outs) {
    if (nq == 0) return 0;
    Plan p;
    memset(&p, 0, sizeof p);
    Worker ws[LK_MAX_WORKERS];
    memset(ws, 0, sizeof ws);
    if (nw > LK_MAX_WORKERS) nw = LK_MAX_WORKERS;
    const size_t sub = nq < LK_SUB_BATCH ? nq : LK_SUB_BATCH;
    /* the largest segment searched through tables (and its rows); whether any has paired ones */
    size_t n_tables = 0;
    const Segment *largest = NULL;
    int paired = 0, tmax = -1;
    for (int c = 0; c < LK_NCHUNKS; c++) {
        p.t[c] = use_tables ? t[c] : -1;
        if (p.t[c] > tmax) tmax = p.t[c];
    }
    for (size_t i = 0; i < nseg; i++) {
        if (!use_tables || !segs[i].dirs) continue;
        if (segs[i].pdirs) paired = 1;
        if (segs[i].n > n_tables) {
            n_tables = segs[i].n;
            largest = &segs[i];
        }
    }
    if (tmax < 0) n_tables = 0;
    if (gbits <= 0)
        gbits = n_tables ? choose_group_bits(n_tables, sub, tmax, table_within(largest, 0, tmax))
                         : 8;
    p.unit = portable ? table_unit_generic : g_table_unit;
    p.segs = segs;
    p.radius = radius;
    p.gbits = gbits;
    p.lbits = LK_DIR_BITS - gbits;
    const uint32_t ngroups = 1u << gbits;
    const size_t nbuckets = (size_t)1 << p.lbits;
    /* a query adds at most 2^lbits visits before the queue is flushed */
    const size_t vcap = LK_VISIT_FLUSH + nbuckets;
    const uint32_t per_chunk = ngroups < LK_UNITS_PER_CHUNK ? ngroups : LK_UNITS_PER_CHUNK;
    const size_t max_units =
        nseg * ((size_t)LK_NTABLES * per_chunk + sub / LK_LINEAR_UNIT + 1) + 1;
    int rc = -1;

    p.units = (Unit *)malloc(max_units * sizeof(Unit));
    p.gmask = (uint16_t *)malloc(((size_t)ngroups + nbuckets) * sizeof(uint16_t));
    p.gpop = (uint8_t *)malloc((size_t)ngroups + nbuckets);
    p.lvisit = (uint64_t *)malloc((size_t)(tmax + 2) * nbuckets * sizeof(uint64_t));
    if (!p.units || !p.gmask || !p.gpop || !p.lvisit) goto done;
    p.lmask = p.gmask + ngroups;
    p.lpop = p.gpop + ngroups;
    masks_by_popcount(gbits, p.gmask, p.gpop, p.gupto);
    masks_by_popcount(p.lbits, p.lmask, p.lpop, p.lupto);
    for (int rem = 0; rem <= tmax; rem++)
        for (uint32_t j = 0; j < p.lupto[rem < 16 ? rem : 16]; j++)
            p.lvisit[((size_t)rem << p.lbits) + j] = visit_pack(p.lmask[j], rem - p.lpop[j], 0, 0);
    for (int tb = 0; tb < LK_NTABLES; tb++) {
        const int c = tb < LK_NCHUNKS ? tb : tb - LK_NCHUNKS, tc = p.t[c];
        if (!n_tables || tc < 0 || (tb >= LK_NCHUNKS && !(paired && tc >= 1))) continue;
        const int h = table_within(largest, tb, tc);
        p.join[tb] = join < 0 ? use_join(n_tables, sub, tc, h) : join;
        /* streaming a group in pays when its lines are visited about once or more (a visit
         * reads a line, or the whole bucket when h < t); a sparse batch touches only the lines
         * it visits */
        const double per_bucket = (double)n_tables / LK_NBUCKETS / 32;
        const double lines = h < tc && per_bucket > 1 ? per_bucket : 1;
        p.stream[tb] = (double)sub * g_upto[h < 16 ? h : 16] * lines >= (double)n_tables / 32;
        p.qdir[tb] = (uint32_t *)malloc(((size_t)ngroups + 1) * sizeof(uint32_t));
        p.qval[tb] = (uint32_t *)malloc(sub * sizeof(uint32_t));
        p.qidx[tb] = (uint32_t *)malloc(sub * sizeof(uint32_t));
        if (!p.qdir[tb] || !p.qval[tb] || !p.qidx[tb]) goto done;
    }
    for (int i = 0; i < nw; i++) {
        ws[i].plan = &p;
        ws[i].cand = (BatchCand *)malloc(LK_CAND_CAP * sizeof(BatchCand));
        ws[i].hits = (uint32_t *)malloc((LK_PIECE + LK_WINDOW) * sizeof(uint32_t));
        ws[i].vis = (uint64_t *)malloc(2 * vcap * sizeof(uint64_t));
        ws[i].vcount = (uint32_t *)malloc((4 * nbuckets + 1) * sizeof(uint32_t));
        ws[i].seen = (uint64_t *)calloc(1024, sizeof(uint64_t));
        ws[i].jp = (uint64_t *)malloc(sub * sizeof(uint64_t));
        ws[i].jhead = (uint16_t *)malloc(LK_JOIN_CHAINS * sizeof(uint16_t));
        ws[i].jnext = (uint16_t *)malloc(sub * sizeof(uint16_t));
        if (i > 0) ws[i].outs = (HitVec *)calloc(sub, sizeof(HitVec));
        if (!ws[i].cand || !ws[i].hits || !ws[i].vis || !ws[i].vcount || !ws[i].seen ||
            !ws[i].jp || !ws[i].jhead || !ws[i].jnext || (i > 0 && !ws[i].outs))
            goto done;
        memset(ws[i].jhead, 0xff, LK_JOIN_CHAINS * sizeof(uint16_t));
        ws[i].vis2 = ws[i].vis + vcap;
    }

    for (size_t b0 = 0; b0 < nq; b0 += sub) {
        const size_t nb = nq - b0 < sub ? nq - b0 : sub;
        p.qs = qs + b0 * LK_CODE_BYTES;
        p.nq = nb;
        if (n_tables) batch_prepare(&p);
        p.nunits = 0;
        for (size_t i = 0; i < nseg; i++) {
            if (segs[i].n == 0) continue;
            if (n_tables && segs[i].dirs) {
                for (int tb = 0; tb < LK_NTABLES; tb++) {
                    const int c = tb < LK_NCHUNKS ? tb : tb - LK_NCHUNKS;
                    if (p.t[c] < 0 || (tb >= LK_NCHUNKS && !paired_chunk(&segs[i], p.t[c])))
                        continue;
                    for (uint32_t u = 0; u < per_chunk; u++) {
                        Unit *un = &p.units[p.nunits++];
                        un->seg = (int32_t)i;
                        un->table = tb;
                        un->lo = (uint32_t)((uint64_t)ngroups * u / per_chunk);
                        un->hi = (uint32_t)((uint64_t)ngroups * (u + 1) / per_chunk);
                    }
                }
            } else {
                for (size_t lo = 0; lo < nb; lo += LK_LINEAR_UNIT) {
                    Unit *un = &p.units[p.nunits++];
                    un->seg = (int32_t)i;
                    un->table = -1;
                    un->lo = (uint32_t)lo;
                    un->hi = (uint32_t)(nb - lo < LK_LINEAR_UNIT ? nb : lo + LK_LINEAR_UNIT);
                }
            }
        }
        ws[0].outs = outs + b0;
        if (batch_run(&p, ws, nw) < 0) goto done;
        for (int i = 1; i < nw; i++)
            for (size_t q = 0; q < nb; q++)
                if (hits_move(&outs[b0 + q], &ws[i].outs[q]) < 0) goto done;
    }
    rc = 0;

done:
    for (int i = 0; i < nw; i++) {
        free(ws[i].cand);
        free(ws[i].hits);
        free(ws[i].vis);
        free(ws[i].vcount);
        free(ws[i].seen);
        free(ws[i].jp);
        free(ws[i].jhead);
        free(ws[i].jnext);
        if (i > 0 && ws[i].outs) {
            for (size_t q = 0; q < sub; q++) free(ws[i].outs[q].v);
            free(ws[i].outs);
        }
    }
    for (int tb = 0; tb < LK_NTABLES; tb++) {
        free(p.qdir[tb]);
        free(p.qval[tb]);
        free(p.qidx[tb]);
    }
    free(p.units);
    free(p.lvisit);
    free(p.gmask);
    free(p.gpop);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Buffer parsing                                                                              */

typedef struct {
    Py_buffer views[9]; /* a segment: codes, ids, alive and up to six tables */
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

/* seg = (codes, ids, alive, n, dirs | None, lows | None, slots | None
 *        [, pdirs | None, plows | None, pslots | None])   (paired tables: with dirs only) */
static int parse_segment(PyObject *tup, Segment *sg, Views *v) {
    if (!PyTuple_Check(tup) || (PyTuple_GET_SIZE(tup) != 7 && PyTuple_GET_SIZE(tup) != 10)) {
        PyErr_SetString(PyExc_TypeError, "segment must be a 7- or 10-tuple");
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
        PyObject *pdirs = PyTuple_GET_SIZE(tup) == 10 ? PyTuple_GET_ITEM(tup, 7) : Py_None;
        if (pdirs != Py_None) {
            if (!(sg->pdirs = take(v, pdirs, (size_t)LK_NCHUNKS * LK_DIR_LEN * 4, 0, "pdirs")))
                return -1;
            if (!(sg->plows = take(v, PyTuple_GET_ITEM(tup, 8),
                                   ((size_t)LK_NCHUNKS * sg->n + LK_LOW_PAD) * 2, 0, "plows")))
                return -1;
            if (!(sg->pslots = take(v, PyTuple_GET_ITEM(tup, 9), (size_t)LK_NCHUNKS * sg->n * 4,
                                    0, "pslots")))
                return -1;
        }
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

/* thresholds: None (no table search) or one limit per chunk that covers the radius. Returns 1
 * when the tables are to be used, 0 for None, -1 with an exception set. */
static int parse_thresholds(PyObject *tobj, int radius, int *t) {
    if (tobj == Py_None) return 0;
    PyObject *fast = PySequence_Fast(tobj, "thresholds must be a sequence");
    if (!fast) return -1;
    if (PySequence_Fast_GET_SIZE(fast) != LK_NCHUNKS) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "need one threshold per chunk");
        return -1;
    }
    int sum = 0;
    for (int c = 0; c < LK_NCHUNKS; c++) {
        long x = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, c));
        if (x == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        if (x < -1 || x > LK_MAX_THRESHOLD) {
            Py_DECREF(fast);
            PyErr_SetString(PyExc_ValueError, "thresholds must lie in -1..32");
            return -1;
        }
        t[c] = (int)x;
        sum += (int)x + 1;
    }
    Py_DECREF(fast);
    /* The pigeonhole argument needs sum(t + 1) >= radius + 1; anything less misses matches. */
    if (sum < radius + 1) {
        PyErr_SetString(PyExc_ValueError, "thresholds do not cover the radius");
        return -1;
    }
    return 1;
}

/* What both searches take, validated and borrowed: queries, thresholds, segments, and one
 * result vector per query. After a failed `call_open` (exception set), `call_close` is still
 * the way out. */
typedef struct {
    Py_ssize_t nq, nseg;
    int t[LK_NCHUNKS];
    int use_tables;
    Segment *sg;
    Views *views;
    HitVec *outs;
    Py_buffer qbuf;
    int have_q;
} Call;

static int call_open(Call *c, PyObject *qobj, Py_ssize_t nq, int radius, PyObject *tobj,
                     PyObject *segs) {
    memset(c, 0, sizeof *c);
    if (nq < 0 || radius < 0 || radius > 8 * LK_CODE_BYTES) {
        PyErr_SetString(PyExc_ValueError, "need nq >= 0 and 0 <= radius <= 256");
        return -1;
    }
    c->nq = nq;
    c->use_tables = parse_thresholds(tobj, radius, c->t);
    if (c->use_tables < 0) return -1;
    c->nseg = PyTuple_GET_SIZE(segs);
    c->sg = (Segment *)calloc((size_t)c->nseg + 1, sizeof(Segment));
    c->views = (Views *)calloc((size_t)c->nseg + 1, sizeof(Views));
    c->outs = (HitVec *)calloc((size_t)nq + 1, sizeof(HitVec));
    if (!c->sg || !c->views || !c->outs) {
        PyErr_NoMemory();
        return -1;
    }
    if (PyObject_GetBuffer(qobj, &c->qbuf, PyBUF_SIMPLE) < 0) return -1;
    c->have_q = 1;
    if ((size_t)c->qbuf.len < (size_t)nq * LK_CODE_BYTES) {
        PyErr_SetString(PyExc_ValueError, "queries buffer too small");
        return -1;
    }
    for (Py_ssize_t i = 0; i < c->nseg; i++)
        if (parse_segment(PyTuple_GET_ITEM(segs, i), &c->sg[i], &c->views[i]) < 0) return -1;
    return 0;
}

/* Each query's hits by id (runs without the GIL). */
static void call_sort(Call *c) {
    for (Py_ssize_t qi = 0; qi < c->nq; qi++)
        if (c->outs[qi].len > 1) qsort(c->outs[qi].v, c->outs[qi].len, sizeof(Hit), hit_cmp);
}

/* The result list when `ok` (else NULL, with `PyErr_NoMemory` unless an exception is set),
 * with everything borrowed released. */
static PyObject *call_close(Call *c, int ok) {
    PyObject *result = NULL;
    if (ok)
        result = build_result(c->outs, (size_t)c->nq);
    else if (!PyErr_Occurred())
        PyErr_NoMemory();
    if (c->have_q) PyBuffer_Release(&c->qbuf);
    if (c->views)
        for (Py_ssize_t i = 0; i <= c->nseg; i++) views_release(&c->views[i]);
    if (c->outs)
        for (Py_ssize_t qi = 0; qi < c->nq; qi++) free(c->outs[qi].v);
    free(c->outs);
    free(c->views);
    free(c->sg);
    return result;
}

static PyObject *py_search(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *qobj, *tobj, *segs;
    Py_ssize_t nq;
    int radius;
    if (!PyArg_ParseTuple(args, "OniOO!", &qobj, &nq, &radius, &tobj, &PyTuple_Type, &segs))
        return NULL;
    Call c;
    if (call_open(&c, qobj, nq, radius, tobj, segs) < 0) return call_close(&c, 0);

    int oom = 0;
    Py_BEGIN_ALLOW_THREADS
    Scratch sc = {0};
    if (c.use_tables && scratch_init(&sc, c.t) < 0) oom = 1;
    const uint8_t *qs = (const uint8_t *)c.qbuf.buf;
    for (Py_ssize_t i = 0; i < c.nseg && !oom; i++) {
        if (c.use_tables && c.sg[i].dirs) {
            for (Py_ssize_t qi = 0; qi < nq && !oom; qi++)
                if (table_query(&c.sg[i], qs + qi * LK_CODE_BYTES, c.t, radius, &sc,
                                &c.outs[qi]) < 0)
                    oom = 1;
        } else if (linear_scan(&c.sg[i], qs, (size_t)nq, radius, c.outs) < 0) {
            oom = 1;
        }
    }
    if (!oom) call_sort(&c);
    scratch_free(&sc);
    Py_END_ALLOW_THREADS
    return call_close(&c, !oom);
}


/* search_batch(queries, nq, radius, thresholds, segments, workers, group_bits=0, join=-1,
 * portable=0): as search, by the batched algorithm on `workers` threads. The last three pick
 * the group size (0: by the cost model), the join of exact lookups (-1: by the cost model, 0
 * never, 1 always) and the kernels (1: portable ones even where AVX-512 is there); tests use
 * them to reach every path. */
static PyObject *py_search_batch(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *qobj, *tobj, *segs;
    Py_ssize_t nq;
    int radius, workers, gbits = 0, join = -1, portable = 0;
    if (!PyArg_ParseTuple(args, "OniOO!i|iip", &qobj, &nq, &radius, &tobj, &PyTuple_Type, &segs,
                          &workers, &gbits, &join, &portable))
        return NULL;
    if (workers < 1 || gbits < 0 || gbits > LK_DIR_BITS || join < -1 || join > 1) {
        PyErr_SetString(PyExc_ValueError,
                        "need workers >= 1, 0 <= group_bits <= 16 and -1 <= join <= 1");
        return NULL;
    }
    Call c;
    if (call_open(&c, qobj, nq, radius, tobj, segs) < 0) return call_close(&c, 0);

    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = batch_search(c.sg, (size_t)c.nseg, (const uint8_t *)c.qbuf.buf, (size_t)nq, c.t,
                      c.use_tables, radius, workers, gbits, join, portable, c.outs);
    if (rc == 0) call_sort(&c);
    Py_END_ALLOW_THREADS
    return call_close(&c, rc == 0);
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

/* part: the top-byte histogram of this chunk's key, shifted by one (part[b + 1] = count of b).
 * The key is the chunk, or with `paired` the chunk with its halves swapped (paired tables). */
static int build_one(const uint8_t *codes, size_t n, int chunk, int paired, size_t *part,
                     uint32_t *dir, uint16_t *low, uint32_t *slot, BuildScratch *bs) {
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
        uint32_t v = load_le32(base + i * LK_CODE_BYTES);
        uint64_t w = paired ? (v >> 16) | (v << 16) : v;
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

/* build_tables(codes, n, dirs, lows, slots, chunks, paired=0): build the listed chunks (their
 * paired tables with `paired`), reusing one set of scratch buffers (fresh memory is slow to fault
 * in on some VMs: ~7 us per 4 KiB page here).
 * dirs: chunks x 65537 uint32; lows: chunks x n (+ pad) uint16; slots: chunks x n uint32. */
static PyObject *py_build_tables(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cobj, *dobj, *lobj, *sobj, *chunks_obj;
    Py_ssize_t n;
    int paired = 0;
    if (!PyArg_ParseTuple(args, "OnOOOO|p", &cobj, &n, &dobj, &lobj, &sobj, &chunks_obj,
                          &paired))
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
        /* one pass over the codes counts the top bytes of every key this call builds (a
         * paired table's key starts with the chunk's byte 1) */
        const int top = paired ? 1 : 3;
        size_t(*part)[257] = (size_t(*)[257])calloc(LK_NCHUNKS, sizeof *part);
        if (!part) rc = -1;
        for (size_t r = 0; r < un && rc == 0; r++)
            for (int i = 0; i < nchunks; i++)
                part[i][codes[r * LK_CODE_BYTES + 4 * chunks[i] + top] + 1]++;
        for (int i = 0; i < nchunks && rc == 0; i++) {
            int c = chunks[i];
            rc = build_one(codes, un, c, paired, part[i], dirs + (size_t)c * LK_DIR_LEN,
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
    {"search_batch", py_search_batch, METH_VARARGS,
     "search_batch(queries, nq, radius, thresholds, segments, workers, group_bits=0, join=-1,\n"
     "portable=False) -> as search, by the batched algorithm on `workers` threads.\n"
     "group_bits: buckets per group 2**(16 - group_bits) (0: chosen by the cost model); join:\n"
     "exact lookups joined (-1: by the cost model, 0: never, 1: always); portable: no AVX-512."},
    {"build_tables", py_build_tables, METH_VARARGS,
     "build_tables(codes, n, dirs, lows, slots, chunks, paired=False): fill the tables (or\n"
     "with paired, the paired tables: keyed by the low half) of the listed chunks."},
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
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("bmi2")) {
        g_table_unit = table_unit_avx512;
        g_batch_kernel = "avx512";
    }
#endif
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "NCHUNKS", LK_NCHUNKS) < 0 ||
        PyModule_AddIntConstant(m, "DIR_BITS", LK_DIR_BITS) < 0 ||
        PyModule_AddIntConstant(m, "DIR_LEN", LK_DIR_LEN) < 0 ||
        PyModule_AddIntConstant(m, "LOW_PAD", LK_LOW_PAD) < 0 ||
        PyModule_AddIntConstant(m, "MAX_THRESHOLD", LK_MAX_THRESHOLD) < 0 ||
        PyModule_AddStringConstant(m, "KERNEL", g_kernel) < 0 ||
        PyModule_AddStringConstant(m, "BATCH_KERNEL", g_batch_kernel) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/*
 * PDQ perceptual hash: a bit-exact C port of Meta's reference (ThreatExchange
 * pdq/cpp/hashing/pdqhashing.cpp and pdq/cpp/downscaling/downscaling.cpp).
 *
 * Why bit-exact: hash lists are exchanged between platforms, and the reference's
 * rule is "identical pixels give the identical hash". Every float operation that
 * contributes to the hash happens in the same order and precision as in the
 * reference (built with -ffp-contract=off so no multiply-add is fused), so the same
 * pixels give the same 256 bits as the `pdqhash` binding.
 *
 * Why faster than the reference, with the same arithmetic:
 *  - luma comes from three 256-entry tables of the exact double products;
 *  - box filters along rows run on strips of STRIP rows at once: independent running
 *    sums side by side, and with SSE2 4 x 4 blocks transposed in registers so that
 *    each vector lane carries one row's sum (same operations, same rounding);
 *  - box filters along columns keep one running sum per column and sweep the image
 *    row by row (sequential memory instead of a stride of `cols` per element);
 *  - the second pass only computes what the 64 x 64 decimation samples: the row
 *    filter divides only at the (at most) 64 sampled columns, and the final column
 *    filter runs over those columns only. Each value it does compute goes through
 *    exactly the reference's additions, subtractions and division;
 *  - nothing full-size is allocated: the first row filter runs strip by strip on
 *    demand into a ring just deep enough for the column window, and the first column
 *    filter feeds the second row filter strip by strip, so the data stays in cache.
 *
 * Module functions (all release the GIL while hashing):
 *   hash_rgb(buf, rows, cols, dihedral=False) -> (bytes, quality)
 *   hash_luma(buf, rows, cols, dihedral=False) -> (bytes, quality)
 *   hash_buffer64(buf, dihedral=False) -> (bytes, quality)
 * The bytes are 32 per hash (8 * 32 with dihedral=True, in the order original,
 * rotate90, rotate180, rotate270, flipx, flipy, flip_plus1, flip_minus1); each
 * hash is `bytes.fromhex(reference_hex)`, so bit k of the reference Hash256 is bit
 * (k & 7) of byte 31 - (k >> 3).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define PDQ_MIN_DIM 5
#define PDQ_HASH_BYTES 32
#define PDQ_VARIANTS 8
#define PDQ_PI 3.14159265358979323846
/* Rows filtered together along rows: enough independent sums to fill the vector
 * units, few enough that a strip of a wide image stays in cache. */
#define STRIP 8

/* 16 x 64 DCT-II basis rows 1..16, built once at import (see build_tables). */
static float dct_matrix[16][64];
/* The same matrix transposed, so the second DCT product runs over contiguous memory. */
static float dct_matrix_t[64][16];
/* v * 0.299, v * 0.587 and v * 0.114 in double for every byte value v. */
static double luma_r[256], luma_g[256], luma_b[256];

typedef struct {
    uint8_t hashes[PDQ_VARIANTS][PDQ_HASH_BYTES];
    int quality;
} pdq_result;

typedef enum { PDQ_OK = 0, PDQ_NO_MEMORY, PDQ_NOT_FINITE } pdq_status;

/* ------------------------------------------------------------------------ */
/* Input planes                                                              */

/* What is hashed: either interleaved RGB bytes or a float luma plane (never written). */
typedef struct {
    const uint8_t *rgb;
    const float *luma;
    size_t rows;
    size_t cols;
} pdq_source;

/* The `pdqhash` binding computes luma with NumPy in double precision, left to right,
 * then rounds to float32; the C++ hasher's own float coefficients would differ in
 * the last bit, and the binding is the oracle users compare against. The tables
 * hold the same double products, so the sums are identical. */
static inline float luma_of(const uint8_t *px) {
    return (float)(luma_r[px[0]] + luma_g[px[1]] + luma_b[px[2]]);
}

/* Returns STRIP row-major rows i0.. of the luma plane: straight from a float input
 * when the strip is whole, else computed or copied into `strip`. Rows past the
 * plane's end are zero; their filtered values are never used. Clears *finite when a
 * float input holds NaN or infinity, which would make every later step meaningless. */
static const float *luma_strip(const pdq_source *src, size_t i0, float *restrict strip,
                               int *finite) {
    size_t cols = src->cols;
    size_t nr = src->rows - i0 < STRIP ? src->rows - i0 : STRIP;
    if (src->rgb != NULL) {
        const uint8_t *px = src->rgb + i0 * cols * 3;
        for (size_t p = 0; p < nr * cols; p++) {
            strip[p] = luma_of(px + 3 * p);
        }
    } else {
        const float *in = src->luma + i0 * cols;
        int ok = 1;
        for (size_t p = 0; p < nr * cols; p++) {
            ok &= isfinite(in[p]) ? 1 : 0;
        }
        *finite &= ok;
        if (nr == STRIP) {
            return in;
        }
        memcpy(strip, in, nr * cols * sizeof(float));
    }
    memset(strip + nr * cols, 0, (STRIP - nr) * cols * sizeof(float));
    return strip;
}

/* ------------------------------------------------------------------------ */
/* Jarosz filter: two passes of (box along rows, box along columns)          */
/*                                                                           */
/* A box of `window` samples around each output, shrinking at the ends. The  */
/* reference's four phases are kept: (1) half-1 adds with no output, (2)     */
/* window-half+1 adds each followed by an output, (3) n-window steps adding  */
/* the right sample and then subtracting the left one, (4) half-1 steps      */
/* subtracting only. The running sum is a float and each output is the      */
/* float division sum / count.                                               */

/* Window per pass: half of the span one output sample covers (old / 64), rounded up. */
static int jarosz_window(size_t old_dimension) { return (int)((old_dimension + 127) / 128); }

/* Where a row filter's outputs go: every output of row r at full + r * cols, or
 * (when `sel` is set) only the outputs at the m increasing columns sel[c], at
 * sampled[r * m + c]. The second pass needs only the columns the decimation keeps,
 * so it skips the other divisions and stores. */
typedef struct {
    float *full;
    const size_t *sel;
    size_t m;
    float *sampled;
} row_outputs;

/* Output position oi of each of the STRIP rows, whose sums are sum[r] over count
 * samples; `next` is the index into `sel` of the next sampled column. */
static inline void emit_outputs(const row_outputs *o, size_t cols, size_t oi, const float *sum,
                                int count, size_t *next) {
    float c = (float)count;
    if (o->sel == NULL) {
        for (int r = 0; r < STRIP; r++) o->full[r * cols + oi] = sum[r] / c;
    } else if (*next < o->m && o->sel[*next] == oi) {
        for (int r = 0; r < STRIP; r++) o->sampled[r * o->m + *next] = sum[r] / c;
        (*next)++;
    }
}

#if defined(__SSE2__) && !defined(PDQ_NO_SIMD)
#define PDQ_SSE 1
#include <emmintrin.h>

/* Phase 3 (add right, subtract left, output) for 4 rows and `steps` positions, a
 * multiple of 4. 4 x 4 blocks are transposed in registers so that one vector holds
 * the 4 rows' samples at one position: each lane then performs exactly the scalar
 * sequence of one row (add, subtract, divide, each rounded to float), four rows at a
 * time. `in`/`full` point at row 0 of the group; `sampled` at its row 0 too. */
static void phase3_rows4(const float *in, size_t cols, size_t ri, size_t li, size_t oi,
                         size_t steps, float *sum4, int count, const row_outputs *o,
                         size_t sampled_row0, size_t *next) {
    const float *r0 = in, *r1 = in + cols, *r2 = in + 2 * cols, *r3 = in + 3 * cols;
    __m128 s = _mm_loadu_ps(sum4);
    const __m128 c = _mm_set1_ps((float)count);
    for (size_t t = 0; t < steps; t += 4) {
        __m128 a0 = _mm_loadu_ps(r0 + ri + t), a1 = _mm_loadu_ps(r1 + ri + t);
        __m128 a2 = _mm_loadu_ps(r2 + ri + t), a3 = _mm_loadu_ps(r3 + ri + t);
        __m128 b0 = _mm_loadu_ps(r0 + li + t), b1 = _mm_loadu_ps(r1 + li + t);
        __m128 b2 = _mm_loadu_ps(r2 + li + t), b3 = _mm_loadu_ps(r3 + li + t);
        _MM_TRANSPOSE4_PS(a0, a1, a2, a3);
        _MM_TRANSPOSE4_PS(b0, b1, b2, b3);
        __m128 s0 = _mm_sub_ps(_mm_add_ps(s, a0), b0);
        __m128 s1 = _mm_sub_ps(_mm_add_ps(s0, a1), b1);
        __m128 s2 = _mm_sub_ps(_mm_add_ps(s1, a2), b2);
        __m128 s3 = _mm_sub_ps(_mm_add_ps(s2, a3), b3);
        s = s3;
        if (o->sel == NULL) {
            __m128 o0 = _mm_div_ps(s0, c), o1 = _mm_div_ps(s1, c);
            __m128 o2 = _mm_div_ps(s2, c), o3 = _mm_div_ps(s3, c);
            _MM_TRANSPOSE4_PS(o0, o1, o2, o3);
            float *out = o->full + oi + t;
            _mm_storeu_ps(out, o0);
            _mm_storeu_ps(out + cols, o1);
            _mm_storeu_ps(out + 2 * cols, o2);
            _mm_storeu_ps(out + 3 * cols, o3);
        } else {
            while (*next < o->m && o->sel[*next] < oi + t + 4) {
                size_t k = o->sel[*next] - (oi + t);
                __m128 sk = k == 0 ? s0 : k == 1 ? s1 : k == 2 ? s2 : s3;
                float lanes[4];
                _mm_storeu_ps(lanes, _mm_div_ps(sk, c));
                for (size_t r = 0; r < 4; r++) {
                    o->sampled[(sampled_row0 + r) * o->m + *next] = lanes[r];
                }
                (*next)++;
            }
        }
    }
    _mm_storeu_ps(sum4, s);
}
#endif

/* Box filter along STRIP row-major rows at once (row r at in + r * cols). Each row's
 * sum is its own chain of float operations, exactly the reference's; running
 * several rows side by side keeps the processor busy where one chain would wait on
 * each addition, and lets SIMD lanes each carry one row. */
static void box_strip(const float *restrict in, size_t cols, int window, const row_outputs *o) {
    int half = (window + 2) / 2;
    size_t phase3 = cols - (size_t)window;
    size_t ri = 0, li = 0, oi = 0, next = 0;
    float sum[STRIP] = {0};
    int count = 0;
    for (int i = 0; i < half - 1; i++, ri++) {
        for (int r = 0; r < STRIP; r++) sum[r] += in[r * cols + ri];
        count++;
    }
    for (int i = 0; i < window - half + 1; i++, ri++, oi++) {
        for (int r = 0; r < STRIP; r++) sum[r] += in[r * cols + ri];
        count++;
        emit_outputs(o, cols, oi, sum, count, &next);
    }
    size_t done = 0;
#ifdef PDQ_SSE
    done = phase3 - phase3 % 4;
    if (done > 0) {
        size_t next_group = next;
        for (int g = 0; g < STRIP; g += 4) {
            row_outputs og = *o;
            if (og.full != NULL) og.full += (size_t)g * cols;
            next_group = next;
            phase3_rows4(in + (size_t)g * cols, cols, ri, li, oi, done, sum + g, count, &og,
                         (size_t)g, &next_group);
        }
        next = next_group;
        ri += done;
        li += done;
        oi += done;
    }
#endif
    for (size_t i = done; i < phase3; i++, ri++, li++, oi++) {
        for (int r = 0; r < STRIP; r++) {
            sum[r] += in[r * cols + ri];
            sum[r] -= in[r * cols + li];
        }
        emit_outputs(o, cols, oi, sum, count, &next);
    }
    for (int i = 0; i < half - 1; i++, li++, oi++) {
        for (int r = 0; r < STRIP; r++) sum[r] -= in[r * cols + li];
        count--;
        emit_outputs(o, cols, oi, sum, count, &next);
    }
}

/* Supplies row i of a column filter's input (rows are asked for in increasing order,
 * each at most twice: once to add it, once to subtract it `window` rows later). */
typedef const float *(*row_source)(void *ctx, size_t i);

/* Where a column filter writes its next output row (rows come in order). */
typedef float *(*row_sink)(void *ctx);

static void add_row(float *restrict sums, const float *restrict row, size_t cols) {
    for (size_t j = 0; j < cols; j++) sums[j] += row[j];
}

static void add_row_out(float *restrict sums, const float *restrict row, float *restrict out,
                        size_t cols, int count) {
    float c = (float)count;
    for (size_t j = 0; j < cols; j++) {
        sums[j] += row[j];
        out[j] = sums[j] / c;
    }
}

static void add_sub_row_out(float *restrict sums, const float *restrict add,
                            const float *restrict sub, float *restrict out, size_t cols,
                            int count) {
    float c = (float)count;
    for (size_t j = 0; j < cols; j++) {
        float s = sums[j] + add[j];
        s -= sub[j];
        sums[j] = s;
        out[j] = s / c;
    }
}

static void sub_row_out(float *restrict sums, const float *restrict row, float *restrict out,
                        size_t cols, int count) {
    float c = (float)count;
    for (size_t j = 0; j < cols; j++) {
        sums[j] -= row[j];
        out[j] = sums[j] / c;
    }
}

/* The reference filters each column separately with a stride of `cols`, which misses
 * the cache on every element. Here one running sum per column advances row by row:
 * each column still sees the same additions, subtractions and divisions in the same
 * order, so the output is identical, but memory is read sequentially. */
static void box_along_cols(size_t rows, size_t cols, int window, float *sums, row_source source,
                           row_sink sink, void *ctx) {
    int half = (window + 2) / 2;
    size_t phase3 = rows - (size_t)window;
    size_t ri = 0, li = 0;
    int count = 0;
    memset(sums, 0, cols * sizeof(float));
    for (int i = 0; i < half - 1; i++) {
        add_row(sums, source(ctx, ri++), cols);
        count++;
    }
    for (int i = 0; i < window - half + 1; i++) {
        count++;
        add_row_out(sums, source(ctx, ri++), sink(ctx), cols, count);
    }
    for (size_t i = 0; i < phase3; i++) {
        const float *add = source(ctx, ri++);
        const float *sub = source(ctx, li++);
        add_sub_row_out(sums, add, sub, sink(ctx), cols, count);
    }
    for (int i = 0; i < half - 1; i++) {
        count--;
        sub_row_out(sums, source(ctx, li++), sink(ctx), cols, count);
    }
}

/* Scratch for hashing one rows x cols plane. No full-size buffer: the first row
 * filter's output lives in a ring of rows just large enough for the column filter's
 * window, so the working set stays in cache. */
typedef struct {
    const pdq_source *src;
    size_t rows, cols;
    int window_along_rows, window_along_cols;
    int finite;
    float *ring;    /* ring_rows x cols: first row filter's output, row i in slot i % ring_rows */
    size_t ring_rows, rows_ready;
    float *strip_a; /* STRIP x cols: luma rows, when they must be computed or padded */
    float *strip_c; /* STRIP x cols: first column filter's output rows */
    float *sums;    /* cols running sums */
    float *narrow;  /* rows x m: second row filter at the sampled columns only */
    float *narrow2; /* rows x m: second column filter of `narrow` */
    size_t sel[64]; /* the distinct sampled columns, increasing */
    size_t m;
    size_t strip_fill, narrow_row;
    float sampled[STRIP * 64];
} pdq_work;

/* The decimation's sample index along an axis of length n: the centre of cell i. */
static size_t sample_index(int i, size_t n) { return (size_t)(((i + 0.5) * (double)n) / 64); }

/* Source of the first column filter: row i of the first row filter's output,
 * computing the next strip of STRIP rows into the ring when i reaches it. The ring
 * holds at least window + STRIP rows, so the strip never overwrites a row that is
 * still to be subtracted. */
static const float *ring_source(void *ctx, size_t i) {
    pdq_work *w = ctx;
    size_t cols = w->cols;
    if (i >= w->rows_ready) {
        /* Rows past the end of the plane land in ring slots of rows long done with. */
        size_t i0 = w->rows_ready;
        const float *luma = luma_strip(w->src, i0, w->strip_a, &w->finite);
        row_outputs o = {.full = w->ring + (i0 % w->ring_rows) * cols};
        box_strip(luma, cols, w->window_along_rows, &o);
        w->rows_ready += STRIP;
    }
    return w->ring + (i % w->ring_rows) * cols;
}

/* Runs the second row filter on the filled part of the strip and stores the sampled
 * outputs as rows of `narrow`; rows past the fill hold stale values, never stored. */
static void flush_strip(pdq_work *w) {
    if (w->strip_fill == 0) {
        return;
    }
    row_outputs o = {.sel = w->sel, .m = w->m, .sampled = w->sampled};
    box_strip(w->strip_c, w->cols, w->window_along_rows, &o);
    for (size_t r = 0; r < w->strip_fill; r++) {
        memcpy(w->narrow + (w->narrow_row + r) * w->m, w->sampled + r * w->m,
               w->m * sizeof(float));
    }
    w->narrow_row += w->strip_fill;
    w->strip_fill = 0;
}

/* Sink of the first column filter: collects STRIP output rows, row-filtering each
 * full strip before its space is reused. */
static float *strip_sink(void *ctx) {
    pdq_work *w = ctx;
    if (w->strip_fill == STRIP) {
        flush_strip(w);
    }
    return w->strip_c + (w->strip_fill++) * w->cols;
}

static const float *narrow_source(void *ctx, size_t i) {
    pdq_work *w = ctx;
    return w->narrow + i * w->m;
}

static float *narrow_sink(void *ctx) {
    pdq_work *w = ctx;
    return w->narrow2 + (w->narrow_row++) * w->m;
}

/* Blur and decimate as the reference's jaroszFilterFloat (two passes) followed by
 * decimateFloat, computing only the values the decimation keeps. Returns 0 on
 * non-finite input. */
static int jarosz_decimate(pdq_work *w, float out[64][64]) {
    /* Pass 1 along rows (on demand, into the ring) and along columns, feeding pass 2
     * along rows strip by strip. */
    w->rows_ready = 0;
    w->strip_fill = 0;
    w->narrow_row = 0;
    memset(w->strip_c, 0, STRIP * w->cols * sizeof(float));
    box_along_cols(w->rows, w->cols, w->window_along_cols, w->sums, ring_source, strip_sink, w);
    flush_strip(w);
    /* Pass 2 along columns, on the sampled columns only. */
    w->narrow_row = 0;
    box_along_cols(w->rows, w->m, w->window_along_cols, w->sums, narrow_source, narrow_sink, w);
    /* Decimate: output column j is the narrow planes' column c where sel[c] is its sample. */
    for (int j = 0, c = 0; j < 64; j++) {
        size_t inj = sample_index(j, w->cols);
        while (w->sel[c] != inj) c++;
        for (int i = 0; i < 64; i++) {
            out[i][j] = w->narrow2[sample_index(i, w->rows) * w->m + (size_t)c];
        }
    }
    return w->finite;
}

static void work_free(pdq_work *w) {
    float **buffers[] = {&w->ring, &w->strip_a, &w->strip_c, &w->sums, &w->narrow, &w->narrow2};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) {
        PyMem_RawFree(*buffers[i]);
        *buffers[i] = NULL;
    }
}

/* Allocates the scratch for a rows x cols plane (sizes checked by the caller). */
static int work_alloc(pdq_work *w, const pdq_source *src) {
    memset(w, 0, sizeof *w);
    size_t rows = src->rows, cols = src->cols;
    w->src = src;
    w->rows = rows;
    w->cols = cols;
    w->finite = 1;
    w->window_along_rows = jarosz_window(cols);
    w->window_along_cols = jarosz_window(rows);
    /* At least window + STRIP rows (see ring_source), a whole number of strips. */
    w->ring_rows = ((size_t)w->window_along_cols + 2 * STRIP - 1) / STRIP * STRIP;
    for (int j = 0; j < 64; j++) {
        size_t inj = sample_index(j, cols);
        if (w->m == 0 || w->sel[w->m - 1] != inj) {
            w->sel[w->m++] = inj;
        }
    }
    w->ring = PyMem_RawMalloc(w->ring_rows * cols * sizeof(float));
    w->strip_a = PyMem_RawMalloc(STRIP * cols * sizeof(float));
    w->strip_c = PyMem_RawMalloc(STRIP * cols * sizeof(float));
    w->sums = PyMem_RawMalloc(cols * sizeof(float));
    w->narrow = PyMem_RawMalloc(rows * w->m * sizeof(float));
    w->narrow2 = PyMem_RawMalloc(rows * w->m * sizeof(float));
    if (!w->ring || !w->strip_a || !w->strip_c || !w->sums || !w->narrow || !w->narrow2) {
        work_free(w);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* 64 x 64 buffer to hash                                                    */

/* Truncates like the reference's float-to-int conversion, but stays defined for
 * values no pixel data can produce (the C conversion of an out-of-range float is
 * undefined behaviour). */
static long long truncate_gradient(float x) {
    if (x > -1e15f && x < 1e15f) {
        return (long long)x;
    }
    return x > 0 ? (long long)1e15 : -(long long)1e15;
}

/* Sum of quantised neighbour differences: counts significant gradients, so a flat
 * or nearly flat image scores low and its hash is not trusted for matching. */
static int quality_metric(float a[64][64]) {
    long long gradient_sum = 0;
    for (int i = 0; i < 63; i++) {
        for (int j = 0; j < 64; j++) {
            long long d = truncate_gradient(((a[i][j] - a[i + 1][j]) * 100.0f) / 255.0f);
            gradient_sum += d < 0 ? -d : d;
        }
    }
    for (int i = 0; i < 64; i++) {
        for (int j = 0; j < 63; j++) {
            long long d = truncate_gradient(((a[i][j] - a[i][j + 1]) * 100.0f) / 255.0f);
            gradient_sum += d < 0 ? -d : d;
        }
    }
    long long quality = gradient_sum / 90;
    return quality > 100 ? 100 : (int)quality;
}

/* B = D A D^T restricted to frequencies 1..16 in each direction. Each output is a
 * float sum over k = 0..63 in increasing k, as in the reference; the loops are
 * ordered so the inner one runs over contiguous memory without changing that. */
static void dct64to16(float a[64][64], float out[16][16]) {
    float t[16][64];
    for (int i = 0; i < 16; i++) {
        for (int j = 0; j < 64; j++) {
            t[i][j] = 0.0f;
        }
        for (int k = 0; k < 64; k++) {
            float d = dct_matrix[i][k];
            for (int j = 0; j < 64; j++) {
                t[i][j] += d * a[k][j];
            }
        }
    }
    for (int i = 0; i < 16; i++) {
        for (int j = 0; j < 16; j++) {
            out[i][j] = 0.0f;
        }
        for (int k = 0; k < 64; k++) {
            float tik = t[i][k];
            for (int j = 0; j < 16; j++) {
                out[i][j] += tik * dct_matrix_t[k][j];
            }
        }
    }
}

/* Order-preserving map of a float onto an unsigned integer (total order, NaN last),
 * so selection below terminates whatever the values. */
static uint32_t float_key(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* The 128th smallest of 256 values: what the reference's Torben median returns for
 * n = 256 ((n + 1) / 2-th smallest). Found by quickselect on integer keys. */
static float median256(const float values[256]) {
    uint32_t keys[256];
    for (int i = 0; i < 256; i++) {
        keys[i] = float_key(values[i]);
    }
    int lo = 0, hi = 255;
    const int target = 127;
    while (lo < hi) {
        uint32_t pivot = keys[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (keys[i] < pivot) i++;
            while (keys[j] > pivot) j--;
            if (i <= j) {
                uint32_t tmp = keys[i];
                keys[i] = keys[j];
                keys[j] = tmp;
                i++;
                j--;
            }
        }
        if (target <= j) {
            hi = j;
        } else if (target >= i) {
            lo = i;
        } else {
            break;
        }
    }
    uint32_t k = keys[target];
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* One bit per coefficient: above the median or not. Bit k = i * 16 + j goes where
 * `bytes.fromhex` of the reference's hex puts it. */
static void bits_from_dct(float b[16][16], uint8_t out[PDQ_HASH_BYTES]) {
    float median = median256(&b[0][0]);
    memset(out, 0, PDQ_HASH_BYTES);
    for (int i = 0; i < 16; i++) {
        for (int j = 0; j < 16; j++) {
            if (b[i][j] > median) {
                int k = i * 16 + j;
                out[31 - (k >> 3)] |= (uint8_t)(1u << (k & 7));
            }
        }
    }
}

/* The DCT of a rotated or flipped image is the original's with rows and columns
 * swapped and/or every other one negated, so the 8 dihedral hashes cost one DCT. */
typedef enum { ORIGINAL, ROTATE90, ROTATE180, ROTATE270, FLIPX, FLIPY, FLIP_PLUS1, FLIP_MINUS1 } variant;

static void dihedral_dct(float a[16][16], variant v, float b[16][16]) {
    for (int i = 0; i < 16; i++) {
        for (int j = 0; j < 16; j++) {
            float x = a[i][j];
            switch (v) {
            case ORIGINAL: b[i][j] = x; break;
            case ROTATE90: b[j][i] = (j & 1) ? x : -x; break;
            case ROTATE180: b[i][j] = ((i + j) & 1) ? -x : x; break;
            case ROTATE270: b[j][i] = (i & 1) ? x : -x; break;
            case FLIPX: b[i][j] = (i & 1) ? x : -x; break;
            case FLIPY: b[i][j] = (j & 1) ? x : -x; break;
            case FLIP_PLUS1: b[j][i] = x; break;
            case FLIP_MINUS1: b[j][i] = ((i + j) & 1) ? -x : x; break;
            }
        }
    }
}

static void hash_from_buffer64(float buf[64][64], int dihedral, pdq_result *res) {
    float dct[16][16];
    res->quality = quality_metric(buf);
    dct64to16(buf, dct);
    bits_from_dct(dct, res->hashes[0]);
    if (dihedral) {
        float aux[16][16];
        for (int v = ROTATE90; v <= FLIP_MINUS1; v++) {
            dihedral_dct(dct, (variant)v, aux);
            bits_from_dct(aux, res->hashes[v]);
        }
    }
}

/* A plane to hash. The reference skips the filter for a 64 x 64 input in its
 * single-hash entry point only, not in its dihedral one (where a window of 1 is not
 * exactly the identity in float arithmetic); each is followed so that it agrees
 * with its counterpart in the binding. */
static pdq_status hash_source(const pdq_source *src, int dihedral, pdq_result *res) {
    float buf64[64][64];
    if (src->rows == 64 && src->cols == 64 && !dihedral) {
        int finite = 1;
        for (size_t p = 0; p < 64 * 64; p++) {
            float v = src->rgb != NULL ? luma_of(src->rgb + 3 * p) : src->luma[p];
            finite &= isfinite(v) ? 1 : 0;
            buf64[p / 64][p % 64] = v;
        }
        if (!finite) {
            return PDQ_NOT_FINITE;
        }
    } else {
        pdq_work w;
        if (!work_alloc(&w, src)) {
            return PDQ_NO_MEMORY;
        }
        int finite = jarosz_decimate(&w, buf64);
        work_free(&w);
        if (!finite) {
            return PDQ_NOT_FINITE;
        }
    }
    hash_from_buffer64(buf64, dihedral, res);
    return PDQ_OK;
}

/* ------------------------------------------------------------------------ */
/* Python glue                                                               */

static PyObject *build_result(const pdq_result *res, int dihedral) {
    Py_ssize_t n = dihedral ? PDQ_VARIANTS * PDQ_HASH_BYTES : PDQ_HASH_BYTES;
    return Py_BuildValue("(y#i)", (const char *)res->hashes, n, res->quality);
}

static int format_is(const Py_buffer *view, char code) {
    const char *f = view->format;
    if (f == NULL) {
        return code == 'B';
    }
    if (f[0] == '@' || f[0] == '=' || f[0] == '<') {
        f++;
    }
    return f[0] == code && f[1] == '\0';
}

static const char *type_name(char code) { return code == 'B' ? "uint8" : "float32"; }

/* Gets a C-contiguous buffer of the element type `code` ('B' uint8, 'f' float32). */
static int get_buffer(PyObject *obj, Py_buffer *view, char code) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "buf must be a C-contiguous buffer of %s (e.g. a NumPy array), not %.100s",
                     type_name(code), Py_TYPE(obj)->tp_name);
        return -1;
    }
    Py_ssize_t itemsize = code == 'B' ? 1 : 4;
    if (view->itemsize != itemsize || !format_is(view, code)) {
        PyErr_Format(PyExc_TypeError, "buf must hold %s values, got buffer format %.20s",
                     type_name(code), view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Validates dimensions and returns rows * cols * per_pixel, or -1 with an exception set.
 * The limit keeps every size computed later (a float plane, size_t indices) in range. */
static Py_ssize_t checked_size(Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t per_pixel) {
    if (rows < 0 || cols < 0) {
        PyErr_Format(PyExc_ValueError, "rows and cols must be non-negative, got %zd x %zd", rows,
                     cols);
        return -1;
    }
    if (rows > INT_MAX || cols > INT_MAX ||
        (cols != 0 && rows > PY_SSIZE_T_MAX / (Py_ssize_t)(STRIP * sizeof(float)) / cols)) {
        PyErr_Format(PyExc_ValueError, "image of %zd x %zd pixels is too large", rows, cols);
        return -1;
    }
    return rows * cols * per_pixel;
}

static int check_length(const Py_buffer *view, Py_ssize_t expected, Py_ssize_t rows,
                        Py_ssize_t cols, Py_ssize_t per_pixel) {
    Py_ssize_t items = view->len / view->itemsize;
    if (items != expected) {
        PyErr_Format(PyExc_ValueError, "buf holds %zd values; %zd x %zd%s needs %zd", items, rows,
                     cols, per_pixel == 3 ? " x 3" : "", expected);
        return -1;
    }
    return 0;
}

static PyObject *raise_status(pdq_status status) {
    if (status == PDQ_NO_MEMORY) {
        return PyErr_NoMemory();
    }
    PyErr_SetString(PyExc_ValueError, "luma values must be finite (no NaN or infinity)");
    return NULL;
}

static PyObject *hash_plane(PyObject *args, PyObject *kwargs, int from_rgb) {
    static char *kwlist[] = {"buf", "rows", "cols", "dihedral", NULL};
    PyObject *obj;
    Py_ssize_t rows, cols;
    int dihedral = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Onn|p", kwlist, &obj, &rows, &cols,
                                     &dihedral)) {
        return NULL;
    }
    Py_ssize_t per_pixel = from_rgb ? 3 : 1;
    Py_ssize_t expected = checked_size(rows, cols, per_pixel);
    if (expected < 0) {
        return NULL;
    }
    Py_buffer view;
    if (get_buffer(obj, &view, from_rgb ? 'B' : 'f') != 0) {
        return NULL;
    }
    if (check_length(&view, expected, rows, cols, per_pixel) != 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    pdq_result res;
    memset(&res, 0, sizeof res);
    pdq_status status = PDQ_OK;
    /* Below 5 pixels on a side the reference returns the all-zero hash, quality 0. */
    if (rows >= PDQ_MIN_DIM && cols >= PDQ_MIN_DIM) {
        pdq_source src = {
            .rgb = from_rgb ? (const uint8_t *)view.buf : NULL,
            .luma = from_rgb ? NULL : (const float *)view.buf,
            .rows = (size_t)rows,
            .cols = (size_t)cols,
        };
        Py_BEGIN_ALLOW_THREADS
        status = hash_source(&src, dihedral, &res);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&view);
    if (status != PDQ_OK) {
        return raise_status(status);
    }
    return build_result(&res, dihedral);
}

static PyObject *pdq_hash_rgb(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    return hash_plane(args, kwargs, 1);
}

static PyObject *pdq_hash_luma(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    return hash_plane(args, kwargs, 0);
}

static PyObject *pdq_hash_buffer64(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *kwlist[] = {"buf", "dihedral", NULL};
    PyObject *obj;
    int dihedral = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p", kwlist, &obj, &dihedral)) {
        return NULL;
    }
    Py_buffer view;
    if (get_buffer(obj, &view, 'f') != 0) {
        return NULL;
    }
    if (check_length(&view, 64 * 64, 64, 64, 1) != 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    pdq_result res;
    memset(&res, 0, sizeof res);
    int finite = 1;
    Py_BEGIN_ALLOW_THREADS
    float buf64[64][64];
    const float *in = (const float *)view.buf;
    for (size_t p = 0; p < 64 * 64; p++) {
        finite &= isfinite(in[p]) ? 1 : 0;
        buf64[p / 64][p % 64] = in[p];
    }
    if (finite) {
        hash_from_buffer64(buf64, dihedral, &res);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (!finite) {
        return raise_status(PDQ_NOT_FINITE);
    }
    return build_result(&res, dihedral);
}

/* The DCT basis as the reference builds it: the scale factor sqrt(2 / 64) is rounded
 * to float before it multiplies the double cosine (checked against the binding:
 * keeping it double changes bits), and the product is rounded to float. */
static void build_tables(void) {
    const float scale = (float)sqrt(2.0 / 64.0);
    for (int i = 0; i < 16; i++) {
        for (int j = 0; j < 64; j++) {
            double angle = (PDQ_PI / 2.0 / 64.0) * (double)(i + 1) * (double)(2 * j + 1);
            dct_matrix[i][j] = (float)(scale * cos(angle));
            dct_matrix_t[j][i] = dct_matrix[i][j];
        }
    }
    for (int v = 0; v < 256; v++) {
        luma_r[v] = (double)v * 0.299;
        luma_g[v] = (double)v * 0.587;
        luma_b[v] = (double)v * 0.114;
    }
}

PyDoc_STRVAR(hash_rgb_doc,
             "hash_rgb(buf, rows, cols, dihedral=False) -> tuple[bytes, int]\n\n"
             "PDQ of rows x cols interleaved RGB uint8 pixels (C-contiguous, rows*cols*3 bytes).\n"
             "Returns 32 bytes (8 * 32 with dihedral=True) and the quality 0..100.");
PyDoc_STRVAR(hash_luma_doc,
             "hash_luma(buf, rows, cols, dihedral=False) -> tuple[bytes, int]\n\n"
             "PDQ of a rows x cols float32 luma plane (C-contiguous, finite; not modified).");
PyDoc_STRVAR(hash_buffer64_doc,
             "hash_buffer64(buf, dihedral=False) -> tuple[bytes, int]\n\n"
             "PDQ of an already blurred and decimated 64 x 64 float32 buffer: quality, DCT, bits.");

static PyMethodDef pdq_methods[] = {
    {"hash_rgb", (PyCFunction)(void (*)(void))pdq_hash_rgb, METH_VARARGS | METH_KEYWORDS,
     hash_rgb_doc},
    {"hash_luma", (PyCFunction)(void (*)(void))pdq_hash_luma, METH_VARARGS | METH_KEYWORDS,
     hash_luma_doc},
    {"hash_buffer64", (PyCFunction)(void (*)(void))pdq_hash_buffer64,
     METH_VARARGS | METH_KEYWORDS, hash_buffer64_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef pdq_module = {
    PyModuleDef_HEAD_INIT,
    "_pdq",
    "Bit-exact C port of Meta's reference PDQ hasher (see lightkeeper.signals.pdq).",
    -1,
    pdq_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__pdq(void) {
    build_tables();
    return PyModule_Create(&pdq_module);
}

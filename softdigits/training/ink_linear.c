/* A linear layer on digit images that sums over their ink only: the first layer of the FFNs,
   forward and backward (softdigits/training/ink_linear.py loads it).

   y = x W^T + b, computed per row as b + c * colsum(W) + W (x - c): c is the row's smallest
   finite value (a digit image's background, after normalisation), so x - c is exactly zero
   on the background, about four pixels in five of a digit, and those columns are skipped.
   The same function as F.linear (for finite weights, and x - c within float32's range), in
   about a fifth of the multiplies on digits.

   Conventions: float32; x (n, I); the weight and its gradient transposed, wt (I, H), H a multiple
   of 8. One thread. Every output is one fixed sequence of IEEE multiplies and adds (built
   with -ffp-contract=off, never reassociated), vectorised over the H outputs only, so builds
   for any vector width give the same bits:
   - forward: y[n][j] = (b[j] + c_n * colsum[j]) + w[j][i1] * d1 + w[j][i2] * d2 + ...,
     over the row's nonzero d = x - c in ascending column order; colsum[j] = w[j][0] + w[j][1] + ...
     (w[j][i] is wt[i][j])
   - backward: e[j] = c_0 * g[0][j] + c_1 * g[1][j] + ... (ascending rows);
     dW[j][i] = e[j] + d_n1 * g[n1][j] + d_n2 * g[n2][j] + ..., over the rows whose d in
     column i is nonzero, ascending; db[j] = g[0][j] + g[1][j] + ...
   No gradient for x: the layer takes the images, which need none.
   A NaN in x is never skipped (NaN - c is not zero), so it reaches y as it does in F.linear.
   Each row's nonzero (column, d) and c are found once (ink_linear_compact) for the forward and
   the backward, and once for every member where members share the images. */
#include <math.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __AVX512F__
typedef float vec __attribute__((vector_size(64)));
#define VL 16
#define NV 8 /* vectors of outputs accumulated at once: 128 outputs in registers */
#elif defined(__AVX__)
typedef float vec __attribute__((vector_size(32)));
#define VL 8
#define NV 8
#else
typedef float vec __attribute__((vector_size(16)));
#define VL 4
#define NV 8
#endif
#define JB (VL * NV) /* outputs per block */
typedef int32_t veci __attribute__((vector_size(sizeof(vec))));
static inline vec loadv(const float *p) { vec v; memcpy(&v, p, sizeof v); return v; }
static inline void storev(float *p, vec v) { memcpy(p, &v, sizeof v); }

int ink_linear_supported(int H) { return H > 0 && H % 8 == 0; }

/* Each row's background c: its smallest value (+0 for a zero), or 0 where that is not finite
   (a row with -inf, or only NaNs). Exact whatever the vector width: only minima. */
static float background(const float *row, int I) {
    vec lo = (vec){0} + INFINITY;
    int i = 0;
    for (; i + VL <= I; i += VL) { /* lo = row < lo ? row : lo, lane by lane (NaN never less) */
        const vec v = loadv(row + i);
        const veci less = v < lo;
        lo = (vec)(((veci)v & less) | ((veci)lo & ~less));
    }
    float m = INFINITY;
    for (int l = 0; l < VL; l++) m = lo[l] < m ? lo[l] : m;
    for (; i < I; i++) m = row[i] < m ? row[i] : m;
    return !isfinite(m) || m == 0.0f ? 0.0f : m;
}

/* Each row's c and its nonzero (column, d = x - c), columns ascending, row after row: row r's
   at offsets[r] .. offsets[r + 1] - 1 of cols and vals, which hold n * I (a 16-lane store at
   column i of row r ends by r * I + i + 16 <= n * I). */
void ink_linear_compact(const float *x, int n, int I, float *c, int32_t *offsets, int32_t *cols, float *vals) {
    int32_t k = 0;
    for (int r = 0; r < n; r++) {
        const float *row = x + (size_t)r * I;
        const float lo = c[r] = background(row, I);
        offsets[r] = k;
        int i = 0;
#ifdef __AVX512F__
        const __m512 vlo = _mm512_set1_ps(lo);
        const __m512i step = _mm512_set1_epi32(16);
        __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        for (; i + 16 <= I; i += 16, idx = _mm512_add_epi32(idx, step)) {
            const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(row + i), vlo);
            const __mmask16 keep = _mm512_cmp_ps_mask(d, _mm512_setzero_ps(), _CMP_NEQ_UQ); /* NaN kept */
            /* compress in registers, then a whole store (compress-to-memory is slow on AMD's
               Zen 4); the lanes past the kept ones are overwritten by the next store */
            _mm512_storeu_ps(vals + k, _mm512_maskz_compress_ps(keep, d));
            _mm512_storeu_si512(cols + k, _mm512_maskz_compress_epi32(keep, idx));
            k += __builtin_popcount(keep);
        }
#endif
        for (; i < I; i++) { /* branch-free: most pixels are background */
            const float d = row[i] - lo;
            cols[k] = i, vals[k] = d;
            k += d != 0.0f; /* NaN - c is not zero */
        }
    }
    offsets[n] = k;
}

/* colsum[j] = wt[0][j] + wt[1][j] + ...: a sequential pass over W^T, which also brings it into
   cache for the rows' scattered reads that follow. */
#define SUM_BLOCK(NVB)                                                                         \
    do {                                                                                       \
        vec s[NVB];                                                                            \
        for (int v = 0; v < NVB; v++) s[v] = loadv(wt + j0 + v * VL);                          \
        for (int i = 1; i < I; i++)                                                            \
            for (int v = 0; v < NVB; v++) s[v] += loadv(wt + (size_t)i * H + j0 + v * VL);     \
        for (int v = 0; v < NVB; v++) storev(colsum + j0 + v * VL, s[v]);                      \
    } while (0)

static void column_sums(const float *wt, int H, int I, float *colsum) {
    int j0 = 0;
    for (; j0 + 2 * JB <= H; j0 += 2 * JB) SUM_BLOCK(2 * NV); /* two blocks in one pass over W^T's rows */
    for (; j0 + JB <= H; j0 += JB) SUM_BLOCK(NV);
    for (; j0 + VL <= H; j0 += VL) SUM_BLOCK(1);
    for (; j0 < H; j0++) {
        float s = wt[j0];
        for (int i = 1; i < I; i++) s += wt[(size_t)i * H + j0];
        colsum[j0] = s;
    }
}

/* The outputs j0 .. j0 + NVB*VL of one row: acc = b + c * colsum, then the row's products. */
#define ROW_BLOCK(NVB)                                                                         \
    do {                                                                                       \
        vec acc[NVB];                                                                          \
        for (int v = 0; v < NVB; v++) acc[v] = loadv(bias + j0 + v * VL) + cr * loadv(colsum + j0 + v * VL); \
        for (int32_t k = k0; k < k1; k++) {                                                    \
            const float *wr = wt + (size_t)cols[k] * H + j0;                                   \
            const float dk = vals[k];                                                          \
            for (int v = 0; v < NVB; v++) acc[v] += loadv(wr + v * VL) * dk;                   \
        }                                                                                      \
        for (int v = 0; v < NVB; v++) storev(yr + j0 + v * VL, acc[v]);                        \
    } while (0)

/* Forward from the compacted rows: y (n, H). Returns 0, -1 out of memory, -2 a shape not covered. */
int ink_linear_forward(int n, int I, int H, const int32_t *offsets, const int32_t *cols, const float *vals,
                       const float *c, const float *wt, const float *bias, float *y) {
    if (!ink_linear_supported(H) || n < 0 || I <= 0) return -2;
    float *colsum = malloc(sizeof(float) * H);
    if (!colsum) return -1;
    column_sums(wt, H, I, colsum);
    for (int r = 0; r < n; r++) {
        float *yr = y + (size_t)r * H;
        const float cr = c[r];
        const int32_t k0 = offsets[r], k1 = offsets[r + 1];
        int j0 = 0;
        for (; j0 + JB <= H; j0 += JB) ROW_BLOCK(NV);
        for (; j0 + VL <= H; j0 += VL) ROW_BLOCK(1);
        for (; j0 < H; j0++) { /* H % 8 with 16-wide vectors: the same sequence, one output */
            float a = bias[j0] + cr * colsum[j0];
            for (int32_t k = k0; k < k1; k++) a += wt[(size_t)cols[k] * H + j0] * vals[k];
            yr[j0] = a;
        }
    }
    free(colsum);
    return 0;
}

/* dW^T's outputs j0 .. j0 + NVB*VL of one column i: acc = e, then the column's products. */
#define COLUMN_BLOCK(NVB)                                                                      \
    do {                                                                                       \
        vec acc[NVB];                                                                          \
        for (int v = 0; v < NVB; v++) acc[v] = loadv(e + j0 + v * VL);                         \
        for (int32_t k = k0; k < k1; k++) {                                                    \
            const float *gr = g + (size_t)rows[k] * H + j0;                                    \
            const float dk = d[k];                                                             \
            for (int v = 0; v < NVB; v++) acc[v] += dk * loadv(gr + v * VL);                   \
        }                                                                                      \
        for (int v = 0; v < NVB; v++) storev(out + j0 + v * VL, acc[v]);                       \
    } while (0)

/* Backward from the compacted rows and the output's gradient g (n, H): dW^T (I, H), db (H). */
int ink_linear_backward(int n, int I, int H, const int32_t *offsets, const int32_t *cols, const float *vals,
                        const float *c, const float *g, float *gwt, float *gb) {
    if (!ink_linear_supported(H) || n < 0 || I <= 0) return -2;
    const int32_t nnz = offsets[n];
    int32_t *start = malloc(sizeof(int32_t) * ((size_t)I + 1 + nnz));
    float *rest = malloc(sizeof(float) * ((size_t)nnz + H));
    if (!start || !rest) return free(start), free(rest), -1;
    int32_t *rows = start + I + 1;
    float *d = rest, *e = rest + nnz;
    /* each column's (row, d), rows ascending: a counting sort of the row-major entries */
    memset(start, 0, sizeof(int32_t) * ((size_t)I + 1));
    for (int32_t k = 0; k < nnz; k++) start[cols[k] + 1]++;
    for (int i = 0; i < I; i++) start[i + 1] += start[i];
    for (int r = 0; r < n; r++)
        for (int32_t k = offsets[r]; k < offsets[r + 1]; k++) {
            const int32_t at = start[cols[k]]++;
            rows[at] = r, d[at] = vals[k];
        }
    for (int i = I; i > 0; i--) start[i] = start[i - 1];
    start[0] = 0;
    int j0 = 0; /* e and db: sums over rows, per output */
    for (; j0 + VL <= H; j0 += VL) {
        vec s = {0}, t = {0};
        for (int r = 0; r < n; r++) {
            const vec gr = loadv(g + (size_t)r * H + j0);
            s += c[r] * gr, t += gr;
        }
        storev(e + j0, s), storev(gb + j0, t);
    }
    for (; j0 < H; j0++) {
        float s = 0.0f, t = 0.0f;
        for (int r = 0; r < n; r++) s += c[r] * g[(size_t)r * H + j0], t += g[(size_t)r * H + j0];
        e[j0] = s, gb[j0] = t;
    }
    for (int i = 0; i < I; i++) {
        float *out = gwt + (size_t)i * H;
        const int32_t k0 = start[i], k1 = start[i + 1];
        j0 = 0;
        for (; j0 + JB <= H; j0 += JB) COLUMN_BLOCK(NV);
        for (; j0 + VL <= H; j0 += VL) COLUMN_BLOCK(1);
        for (; j0 < H; j0++) {
            float a = e[j0];
            for (int32_t k = k0; k < k1; k++) a += d[k] * g[(size_t)rows[k] * H + j0];
            out[j0] = a;
        }
    }
    free(start), free(rest);
    return 0;
}

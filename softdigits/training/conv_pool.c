/* A convolution (stride 1, zero padding, bias), 2x2 max-pooling and ReLU as one CPU kernel,
   forward and backward: LeNet's image layers (softdigits/training/conv_pool.py loads it).

   Conventions: float32; images and feature maps in HWC memory (n, H, W, C); weights in
   torch's (Co, Ci, K, K) layout. One thread. Every output is a fixed sequence of IEEE
   multiplies and adds (built with -ffp-contract=off, never reassociated): the bias, then
   the taps row by row; a gradient sums over images, then rows, then columns. Vector widths
   only change how many outputs run at once, so builds for any width give the same bits
   (tested: plain x86-64, AVX2, AVX-512), in the same denormal mode (each job keeps its
   own: train_run.configure_torch flushes denormals to zero, the generator's jobs do not).

   Backward uses what max-pooling keeps: only a window's winner, where the pooled output is
   not <= 0 (ReLU's gradient, as torch's: a NaN passes it), has a gradient, so the gradients
   visit a quarter of the conv outputs. NaNs go through as in torch's layers.
   Shapes covered (conv_pool_supported): one channel in with at most 8 out, or at most 16
   out with K * Ci <= 32 taps per kernel row and K <= 8; the conv output's sides even. */
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32)));
static inline v8 load8(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static inline void store8(float *p, v8 v) { memcpy(p, &v, sizeof v); }

#define SLACK 32 /* floats after a padded buffer: wide loads may run past its last row */
#define MAX_CO1 8 /* output channels of the one-channel-in path */
#define CAT(a, b) a##b
#define XCAT(a, b) CAT(a, b)

#ifdef __AVX512F__
typedef float vec __attribute__((vector_size(64))); /* one vector holds 16 output channels */
#define VL 16
#define NB 5 /* output positions per block: their accumulators stay in registers */
#define XCOPIES 1 /* copies of each input value the many-channel blocks read (see DEFINE_BLOCK) */
static inline vec loadv(const float *p) { vec v; memcpy(&v, p, sizeof v); return v; }
static inline void storev(float *p, vec v) { memcpy(p, &v, sizeof v); }
#else
typedef v8 vec;
#define VL 8
#define NB 4
#define XCOPIES 8
static inline vec loadv(const float *p) { return load8(p); }
static inline void storev(float *p, vec v) { store8(p, v); }
#endif
#define COV (16 / VL)

/* One channel in: a block of 8 * H output positions of a row, vectorised over positions, for
   NC output channels; x: the padded input row at the block's first position, rs its stride;
   w8: [ky][kx][8 channels][8 copies], each weight a whole vector (channels past Co are zero):
   a vector load, where a broadcast from memory costs an arithmetic slot (Zen 1: a third
   slower); out: [co][WoP] at the block's first position. */
#define DEFINE_BLOCK_C1(NC, H)                                                                            \
    static void XCAT(XCAT(block_c1_, NC), XCAT(_, H))(const float *x, int rs, int K, int WoP, const float *w8, \
                                                      const float *bias8, float *out) {                 \
        v8 acc[NC][H];                                                                                   \
        for (int c = 0; c < NC; c++)                                                                     \
            for (int h = 0; h < H; h++) acc[c][h] = (v8){0} + bias8[c];                                  \
        for (int ky = 0; ky < K; ky++)                                                                   \
            for (int kx = 0; kx < K; kx++) {                                                             \
                const float *xr = x + ky * rs + kx, *w = w8 + (ky * K + kx) * MAX_CO1 * 8;               \
                v8 a[H];                                                                                 \
                for (int h = 0; h < H; h++) a[h] = load8(xr + 8 * h);                                    \
                for (int c = 0; c < NC; c++)                                                             \
                    for (int h = 0; h < H; h++) acc[c][h] += a[h] * load8(w + 8 * c);                    \
            }                                                                                            \
        for (int c = 0; c < NC; c++)                                                                     \
            for (int h = 0; h < H; h++) store8(out + c * WoP + 8 * h, acc[c][h]);                        \
    }
DEFINE_BLOCK_C1(6, 2) /* LeNet's first layer */
DEFINE_BLOCK_C1(6, 1)
DEFINE_BLOCK_C1(8, 2) /* MAX_CO1 */
DEFINE_BLOCK_C1(8, 1)

/* The same for the last 4 positions of a row (LeNet's 28-wide rows with padding: 16 + 8 + 4),
   on 4-lane vectors: on Zen 1 half the cost of 8 lanes, elsewhere the same. */
typedef float v4 __attribute__((vector_size(16)));
static inline v4 load4(const float *p) { v4 v; memcpy(&v, p, sizeof v); return v; }
static inline void store4(float *p, v4 v) { memcpy(p, &v, sizeof v); }
#define DEFINE_BLOCK4_C1(NC)                                                                              \
    static void XCAT(block4_c1_, NC)(const float *x, int rs, int K, int WoP, const float *w8, const float *bias8, \
                                     float *out) {                                                        \
        v4 acc[NC];                                                                                       \
        for (int c = 0; c < NC; c++) acc[c] = (v4){0} + bias8[c];                                         \
        for (int ky = 0; ky < K; ky++)                                                                    \
            for (int kx = 0; kx < K; kx++) {                                                              \
                const float *w = w8 + (ky * K + kx) * MAX_CO1 * 8;                                        \
                const v4 a = load4(x + ky * rs + kx);                                                     \
                for (int c = 0; c < NC; c++) acc[c] += a * load4(w + 8 * c);                              \
            }                                                                                             \
        for (int c = 0; c < NC; c++) store4(out + c * WoP, acc[c]);                                       \
    }
DEFINE_BLOCK4_C1(6)
DEFINE_BLOCK4_C1(8)

/* One channel in: a row of output positions, 16 at a time, then 8, then 4, as few as cover it
   (24: 16 + 8, 28: 16 + 8 + 4); out: [co][WoP], WoP a multiple of 16 (the positions past Wo
   are not read). */
static void row_c1(const float *x, int rs, int K, int Wo, int WoP, int Co, const float *w8, const float *bias8,
                   float *out) {
    int ox = 0;
    for (; Wo - ox > 12; ox += 16)
        (Co == 6 ? block_c1_6_2 : block_c1_8_2)(x + ox, rs, K, WoP, w8, bias8, out + ox);
    if (Wo - ox > 4) {
        (Co == 6 ? block_c1_6_1 : block_c1_8_1)(x + ox, rs, K, WoP, w8, bias8, out + ox);
        ox += 8;
    }
    if (ox < Wo) (Co == 6 ? block4_c1_6 : block4_c1_8)(x + ox, rs, K, WoP, w8, bias8, out + ox);
}

/* Many channels in: N output positions vectorised over 16 output channels. x: the padded
   input at the block's first position, each value XCOPIES times (8: a whole vector, read by
   a vector load, where 8-lane builds would broadcast it from memory, which costs an
   arithmetic slot on Zen 1; AVX-512's broadcasts are loads), rs its row stride in floats;
   T = K*Ci taps per kernel row; wt: [ky][t][16]; out: [ox][16]. */
#define DEFINE_BLOCK(N)                                                                                  \
    static void XCAT(block_, N)(const float *x, int rs, int Ci, int K, const float *wt, const float *bias, \
                                float *out) {                                                            \
        vec acc[N][COV];                                                                                 \
        for (int j = 0; j < N; j++)                                                                      \
            for (int v = 0; v < COV; v++) acc[j][v] = loadv(bias + v * VL);                              \
        const int T = K * Ci;                                                                            \
        for (int ky = 0; ky < K; ky++) {                                                                 \
            const float *xr = x + ky * rs, *wr = wt + ky * T * 16;                                       \
            for (int t = 0; t < T; t++) {                                                                \
                vec w[COV];                                                                              \
                for (int v = 0; v < COV; v++) w[v] = loadv(wr + t * 16 + v * VL);                        \
                for (int j = 0; j < N; j++)                                                              \
                    for (int v = 0; v < COV; v++) acc[j][v] += XVALUE(xr + XCOPIES * (j * Ci + t)) * w[v]; \
            }                                                                                            \
        }                                                                                                \
        for (int j = 0; j < N; j++)                                                                      \
            for (int v = 0; v < COV; v++) storev(out + j * 16 + v * VL, acc[j][v]);                      \
    }
#if XCOPIES == 1
#define XVALUE(p) (*(p))
#else
#define XVALUE(p) load8(p)
#endif
DEFINE_BLOCK(NB)
DEFINE_BLOCK(1)
#if NB != 5
DEFINE_BLOCK(5) /* LeNet's 10-wide second layer in two blocks */
#endif

static void row_many(const float *x, int rs, int Ci, int K, int Wo, const float *wt, const float *bias, float *out) {
    int ox = 0;
#if NB != 5
    if (Wo % 5 == 0)
        for (; ox + 5 <= Wo; ox += 5) block_5(x + XCOPIES * ox * Ci, rs, Ci, K, wt, bias, out + ox * 16);
#endif
    for (; ox + NB <= Wo; ox += NB) XCAT(block_, NB)(x + XCOPIES * ox * Ci, rs, Ci, K, wt, bias, out + ox * 16);
    for (; ox < Wo; ox++) block_1(x + XCOPIES * ox * Ci, rs, Ci, K, wt, bias, out + ox * 16);
}

typedef int32_t vi8 __attribute__((vector_size(32)));
static inline v8 pick(vi8 s, v8 a, v8 b) { return (v8)(((vi8)a & s) | ((vi8)b & ~s)); } /* s ? a : b */

/* A window's left and right candidates from 16 consecutive positions (a, b): in-lane
   shuffles (cheap on every x86 vector unit, where a cross-lane one is not), so lane l holds
   window WINDOW[l], not l. */
static const vi8 LEFT = {0, 2, 8, 10, 4, 6, 12, 14}, RIGHT = {1, 3, 9, 11, 5, 7, 13, 15};
static const int WINDOW[8] = {0, 1, 4, 5, 2, 3, 6, 7};

/* The winner of each window, from its four candidates (top left, top right, bottom left,
   bottom right): the first that is largest; m becomes ReLU of the maximum. */
static inline vi8 winners(v8 *m, v8 b, v8 c, v8 d) {
    vi8 k = {0}, s; /* as torch's max-pooling: a NaN candidate wins (the last NaN of the four) */
    s = (b > *m) | (b != b), *m = pick(s, b, *m), k = (k & ~s) | (s & 1);
    s = (c > *m) | (c != c), *m = pick(s, c, *m), k = (k & ~s) | (s & 2);
    s = (d > *m) | (d != d), *m = pick(s, d, *m), k = (k & ~s) | (s & 3);
    *m = (v8)((vi8)*m & ((*m > 0.0f) | (*m != *m))); /* ReLU keeps a NaN, as torch's does */
    return k;
}

/* 2x2 max-pool + ReLU of two one-channel-in conv rows r0, r1 ([co][WoP]): out [px][Co]. */
static void pool_rows_c1(const float *r0, const float *r1, int Wq, int WoP, int Co, float *out, uint8_t *arg) {
    for (int co = 0; co < Co; co++)
        for (int px = 0; px < Wq; px += 8) {
            const float *a = r0 + co * WoP + 2 * px, *b = r1 + co * WoP + 2 * px;
            v8 a0 = load8(a), a1 = load8(a + 8), b0 = load8(b), b1 = load8(b + 8);
            v8 m = __builtin_shuffle(a0, a1, LEFT);
            vi8 k = winners(&m, __builtin_shuffle(a0, a1, RIGHT), __builtin_shuffle(b0, b1, LEFT),
                            __builtin_shuffle(b0, b1, RIGHT));
            float mo[8];
            int32_t ko[8];
            store8(mo, m);
            memcpy(ko, &k, sizeof ko);
            for (int l = 0; l < 8; l++) {
                const int q = px + WINDOW[l];
                if (q < Wq) out[q * Co + co] = mo[l], arg[q * Co + co] = (uint8_t)ko[l];
            }
        }
}

/* 2x2 max-pool + ReLU of two conv rows r0, r1 ([ox][CP], CP a multiple of 8): out [px][Co]
   and arg, the first of the window's four (top left, top right, bottom left, bottom right)
   that is largest. */
static void pool_rows(const float *r0, const float *r1, int Wq, int CP, int Co, float *out, uint8_t *arg) {
    for (int px = 0; px < Wq; px++)
        for (int v = 0; v < CP && v < Co; v += 8) {
            const int e = 2 * px * CP + v;
            v8 m = load8(r0 + e);
            vi8 k = winners(&m, load8(r0 + e + CP), load8(r1 + e), load8(r1 + e + CP));
            if (v + 8 <= Co) { /* whole vectors: the winners' indices narrowed to bytes */
                store8(out + px * Co + v, m);
                uint8_t kb[8];
                for (int l = 0; l < 8; l++) kb[l] = (uint8_t)k[l];
                memcpy(arg + px * Co + v, kb, 8);
                continue;
            }
            float mo[8];
            int32_t ko[8];
            store8(mo, m);
            memcpy(ko, &k, sizeof ko);
            for (int l = 0; v + l < Co; l++) out[px * Co + v + l] = mo[l], arg[px * Co + v + l] = (uint8_t)ko[l];
        }
}

/* x (n,H,W,Ci) -> a zero-padded copy (n,H+2p,W+2p,Ci), SLACK zeros after it */
static float *padded(const float *x, int n, int H, int W, int Ci, int p) {
    const int Hp = H + 2 * p, Wp = W + 2 * p;
    float *xp = calloc((size_t)n * Hp * Wp * Ci + SLACK, sizeof(float));
    if (!xp) return NULL;
    for (int b = 0; b < n; b++)
        for (int y = 0; y < H; y++)
            memcpy(xp + (((size_t)b * Hp + y + p) * Wp + p) * Ci, x + ((size_t)b * H + y) * W * Ci,
                   sizeof(float) * W * Ci);
    return xp;
}

int conv_pool_supported(int Ci, int Co, int K, int Ho, int Wo) {
    if (Ho <= 0 || Wo <= 0 || Ho % 2 || Wo % 2) return 0;
    if (Ci == 1) return Co <= MAX_CO1 && K <= 8;
    return Co <= 16 && K * Ci <= 32 && K <= 8; /* the weight sums hold 8 kernel rows */
}

/* out (n,Ho/2,Wo/2,Co) = relu(maxpool2(conv(x) + bias)); arg: which of the window's four
   won. Returns 0, -1 when out of memory, -2 for a shape this kernel does not cover. */
int conv_pool_relu_forward(const float *x, int n, int H, int W, int Ci, const float *weight, const float *bias,
                           int Co, int K, int p, float *out, uint8_t *arg) {
    const int Hp = H + 2 * p, Wp = W + 2 * p, Ho = Hp - K + 1, Wo = Wp - K + 1, T = K * Ci;
    const int Hq = Ho / 2, Wq = Wo / 2;
    if (!conv_pool_supported(Ci, Co, K, Ho, Wo)) return -2;
    float *xp = padded(x, n, H, W, Ci, p);
    float *wt = calloc((size_t)K * T * (Ci == 1 ? MAX_CO1 * 8 : 16), sizeof(float)), *bp = calloc(16, sizeof(float));
    /* two conv rows; zeroed: pooling reads a block's lanes past Wo, which row_c1 may not write */
    float *rows = calloc(2 * ((Wo + 15) / 16 * 16) * 16 + SLACK, sizeof(float));
    if (!xp || !wt || !bp || !rows) {
        free(xp), free(wt), free(bp), free(rows);
        return -1;
    }
    for (int co = 0; co < Co; co++) { /* weight (Co,Ci,K,K) -> wt[ky][kx*Ci+ci][co]; one channel in: wt[ky][kx][co][8 copies] */
        bp[co] = bias[co];
        for (int ci = 0; ci < Ci; ci++)
            for (int ky = 0; ky < K; ky++)
                for (int kx = 0; kx < K; kx++) {
                    const float v = weight[((co * Ci + ci) * K + ky) * K + kx];
                    if (Ci == 1)
                        for (int l = 0; l < 8; l++) wt[(((size_t)ky * K + kx) * MAX_CO1 + co) * 8 + l] = v;
                    else
                        wt[((size_t)ky * T + kx * Ci + ci) * 16 + co] = v;
                }
    }
    const int WoP = (Wo + 15) / 16 * 16, row_floats = Ci == 1 ? MAX_CO1 * WoP : Wo * 16; /* one conv row */
    /* an image's padded map, each value XCOPIES times, for the many-channel blocks */
    const size_t map = (size_t)Hp * Wp * Ci;
    const int expand = Ci > 1 && XCOPIES > 1;
    float *xe = expand ? malloc(sizeof(float) * (map + SLACK) * XCOPIES) : NULL;
    if (expand && !xe) {
        free(xp), free(wt), free(bp), free(rows);
        return -1;
    }
    for (int b = 0; b < n; b++) {
        const float *xb = xp + (size_t)b * map;
        if (xe) {
            for (size_t i = 0; i < map + SLACK; i++)
                for (int l = 0; l < XCOPIES; l++) xe[i * XCOPIES + l] = xb[i];
            xb = xe;
        }
        for (int py = 0; py < Hq; py++) {
            const size_t o = ((size_t)b * Hq + py) * Wq * Co;
            for (int r = 0; r < 2; r++) {
                if (Ci == 1)
                    row_c1(xb + (size_t)(2 * py + r) * Wp, Wp, K, Wo, WoP, Co, wt, bp, rows + r * row_floats);
                else
                    row_many(xb + (size_t)(2 * py + r) * Wp * Ci * XCOPIES, Wp * Ci * XCOPIES, Ci, K, Wo, wt, bp,
                             rows + r * row_floats);
            }
            if (Ci == 1)
                pool_rows_c1(rows, rows + row_floats, Wq, WoP, Co, out + o, arg + o);
            else
                pool_rows(rows, rows + row_floats, Wq, 16, Co, out + o, arg + o);
        }
    }
    free(xp), free(wt), free(bp), free(rows), free(xe);
    return 0;
}

/* grad where the pooled output o is not <= 0 (ReLU's gradient; a NaN passes), else 0: bit
   operations, not a branch, which a batch's mix of live and dead outputs would mispredict */
static inline float passed(float o, float grad) {
    int32_t m = -(int32_t)!(o <= 0.0f), bits;
    memcpy(&bits, &grad, sizeof bits);
    bits &= m;
    memcpy(&grad, &bits, sizeof grad);
    return grad;
}

/* The weight gradient's sums s[ky][t] += g[j] * xp[where[j] + ky * rs + t] over a channel's list,
   N kernel rows at once, four vectors of taps each (T <= 32, K <= 8); rows_sums takes them in
   passes of as many rows as the vector registers hold (5 of 32 on AVX-512, 2 of 16 elsewhere:
   more spill to the stack, a tenth slower on Zen 1). Each sum's order over the list is the
   same in any pass. */
#define DEFINE_ROWS_SUMS(N)                                                                               \
    static inline __attribute__((always_inline)) void XCAT(rows_sums_, N)(                                \
        const float *xp, size_t rs, const float *g, const int32_t *where, size_t c, float *s) {            \
        v8 r[N][4];                                                                                       \
        for (int ky = 0; ky < N; ky++)                                                                    \
            for (int v = 0; v < 4; v++) r[ky][v] = load8(s + ky * 32 + 8 * v);                            \
        for (size_t j = 0; j < c; j++) {                                                                  \
            const float *xr = xp + where[j];                                                              \
            for (int ky = 0; ky < N; ky++)                                                                \
                for (int v = 0; v < 4; v++) r[ky][v] += g[j] * load8(xr + ky * rs + 8 * v);               \
        }                                                                                                 \
        for (int ky = 0; ky < N; ky++)                                                                    \
            for (int v = 0; v < 4; v++) store8(s + ky * 32 + 8 * v, r[ky][v]);                            \
    }
DEFINE_ROWS_SUMS(1)
DEFINE_ROWS_SUMS(2)
#ifdef __AVX512F__
DEFINE_ROWS_SUMS(3)
DEFINE_ROWS_SUMS(4)
DEFINE_ROWS_SUMS(5)
#define SUM_ROWS 5
#else
#define SUM_ROWS 2
#endif

static inline __attribute__((always_inline)) void rows_sums(const float *xp, size_t rs, int K, const float *g,
                                                            const int32_t *where, size_t c, float *s) {
    for (int k0 = 0; k0 < K; k0 += SUM_ROWS) {
        const float *x0 = xp + k0 * rs;
        float *s0 = s + k0 * 32;
        switch (K - k0 < SUM_ROWS ? K - k0 : SUM_ROWS) {
#ifdef __AVX512F__
        case 5: rows_sums_5(x0, rs, g, where, c, s0); break;
        case 4: rows_sums_4(x0, rs, g, where, c, s0); break;
        case 3: rows_sums_3(x0, rs, g, where, c, s0); break;
#endif
        case 2: rows_sums_2(x0, rs, g, where, c, s0); break;
        default: rows_sums_1(x0, rs, g, where, c, s0); break;
        }
    }
}

#ifdef __AVX512F__
#define GX_K 5 /* the kernel side cell_grad_x is written for (LeNet's) */
/* One cell's grad_x entries, its channels in order, added to the cell's region of gxp (GX_K + 1
   rows of 48 floats from its window's top-left, every winner's patch inside) held in registers.
   An entry adds g * w to the 32 floats from its patch's origin on each of its GX_K rows, as the
   loop in conv_pool_relu_backward does; masked adds leave every other lane's bits as they are,
   so each float of grad_x gets the same operations in the same order. wsh: [co][shift][ky][48],
   a kernel row's 32 taps at lane 0 (shift 0) or lane Ci (shift 1), zeros elsewhere; k: each
   entry's winner (arg). */
static void cell_grad_x(float *cell, size_t rs, int Ci, const float *g, const int32_t *chan, const int32_t *k,
                        int32_t entries, const float *wsh) {
    __m512 r[GX_K + 1][3];
    for (int y = 0; y < GX_K + 1; y++)
        for (int v = 0; v < 3; v++) r[y][v] = _mm512_loadu_ps(cell + y * rs + 16 * v);
    const __mmask16 first = (__mmask16)(0xFFFFu << Ci), last = (__mmask16)((1u << Ci) - 1); /* shift 1's lanes */
#define GX_ROWS(RY, SH)                                                                                      \
    for (int ky = 0; ky < GX_K; ky++) {                                                                      \
        const float *w = wsh + ((size_t)(chan[j] * 2 + SH) * GX_K + ky) * 48;                                \
        r[RY + ky][0] = _mm512_mask_add_ps(r[RY + ky][0], SH ? first : 0xFFFF, r[RY + ky][0],               \
                                           _mm512_mul_ps(gv, _mm512_loadu_ps(w)));                          \
        r[RY + ky][1] = _mm512_add_ps(r[RY + ky][1], _mm512_mul_ps(gv, _mm512_loadu_ps(w + 16)));          \
        if (SH)                                                                                              \
            r[RY + ky][2] = _mm512_mask_add_ps(r[RY + ky][2], last, r[RY + ky][2],                          \
                                               _mm512_mul_ps(gv, _mm512_loadu_ps(w + 32)));                 \
    }
    for (int32_t j = 0; j < entries; j++) {
        const __m512 gv = _mm512_set1_ps(g[j]);
        switch (k[j] & 3) { /* the window's top left, top right, bottom left, bottom right */
        case 0: GX_ROWS(0, 0) break;
        case 1: GX_ROWS(0, 1) break;
        case 2: GX_ROWS(1, 0) break;
        default: GX_ROWS(1, 1) break;
        }
    }
#undef GX_ROWS
    for (int y = 0; y < GX_K + 1; y++)
        for (int v = 0; v < 3; v++) _mm512_storeu_ps(cell + y * rs + 16 * v, r[y][v]);
}
#endif

#define CHUNK 8 /* images whose gradients are gathered at once: their lists and padded maps stay in cache */

/* Gradients from grad_out (n,Hq,Wq,Co): grad_weight (Co,Ci,K,K), grad_bias (Co) and, when
   grad_x is not NULL, grad_x (n,H,W,Ci). Only a window's winner, and only where the output
   is positive, receives gradient. Sums run over images, then rows, then columns: the images
   go CHUNK at a time, each sum carried from chunk to chunk, so chunking changes no bit. */
int conv_pool_relu_backward(const float *x, int n, int H, int W, int Ci, const float *weight, int Co, int K, int p,
                            const float *out, const uint8_t *arg, const float *grad_out, float *grad_x,
                            float *grad_weight, float *grad_bias) {
    const int Hp = H + 2 * p, Wp = W + 2 * p, Ho = Hp - K + 1, Wo = Wp - K + 1, T = K * Ci;
    const int Hq = Ho / 2, Wq = Wo / 2, per_image = Hq * Wq; /* pooled positions per image */
    if (!conv_pool_supported(Ci, Co, K, Ho, Wo)) return -2;
    const size_t map = (size_t)Hp * Wp * Ci, rs = (size_t)Wp * Ci; /* a padded image; its row stride */
    float *xp = calloc(CHUNK * map + SLACK, sizeof(float)); /* the chunk's padded images (borders stay 0) */
    const size_t room = (size_t)CHUNK * per_image * Co + 16; /* a list's room: a chunk's outputs, and a
                                                                 16-lane store past its last entry */
    float *g = malloc(sizeof(float) * room); /* a channel's winners' gradients (grad_x: every channel's) */
    int32_t *where = malloc(sizeof(int32_t) * room); /* and their patch offsets in xp */
    int32_t *chan = malloc(sizeof(int32_t) * room); /* grad_x's list: the channels */
    int32_t *base = malloc(sizeof(int32_t) * (CHUNK * per_image + 1)); /* each cell's top-left conv output in xp */
    float *acc = calloc((size_t)Co * 8 * 32, sizeof(float)); /* each channel's sums: [co][ky][t] */
    float *wk = calloc((size_t)Co * K * 32, sizeof(float));
    float *gxp = grad_x ? malloc(sizeof(float) * (CHUNK * map + SLACK + 48)) : NULL; /* + a last region's 48 */
    float gb[16] = {0};
    if (!xp || !g || !where || !chan || !base || !acc || !wk || (grad_x && !gxp)) {
        free(xp), free(g), free(where), free(chan), free(base), free(acc), free(wk), free(gxp);
        return -1;
    }
    /* weight (Co,Ci,K,K) -> wk[co][ky][32]: taps kx*Ci+ci, zero past T, so that a row's four
       vectors add exactly 0 to the positions after its patch */
    for (int co = 0; co < Co; co++)
        for (int ci = 0; ci < Ci; ci++)
            for (int ky = 0; ky < K; ky++)
                for (int kx = 0; kx < K; kx++)
                    wk[((size_t)co * K + ky) * 32 + kx * Ci + ci] = weight[((co * Ci + ci) * K + ky) * K + kx];
#ifdef __AVX512F__
    /* LeNet's second layer: a cell's grad_x region held in registers (cell_grad_x) */
    const int wide = grad_x && K == GX_K && Ci <= 16; /* a patch row's 32 floats from lane 0 or Ci */
    float *wsh = wide ? calloc((size_t)Co * 2 * GX_K * 48, sizeof(float)) : NULL; /* [co][shift][ky][48] */
    if (wide && !wsh) {
        free(xp), free(g), free(where), free(chan), free(base), free(acc), free(wk), free(gxp);
        return -1;
    }
    if (wide)
        for (int co = 0; co < Co; co++)
            for (int sh = 0; sh < 2; sh++)
                for (int ky = 0; ky < K; ky++)
                    memcpy(wsh + (((size_t)co * 2 + sh) * GX_K + ky) * 48 + sh * Ci, wk + ((size_t)co * K + ky) * 32,
                           sizeof(float) * 32);
#endif
    for (int b0 = 0; b0 < n; b0 += CHUNK) {
        const int nb = n - b0 < CHUNK ? n - b0 : CHUNK;
        const size_t first = (size_t)b0 * per_image * Co;
        const float *o = out + first, *go = grad_out + first;
        const uint8_t *a = arg + first;
        for (int b = 0; b < nb; b++)
            for (int y = 0; y < H; y++)
                memcpy(xp + b * map + ((size_t)(y + p) * Wp + p) * Ci, x + (((size_t)(b0 + b) * H + y) * W) * Ci,
                       sizeof(float) * W * Ci);
        const int cells = nb * per_image;
        for (int b = 0, q = 0; b < nb; b++)
            for (int py = 0; py < Hq; py++)
                for (int px = 0; px < Wq; px++) base[q++] = ((b * Hp + 2 * py) * Wp + 2 * px) * Ci;
        for (int co = 0; co < Co; co++) {
            /* channel co's nonzero gradients in (image, row, column) order, branch-free: a zero
               is written, then overwritten */
            size_t c = 0;
            int q = 0;
#ifdef __AVX512F__
            /* 16 cells at a time, gathered at stride Co; arg's bytes are gathered as 32-bit words
               (the last block is left to the scalar loop, which reads no byte past arg) */
            const __m512i lanes = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                     _mm512_set1_epi32(Co));
            const __m512i row_step = _mm512_set1_epi32(Wp * Ci), col_step = _mm512_set1_epi32(Ci), low = _mm512_set1_epi32(255);
            const size_t left = (size_t)(n - b0) * per_image * Co; /* arg's bytes from the chunk's first */
            for (; q + 16 <= cells && (size_t)(q + 15) * Co + co + 4 <= left; q += 16) {
                const __m512i idx = _mm512_add_epi32(lanes, _mm512_set1_epi32(q * Co + co));
                const __m512 ov = _mm512_i32gather_ps(idx, o, 4), gv = _mm512_i32gather_ps(idx, go, 4);
                const __m512i k = _mm512_and_si512(_mm512_i32gather_epi32(idx, a, 1), low);
                const __mmask16 keep = _mm512_cmp_ps_mask(ov, _mm512_setzero_ps(), _CMP_NLE_UQ) /* a NaN passes */
                                       & _mm512_cmp_ps_mask(gv, _mm512_setzero_ps(), _CMP_NEQ_UQ);
                const __m512i off = _mm512_add_epi32(
                    _mm512_loadu_si512(base + q),
                    _mm512_add_epi32(_mm512_mullo_epi32(_mm512_srli_epi32(k, 1), row_step),
                                     _mm512_mullo_epi32(_mm512_and_si512(k, _mm512_set1_epi32(1)), col_step)));
                /* compress in registers, then a whole store (compress-to-memory is slow on Zen 4) */
                _mm512_storeu_ps(g + c, _mm512_maskz_compress_ps(keep, gv));
                _mm512_storeu_si512(where + c, _mm512_maskz_compress_epi32(keep, off));
                c += __builtin_popcount(keep);
            }
#endif
            for (; q < cells; q++) {
                const int i = q * Co + co, k = a[i];
                const float gi = passed(o[i], go[i]);
                g[c] = gi, where[c] = base[q] + ((k >> 1) * Wp + (k & 1)) * Ci;
                c += gi != 0.0f;
            }
            for (size_t j = 0; j < c; j++) gb[co] += g[j];
            float *s = acc + (size_t)co * 8 * 32;
            if (T <= 8) { /* every kernel row at once: one vector each (a fixed 8, so they stay in registers) */
                v8 r[8];
                for (int ky = 0; ky < 8; ky++) r[ky] = load8(s + ky * 32);
                for (size_t j = 0; j < c; j++)
                    for (int ky = 0; ky < 8; ky++)
                        if (ky < K) r[ky] += g[j] * load8(xp + where[j] + ky * rs);
                for (int ky = 0; ky < 8; ky++) store8(s + ky * 32, r[ky]);
            } else if (K == 5) /* LeNet's: the constant keeps the 20 sums in registers */
                rows_sums(xp, rs, 5, g, where, c, s);
            else
                rows_sums(xp, rs, K, g, where, c, s);
        }
        if (grad_x) { /* in (image, row, column, channel) order */
            size_t c = 0;
            int32_t *first_of = base; /* each cell's first entry (base is free again) */
            for (int q = 0, i = 0; q < cells; q++) {
                first_of[q] = (int32_t)c;
                for (int co = 0; co < Co; co++, i++) {
                    const float gi = passed(o[i], go[i]);
                    g[c] = gi, chan[c] = co, where[c] = a[i];
                    c += gi != 0.0f;
                }
            }
            first_of[cells] = (int32_t)c;
            memset(gxp, 0, sizeof(float) * (nb * map + SLACK + 48));
            for (int b = 0, q = 0; b < nb; b++)
                for (int py = 0; py < Hq; py++)
                    for (int px = 0; px < Wq; px++, q++) {
                        float *cell = gxp + ((size_t)(b * Hp + 2 * py) * Wp + 2 * px) * Ci;
                        const int32_t j0 = first_of[q], j1 = first_of[q + 1];
#ifdef __AVX512F__
                        if (wide) {
                            if (j1 > j0) cell_grad_x(cell, rs, Ci, g + j0, chan + j0, where + j0, j1 - j0, wsh);
                            continue;
                        }
#endif
                        for (int32_t j = j0; j < j1; j++) {
                            const int k = where[j];
                            float *dst = cell + ((k >> 1) * Wp + (k & 1)) * Ci;
                            const float *w = wk + (size_t)chan[j] * K * 32;
                            for (int ky = 0; ky < K; ky++)
                                for (int v = 0; v < 4; v++) {
                                    float *d = dst + ky * rs + 8 * v;
                                    store8(d, load8(d) + g[j] * load8(w + ky * 32 + 8 * v));
                                }
                        }
                    }
            for (int b = 0; b < nb; b++)
                for (int y = 0; y < H; y++)
                    memcpy(grad_x + (((size_t)(b0 + b) * H + y) * W) * Ci, gxp + b * map + ((size_t)(y + p) * Wp + p) * Ci,
                           sizeof(float) * W * Ci);
        }
    }
    for (int co = 0; co < Co; co++) {
        grad_bias[co] = gb[co];
        for (int ky = 0; ky < K; ky++)
            for (int t = 0; t < T; t++)
                grad_weight[((co * Ci + t % Ci) * K + ky) * K + t / Ci] = acc[((size_t)co * 8 + ky) * 32 + t];
    }
#ifdef __AVX512F__
    free(wsh);
#endif
    free(xp), free(g), free(where), free(chan), free(base), free(acc), free(wk), free(gxp);
    return 0;
}

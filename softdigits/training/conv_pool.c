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
   out with K * Ci <= 32 taps per kernel row; the conv output's sides even. */
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
static inline vec loadv(const float *p) { vec v; memcpy(&v, p, sizeof v); return v; }
static inline void storev(float *p, vec v) { memcpy(p, &v, sizeof v); }
#else
typedef v8 vec;
#define VL 8
#define NB 4
static inline vec loadv(const float *p) { return load8(p); }
static inline void storev(float *p, vec v) { store8(p, v); }
#endif
#define COV (16 / VL)

/* One channel in: a row of output positions, 16 at a time vectorised over positions, for NC
   output channels; x: padded input row, rs its stride; w8: [ky][kx][8] (channels past Co are
   zero); out: [co][WoP], WoP a multiple of 16 (the positions past Wo are not read). */
#define DEFINE_ROW_C1(NC)                                                                                 \
    static void XCAT(row_c1_, NC)(const float *x, int rs, int K, int Wo, int WoP, const float *w8,       \
                                  const float *bias8, float *out) {                                      \
        for (int ox = 0; ox < Wo; ox += 16) {                                                            \
            v8 acc[NC][2];                                                                               \
            for (int c = 0; c < NC; c++) acc[c][0] = acc[c][1] = (v8){0} + bias8[c];                     \
            for (int ky = 0; ky < K; ky++)                                                               \
                for (int kx = 0; kx < K; kx++) {                                                         \
                    const float *xr = x + ky * rs + ox + kx, *w = w8 + (ky * K + kx) * MAX_CO1;          \
                    v8 a0 = load8(xr), a1 = load8(xr + 8);                                               \
                    for (int c = 0; c < NC; c++) {                                                       \
                        acc[c][0] += a0 * w[c];                                                          \
                        acc[c][1] += a1 * w[c];                                                          \
                    }                                                                                    \
                }                                                                                        \
            for (int c = 0; c < NC; c++)                                                                 \
                store8(out + c * WoP + ox, acc[c][0]), store8(out + c * WoP + ox + 8, acc[c][1]);        \
        }                                                                                                \
    }
DEFINE_ROW_C1(6) /* LeNet's first layer */
DEFINE_ROW_C1(MAX_CO1)

static void row_c1(const float *x, int rs, int K, int Wo, int WoP, int Co, const float *w8, const float *bias8,
                   float *out) {
    if (Co == 6)
        row_c1_6(x, rs, K, Wo, WoP, w8, bias8, out);
    else
        XCAT(row_c1_, MAX_CO1)(x, rs, K, Wo, WoP, w8, bias8, out);
}

/* Many channels in: N output positions vectorised over 16 output channels. x: the padded
   input at the block's first position, rs its row stride; T = K*Ci taps per kernel row;
   wt: [ky][t][16]; out: [ox][16]. */
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
                    for (int v = 0; v < COV; v++) acc[j][v] += xr[j * Ci + t] * w[v];                    \
            }                                                                                            \
        }                                                                                                \
        for (int j = 0; j < N; j++)                                                                      \
            for (int v = 0; v < COV; v++) storev(out + j * 16 + v * VL, acc[j][v]);                      \
    }
DEFINE_BLOCK(NB)
DEFINE_BLOCK(1)

static void row_many(const float *x, int rs, int Ci, int K, int Wo, const float *wt, const float *bias, float *out) {
    int ox = 0;
    for (; ox + NB <= Wo; ox += NB) XCAT(block_, NB)(x + ox * Ci, rs, Ci, K, wt, bias, out + ox * 16);
    for (; ox < Wo; ox++) block_1(x + ox * Ci, rs, Ci, K, wt, bias, out + ox * 16);
}

typedef int32_t vi8 __attribute__((vector_size(32)));
static inline v8 pick(vi8 s, v8 a, v8 b) { return (v8)(((vi8)a & s) | ((vi8)b & ~s)); } /* s ? a : b */

static const vi8 EVEN = {0, 2, 4, 6, 8, 10, 12, 14}, ODD = {1, 3, 5, 7, 9, 11, 13, 15};

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
            v8 m = __builtin_shuffle(a0, a1, EVEN);
            vi8 k = winners(&m, __builtin_shuffle(a0, a1, ODD), __builtin_shuffle(b0, b1, EVEN),
                            __builtin_shuffle(b0, b1, ODD));
            float mo[8];
            int32_t ko[8];
            store8(mo, m);
            memcpy(ko, &k, sizeof ko);
            for (int l = 0; l < 8 && px + l < Wq; l++) out[(px + l) * Co + co] = mo[l], arg[(px + l) * Co + co] = (uint8_t)ko[l];
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
            float mo[8];
            int32_t ko[8];
            store8(mo, m);
            memcpy(ko, &k, sizeof ko);
            for (int l = 0; l < 8 && v + l < Co; l++) out[px * Co + v + l] = mo[l], arg[px * Co + v + l] = (uint8_t)ko[l];
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
    return Co <= 16 && K * Ci <= 32;
}

/* out (n,Ho/2,Wo/2,Co) = relu(maxpool2(conv(x) + bias)); arg: which of the window's four
   won. Returns 0, -1 when out of memory, -2 for a shape this kernel does not cover. */
int conv_pool_relu_forward(const float *x, int n, int H, int W, int Ci, const float *weight, const float *bias,
                           int Co, int K, int p, float *out, uint8_t *arg) {
    const int Hp = H + 2 * p, Wp = W + 2 * p, Ho = Hp - K + 1, Wo = Wp - K + 1, T = K * Ci;
    const int Hq = Ho / 2, Wq = Wo / 2;
    if (!conv_pool_supported(Ci, Co, K, Ho, Wo)) return -2;
    float *xp = padded(x, n, H, W, Ci, p);
    float *wt = calloc((size_t)K * T * 16, sizeof(float)), *bp = calloc(16, sizeof(float));
    float *rows = malloc(sizeof(float) * 2 * ((Wo + 15) / 16 * 16) * 16 + SLACK); /* two conv rows */
    if (!xp || !wt || !bp || !rows) {
        free(xp), free(wt), free(bp), free(rows);
        return -1;
    }
    for (int co = 0; co < Co; co++) { /* weight (Co,Ci,K,K) -> wt[ky][kx*Ci+ci][co] */
        bp[co] = bias[co];
        for (int ci = 0; ci < Ci; ci++)
            for (int ky = 0; ky < K; ky++)
                for (int kx = 0; kx < K; kx++)
                    wt[((size_t)ky * T + kx * Ci + ci) * (Ci == 1 ? MAX_CO1 : 16) + co] =
                        weight[((co * Ci + ci) * K + ky) * K + kx];
    }
    const int WoP = (Wo + 15) / 16 * 16, row_floats = Ci == 1 ? MAX_CO1 * WoP : Wo * 16; /* one conv row */
    for (int b = 0; b < n; b++) {
        const float *xb = xp + (size_t)b * Hp * Wp * Ci;
        for (int py = 0; py < Hq; py++) {
            const size_t o = ((size_t)b * Hq + py) * Wq * Co;
            for (int r = 0; r < 2; r++) {
                const float *xr = xb + (size_t)(2 * py + r) * Wp * Ci;
                if (Ci == 1)
                    row_c1(xr, Wp, K, Wo, WoP, Co, wt, bp, rows + r * row_floats);
                else
                    row_many(xr, Wp * Ci, Ci, K, Wo, wt, bp, rows + r * row_floats);
            }
            if (Ci == 1)
                pool_rows_c1(rows, rows + row_floats, Wq, WoP, Co, out + o, arg + o);
            else
                pool_rows(rows, rows + row_floats, Wq, 16, Co, out + o, arg + o);
        }
    }
    free(xp), free(wt), free(bp), free(rows);
    return 0;
}

/* Gradients from grad_out (n,Hq,Wq,Co): grad_weight (Co,Ci,K,K), grad_bias (Co) and, when
   grad_x is not NULL, grad_x (n,H,W,Ci). Only a window's winner, and only where the output
   is positive, receives gradient. Sums run over images, then rows, then columns. */
int conv_pool_relu_backward(const float *x, int n, int H, int W, int Ci, const float *weight, int Co, int K, int p,
                            const float *out, const uint8_t *arg, const float *grad_out, float *grad_x,
                            float *grad_weight, float *grad_bias) {
    const int Hp = H + 2 * p, Wp = W + 2 * p, Ho = Hp - K + 1, Wo = Wp - K + 1, T = K * Ci;
    const int Hq = Ho / 2, Wq = Wo / 2;
    if (!conv_pool_supported(Ci, Co, K, Ho, Wo)) return -2;
    const size_t cells = (size_t)n * Hq * Wq; /* pooled positions; each has Co outputs */
    float *xp = padded(x, n, H, W, Ci, p);
    int *where = malloc(sizeof(int) * cells * Co); /* per channel: the winners' patch offsets in xp */
    float *g = malloc(sizeof(float) * cells * Co); /* per channel: their gradients */
    size_t *count = calloc(Co, sizeof(size_t));
    if (!xp || !where || !g || !count) {
        free(xp), free(where), free(g), free(count);
        return -1;
    }
    /* Each channel's nonzero gradients, in (image, row, column) order. */
    for (int co = 0; co < Co; co++) {
        float *gc = g + co * cells;
        int *wc = where + co * cells;
        size_t c = 0, i = co;
        for (int b = 0; b < n; b++)
            for (int py = 0; py < Hq; py++) {
                const int row = (b * Hp + 2 * py) * Wp; /* the window's top-left conv output */
                for (int px = 0; px < Wq; px++, i += Co) {
                    const int k = arg[i];
                    const float gi = out[i] <= 0.0f ? 0.0f : grad_out[i];
                    gc[c] = gi;
                    wc[c] = (row + (k >> 1) * Wp + 2 * px + (k & 1)) * Ci;
                    c += gi != 0.0f;
                }
            }
        count[co] = c;
    }
    for (int co = 0; co < Co; co++) {
        const float *gc = g + co * cells;
        const int *wc = where + co * cells;
        float gb = 0.0f;
        for (size_t j = 0; j < count[co]; j++) gb += gc[j];
        grad_bias[co] = gb;
        const size_t rs = (size_t)Wp * Ci;
        float tmp[8][32];
        if (T <= 8) { /* every kernel row at once: one vector each (a fixed 8, so they stay in registers) */
            v8 acc[8] = {{0}};
            for (size_t j = 0; j < count[co]; j++)
                for (int ky = 0; ky < 8; ky++)
                    if (ky < K) acc[ky] += gc[j] * load8(xp + wc[j] + ky * rs);
            for (int ky = 0; ky < K; ky++) store8(tmp[ky], acc[ky]);
        } else
            for (int ky = 0; ky < K; ky++) { /* kernel row by kernel row: four vectors each */
                v8 acc[4] = {{0}};
                for (size_t j = 0; j < count[co]; j++) {
                    const float *xr = xp + wc[j] + ky * rs;
                    for (int v = 0; v < 4; v++) acc[v] += gc[j] * load8(xr + 8 * v);
                }
                memcpy(tmp[ky], acc, sizeof acc);
            }
        for (int ky = 0; ky < K; ky++)
            for (int t = 0; t < T; t++) grad_weight[((co * Ci + t % Ci) * K + ky) * K + t / Ci] = tmp[ky][t];
    }
    if (grad_x) {
        /* weight (Co,Ci,K,K) -> wk[co][ky][32]: taps kx*Ci+ci, zero past T, so that a row's four
           vectors add exactly 0 to the positions after its patch */
        float *wk = calloc((size_t)Co * K * 32, sizeof(float));
        float *gxp = calloc((size_t)n * Hp * Wp * Ci + SLACK, sizeof(float));
        if (!wk || !gxp) {
            free(wk), free(gxp), free(xp), free(where), free(g), free(count);
            return -1;
        }
        for (int co = 0; co < Co; co++)
            for (int ci = 0; ci < Ci; ci++)
                for (int ky = 0; ky < K; ky++)
                    for (int kx = 0; kx < K; kx++)
                        wk[((size_t)co * K + ky) * 32 + kx * Ci + ci] = weight[((co * Ci + ci) * K + ky) * K + kx];
        /* In (image, row, column, channel) order. */
        const size_t rs = (size_t)Wp * Ci;
        for (int b = 0, cell = 0; b < n; b++)
            for (int py = 0; py < Hq; py++)
                for (int px = 0; px < Wq; px++, cell++)
                    for (int co = 0; co < Co; co++) {
                        const size_t i = (size_t)cell * Co + co;
                        const float gi = out[i] <= 0.0f ? 0.0f : grad_out[i];
                        if (gi == 0.0f) continue;
                        const int k = arg[i];
                        float *dst = gxp + (((size_t)b * Hp + 2 * py + (k >> 1)) * Wp + 2 * px + (k & 1)) * Ci;
                        const float *w = wk + (size_t)co * K * 32;
                        for (int ky = 0; ky < K; ky++)
                            for (int v = 0; v < 4; v++) {
                                float *d = dst + ky * rs + 8 * v;
                                store8(d, load8(d) + gi * load8(w + ky * 32 + 8 * v));
                            }
                    }
        for (int b = 0; b < n; b++)
            for (int y = 0; y < H; y++)
                memcpy(grad_x + ((size_t)b * H + y) * W * Ci, gxp + (((size_t)b * Hp + y + p) * Wp + p) * Ci,
                       sizeof(float) * W * Ci);
        free(wk), free(gxp);
    }
    free(xp), free(where), free(g), free(count);
    return 0;
}

/* Compiled float32 kernels of PerceptualLoss's fused FFT path (CPU), built at first use by _native.py.
 *
 * The torch implementation of the same steps is BatchedDistance in _batched.py (the batched path);
 * tests/library/test_compiled.py compares the two. Complex arrays are interleaved (re, im) floats. Every loop runs in a fixed
 * order and sums are added in band order after the parallel loops, so a result is bit-identical
 * from call to call and whatever the number of threads. Loops over bands (or frequency ranges)
 * run on OpenMP threads, the same runtime torch uses, `threads` of them (torch.get_num_threads()).
 */
#include <stdint.h>
#include <string.h>
#include <stdlib.h>


typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));
#define LANES 8
#define BLOCK 64 /* vectors per float32 partial sum before it joins the float64 total */

static inline v8f load8(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
static inline void store8(float *p, v8f v) { memcpy(p, &v, sizeof v); }
static inline v8f select8(v8i mask, v8f yes, v8f no) { return (v8f)(((v8i)yes & mask) | ((v8i)no & ~mask)); }
static inline double total8(v8f v) {
    double s = 0.0;
    for (int i = 0; i < LANES; i++) s += (double)v[i];
    return s;
}

/* log(1 + r) for r >= 0, to about one float32 ulp.
 * log(u), u = 1 + r, by the polynomial of Cephes' logf (S. L. Moshier, Cephes Math Library,
 * single precision logf.c), plus the rounding of u: log1p(r) = log(u) + (r - (u - 1)) / u
 * (Goldberg, "What every computer scientist should know about floating-point arithmetic", 1991,
 * Theorem 4's argument). Eight lanes at once, branch-free. */
static inline v8f log1p8(v8f r, v8f u, v8f inverse_u) {
    v8i bits = (v8i)u;
    v8i exponent = ((bits >> 23) & 0xff) - 126; /* u = mantissa 2^exponent, mantissa in [0.5, 1) */
    v8f mantissa = (v8f)((bits & 0x007fffff) | 0x3f000000);
    v8i below = mantissa < 0.707106781186547524f; /* -1 where true: keep x within [-0.29, 0.41] */
    v8f x = mantissa - 1.0f + select8(below, mantissa, (v8f){0});
    v8f e = __builtin_convertvector(exponent + below, v8f);
    v8f z = x * x;
    v8f y = 7.0376836292e-2f * x - 1.1514610310e-1f;
    y = y * x + 1.1676998740e-1f;
    y = y * x - 1.2420140846e-1f;
    y = y * x + 1.4249322787e-1f;
    y = y * x - 1.6668057665e-1f;
    y = y * x + 2.0000714765e-1f;
    y = y * x - 2.4999993993e-1f;
    y = y * x + 3.3333331174e-1f;
    y = y * x * z;
    y += -2.12194440e-4f * e; /* log 2 = 0.693359375 - 2.12194440e-4, split for exactness */
    y += -0.5f * z;
    v8f log_u = x + y + 0.693359375f * e;
    return log_u + (r - (u - 1.0f)) * inverse_u;
}

/* As _native.py's SIMILARITY_CODES numbers them (test_compiled.py reads this line to check). */
enum { COSINE = 0, MSE = 1, FEATURES = 2 };

/* One vector of a row: the features weight log1p(relu(y)) and their slope weight / (1 + relu(y)),
 * 0 where y <= 0 (the subgradient the torch path uses). */
static inline v8f features8(v8f y, float weight, v8f *slope) {
    v8i positive = y > 0.0f;
    v8f r = select8(positive, y, (v8f){0});
    v8f u = 1.0f + r;
    v8f inverse_u = 1.0f / u;
    *slope = select8(positive, weight * inverse_u, (v8f){0});
    return weight * log1p8(r, u, inverse_u);
}

/* Frames [m, m + 8) of a row, or fewer at its end: the tail is padded with zeros (y = 0 and
 * target = 0 add nothing to any sum) and only the real frames are stored. */
static inline void row_vector(int similarity, const float *y, const float *target, float weight, float mse_scale,
                              float *p, float *q, int m, int count, v8f *acc) {
    float ybuf[LANES] = {0}, tbuf[LANES] = {0}, pbuf[LANES], qbuf[LANES];
    v8f yv, tv = (v8f){0}, slope;
    if (count == LANES) {
        yv = load8(y + m);
        if (target) tv = load8(target + m);
    } else {
        memcpy(ybuf, y + m, sizeof(float) * count);
        if (target) memcpy(tbuf, target + m, sizeof(float) * count);
        yv = load8(ybuf);
        tv = load8(tbuf);
    }
    v8f f = features8(yv, weight, &slope);
    v8f pv, qv = (v8f){0};
    if (similarity == FEATURES) {
        pv = f;
    } else if (similarity == COSINE) {
        acc[0] += f * tv;
        acc[1] += f * f;
        acc[2] += tv * tv;
        pv = tv * slope;
        qv = f * slope;
    } else {
        v8f d = f - tv;
        acc[0] += d * d;
        pv = mse_scale * d * slope;
    }
    if (count == LANES) {
        store8(p + m, pv);
        if (q) store8(q + m, qv);
    } else {
        store8(pbuf, pv);
        memcpy(p + m, pbuf, sizeof(float) * count);
        if (q) {
            store8(qbuf, qv);
            memcpy(q + m, qbuf, sizeof(float) * count);
        }
    }
}

/* A row's features, sums (float32 vectors over blocks of BLOCK vectors, then float64) and
 * what the backward needs. */
static void row(int similarity, const float *y, const float *target, float weight, int frames, float mse_scale,
                float *p, float *q, double *sums) {
    for (int block = 0; block < frames; block += BLOCK * LANES) {
        v8f acc[3] = {{0}, {0}, {0}};
        int end = block + BLOCK * LANES < frames ? block + BLOCK * LANES : frames;
        int m = block;
        for (; m + LANES <= end; m += LANES)
            row_vector(similarity, y, target, weight, mse_scale, p, q, m, LANES, acc);
        if (m < end) row_vector(similarity, y, target, weight, mse_scale, p, q, m, end - m, acc);
        for (int i = 0; i < 3; i++) sums[i] += total8(acc[i]);
    }
}

/* rows of filtered signal -> features, the similarity's sums, and what the
 * backward needs (cosine: p = target slope, q = feature slope; mse: p = dL/dfiltered; features:
 * p = the features). Bands run in parallel; their sums are added in band order afterwards. */
void pal_rows(const float *y, long y_row, const float *target, long target_row, const float *weights, int rows,
              int frames, int similarity, float mse_scale, float *p, float *q, long out_row, double *sums, int threads) {
    double *partial = calloc((size_t)rows * 3, sizeof(double));
    #pragma omp parallel for num_threads(threads) schedule(static) if(threads > 1)
    for (int band = 0; band < rows; band++)
        row(similarity, y + band * y_row, target ? target + band * target_row : 0, weights[band], frames, mse_scale,
            p + band * out_row, q ? q + band * out_row : 0, partial + 3 * band);
    if (sums)
        for (int band = 0; band < rows; band++)
            for (int i = 0; i < 3; i++) sums[i] += partial[3 * band + i];
    free(partial);
}

static inline void complex_multiply_add(float ar, float ai, float br, float bi, float *cr, float *ci) {
    *cr += ar * br - ai * bi;
    *ci += ar * bi + ai * br;
}

/* product_real: out = the rfft of every band's filtered signal, decimated by
 * `stride` (folded onto n_fft / stride bins and scaled by 1 / stride, the spectrum of the
 * strided samples). X: rfft of the signal (n_fft/2 + 1 bins); H: (rows, h_row) filter spectra. */
void pal_product_real(const float *X, const float *H, long h_row, int rows, int n_fft, int stride,
                      float *out, long out_row, int threads) {
    int half = n_fft / 2, folded = n_fft / stride, bins = folded / 2 + 1;
    float scale = 1.0f / (float)stride;
    #pragma omp parallel for num_threads(threads) schedule(static) if(threads > 1)
    for (int band = 0; band < rows; band++) {
        const float *h = H + 2 * band * h_row;
        float *o = out + 2 * band * out_row;
        if (stride == 1) {
            for (int k = 0; k <= half; k++) {
                o[2 * k] = X[2 * k] * h[2 * k] - X[2 * k + 1] * h[2 * k + 1];
                o[2 * k + 1] = X[2 * k] * h[2 * k + 1] + X[2 * k + 1] * h[2 * k];
            }
            continue;
        }
        memset(o, 0, sizeof(float) * 2 * bins);
        for (int alias = 0; alias < stride; alias++) {
            for (int k = 0; k < bins; k++) {
                int i = k + alias * folded;
                if (i <= half) {
                    complex_multiply_add(X[2 * i], X[2 * i + 1], h[2 * i], h[2 * i + 1], &o[2 * k], &o[2 * k + 1]);
                } else if (i < n_fft) { /* a bin above Nyquist: conjugate of its mirror */
                    int j = n_fft - i;
                    complex_multiply_add(X[2 * j], -X[2 * j + 1], h[2 * j], -h[2 * j + 1], &o[2 * k], &o[2 * k + 1]);
                }
            }
        }
        for (int k = 0; k < 2 * bins; k++) o[k] *= scale;
    }
}

/* combine: g = a p + b q on the first `frames` samples of each row, zeros after
 * (to `length`); q may be null (b = 0). */
void pal_combine(const float *p, const float *q, long pq_row, int rows, int frames, float a, float b,
                 float *g, long g_row, int length, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static) if(threads > 1)
    for (int band = 0; band < rows; band++) {
        const float *pb = p + band * pq_row;
        float *gb = g + band * g_row;
        if (q) {
            const float *qb = q + band * pq_row;
            for (int m = 0; m < frames; m++) gb[m] = a * pb[m] + b * qb[m];
        } else {
            for (int m = 0; m < frames; m++) gb[m] = a * pb[m];
        }
        memset(gb + frames, 0, sizeof(float) * (length - frames));
    }
}

/* adjoint: adjoint[k] += sum over bands of conj(H[k]) G[k mod folded], k up to
 * Nyquist, where G is the rfft (folded / 2 + 1 bins) of a band's gradient at the strided frames:
 * the adjoint of product_real and the inverse FFT. */
void pal_adjoint(const float *G, long g_row, const float *H, long h_row, int rows, int n_fft, int stride,
                 float *adjoint, int threads) {
    int half = n_fft / 2, folded = n_fft / stride;
    int parts = threads > 1 ? threads : 1;
    #pragma omp parallel for num_threads(threads) schedule(static) if(threads > 1)
    for (int part = 0; part < parts; part++) {
        int k0 = (int)((long)(half + 1) * part / parts), k1 = (int)((long)(half + 1) * (part + 1) / parts);
        for (int band = 0; band < rows; band++) {
            const float *g = G + 2 * band * g_row;
            const float *h = H + 2 * band * h_row;
            if (stride == 1) {
                for (int k = k0; k < k1; k++) {
                    adjoint[2 * k] += h[2 * k] * g[2 * k] + h[2 * k + 1] * g[2 * k + 1];
                    adjoint[2 * k + 1] += h[2 * k] * g[2 * k + 1] - h[2 * k + 1] * g[2 * k];
                }
                continue;
            }
            for (int k = k0; k < k1; k++) {
                int i = k % folded;
                float gr = g[2 * (i <= folded / 2 ? i : folded - i)];
                float gi = i <= folded / 2 ? g[2 * i + 1] : -g[2 * (folded - i) + 1];
                adjoint[2 * k] += h[2 * k] * gr + h[2 * k + 1] * gi;
                adjoint[2 * k + 1] += h[2 * k] * gi - h[2 * k + 1] * gr;
            }
        }
    }
}

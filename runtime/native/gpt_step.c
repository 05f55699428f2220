/* skyvoice native GPT decode step: one token of the GPT-SoVITS v2 text-to-semantic transformer on the CPU.
 *
 * It computes what `gpt_decode_step.onnx` computes (export/graphs/gpt_decode_step.py) for bundles whose step
 * products are 8-bit `MatMulNBits` weights, with the products done as one-row integer dot products that stream the
 * weights once at memory speed. The graph's other nodes (embedding, sinusoid position, attention over the host
 * cache, layer norms, ReLU) are done here too, so a step is one call instead of ~1,000 graph nodes.
 *
 * Weights: each product's int8 weights are repacked at load into panels of 16 output columns, 4 input rows per
 * 64-byte line ([N/16][K/4][16][4]), stored as uint8 = int8 + 128 (MatMulNBits's symmetric zero point); scales are
 * per column and per block of `block` input rows, as MatMulNBits holds them. The input row is quantized per block
 * to int8 (scale = max|x| / 127, rounded to nearest), as MatMulNBits does at accuracy level 4, so the products are
 * exact integer sums: sum((w + 128) * x) - 128 * sum(x).
 *
 * Threads: a small pool of helpers shares each product's panels and each layer's heads with the calling thread
 * through an atomic claim counter; the caller never waits for a helper that has not started (work-sharing), so a
 * helper descheduled by the other pipeline stage costs nothing but its own chunk. Helpers spin briefly between
 * jobs and then sleep on a condition variable.
 *
 * Build: runtime/native/build.py (cc -O3 -march=native). AVX-512 VNNI is used where the compiler targets it; the
 * portable loops run everywhere else. No Python API: loaded with ctypes. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__AVX512F__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#define SV_KERNEL 1
#else
#define SV_KERNEL 0
#endif

#define SV_PANEL 16
#define SV_SPIN_NS 50000L /* how long a helper spins for the next job before it sleeps */
#define SV_MAX_HELPERS 15

/* ---- thread pool ------------------------------------------------------------------------------------------ */

typedef void (*sv_task_fn)(void *ctx, int begin, int end);

typedef struct {
    pthread_t threads[SV_MAX_HELPERS];
    int helpers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    _Atomic int sleeping;
    _Atomic int stop;
    _Atomic uint64_t claim; /* generation << 32 | next index */
    _Atomic int done;       /* indices finished in the current job */
    sv_task_fn task;        /* the current job (written before `claim` publishes its generation) */
    void *ctx;
    int total, grain;
} sv_pool;

static inline void sv_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long sv_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

/* Claim and run chunks of job `gen` until none are left or a newer job replaced it. */
static void sv_work(sv_pool *pool, uint32_t gen) {
    uint64_t seen = atomic_load(&pool->claim);
    for (;;) {
        if ((uint32_t)(seen >> 32) != gen) return;
        int index = (int)(uint32_t)seen;
        int total = pool->total, grain = pool->grain;
        sv_task_fn task = pool->task;
        void *ctx = pool->ctx;
        if (index >= total) return;
        if (!atomic_compare_exchange_weak(&pool->claim, &seen, seen + (uint64_t)grain)) continue;
        /* a successful claim of an unfinished chunk means the job is still `gen`'s: its fields read above are its own */
        int end = index + grain < total ? index + grain : total;
        task(ctx, index, end);
        atomic_fetch_add(&pool->done, end - index);
        seen = atomic_load(&pool->claim);
    }
}

static void *sv_helper(void *arg) {
    sv_pool *pool = arg;
    uint32_t last = (uint32_t)(atomic_load(&pool->claim) >> 32);
    while (!atomic_load(&pool->stop)) {
        uint32_t gen = (uint32_t)(atomic_load(&pool->claim) >> 32);
        if (gen != last) {
            last = gen;
            sv_work(pool, gen);
            continue;
        }
        long spin_until = sv_now_ns() + SV_SPIN_NS;
        int woke = 0;
        for (unsigned spins = 1; !woke; spins++) { /* look after every pause (a pause is ~40-140 cycles) */
            sv_relax();
            woke = (uint32_t)(atomic_load_explicit(&pool->claim, memory_order_acquire) >> 32) != last || atomic_load(&pool->stop);
            if (spins % 256 == 0 && sv_now_ns() >= spin_until) break;
        }
        if (woke) continue;
        pthread_mutex_lock(&pool->lock);
        atomic_fetch_add(&pool->sleeping, 1);
        while ((uint32_t)(atomic_load(&pool->claim) >> 32) == last && !atomic_load(&pool->stop))
            pthread_cond_wait(&pool->wake, &pool->lock);
        atomic_fetch_sub(&pool->sleeping, 1);
        pthread_mutex_unlock(&pool->lock);
    }
    return NULL;
}

/* Run task(ctx, begin, end) over [0, total) in chunks of `grain`, shared with the helpers; returns when all ran. */
static void sv_parallel(sv_pool *pool, sv_task_fn task, void *ctx, int total, int grain) {
    if (grain < 1) grain = 1;
    if (pool->helpers == 0 || total <= grain) {
        task(ctx, 0, total);
        return;
    }
    uint32_t gen = (uint32_t)(atomic_load(&pool->claim) >> 32) + 1;
    pool->task = task;
    pool->ctx = ctx;
    pool->total = total;
    pool->grain = grain;
    atomic_store(&pool->done, 0);
    atomic_store(&pool->claim, (uint64_t)gen << 32);
    if (atomic_load(&pool->sleeping)) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
    sv_work(pool, gen);
    while (atomic_load(&pool->done) < total) sv_relax();
}

static int sv_pool_start(sv_pool *pool, int helpers) {
    memset(pool, 0, sizeof(*pool));
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    if (helpers > SV_MAX_HELPERS) helpers = SV_MAX_HELPERS;
    for (int i = 0; i < helpers; i++) {
        if (pthread_create(&pool->threads[i], NULL, sv_helper, pool) != 0) break;
        pool->helpers++;
    }
    return pool->helpers;
}

static void sv_pool_stop(sv_pool *pool) {
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->helpers; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
}

/* ---- int8 products ---------------------------------------------------------------------------------------- */

typedef struct {
    int k, n;          /* the product's true size */
    int block, blocks; /* input rows per scale block; blocks = ceil(k / block) */
    int kp, panels;    /* k padded to whole blocks; ceil(n / 16) panels */
    uint8_t *w;        /* [panels][kp/4][16][4], int8 + 128; padding holds 128 (a zero weight) */
    float *scale;      /* [panels][blocks][16]; padding holds 0 */
} sv_matrix;

typedef struct {
    const sv_matrix *m;
    const int8_t *xq;     /* [kp] */
    const float *xscale;  /* [blocks] */
    const int32_t *xsum;  /* [blocks] */
    const float *bias;    /* [n] or NULL */
    int relu;
    float *y;             /* [n] */
} sv_product;

/* Quantize x[0..k) per block (x beyond k is taken as 0): scale = max|x| / 127, q = round-half-even(x * (127 / max|x|)),
 * the inverse taken from max|x| in one division, as MatMulNBits's CompInt8 quantizer does. */
static void sv_quantize(const float *x, int k, int block, int blocks, int8_t *xq, float *xscale, int32_t *xsum) {
    for (int b = 0; b < blocks; b++) {
        int lo = b * block, hi = lo + block, valid = (k < hi ? k : hi) - lo;
        float amax = 0.0f;
        int32_t sum = 0;
#if SV_KERNEL == 1
        if (valid == block && block % 16 == 0) {
            __m512 top = _mm512_setzero_ps();
            for (int i = lo; i < hi; i += 16) top = _mm512_max_ps(top, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
            amax = _mm512_reduce_max_ps(top);
            __m512 inv = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
            __m512i total = _mm512_setzero_si512();
            for (int i = lo; i < hi; i += 16) {
                __m512i q = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
                total = _mm512_add_epi32(total, q);
                _mm_storeu_si128((__m128i *)(xq + i), _mm512_cvtsepi32_epi8(q));
            }
            xscale[b] = amax / 127.0f;
            xsum[b] = _mm512_reduce_add_epi32(total);
            continue;
        }
#endif
        for (int i = 0; i < valid; i++) amax = fmaxf(amax, fabsf(x[lo + i]));
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int i = lo; i < hi; i++) {
            int q = i - lo < valid ? (int)lrintf(x[i] * inv) : 0;
            q = q > 127 ? 127 : (q < -127 ? -127 : q);
            xq[i] = (int8_t)q;
            sum += q;
        }
        xscale[b] = amax / 127.0f;
        xsum[b] = sum;
    }
}

#if SV_KERNEL == 1
/* four consecutive int8 inputs, broadcast to every 32-bit lane */
static inline __m512i sv_x4(const int8_t *x, int line) {
    int32_t four;
    memcpy(&four, x + 4 * line, sizeof(four));
    return _mm512_set1_epi32(four);
}
#endif

static void sv_panel(const sv_product *p, int panel, float out[SV_PANEL]) {
    const sv_matrix *m = p->m;
    const uint8_t *w = m->w + (size_t)panel * m->kp * SV_PANEL;
    const float *scale = m->scale + (size_t)panel * m->blocks * SV_PANEL;
    int lines = m->block / 4;
#if SV_KERNEL == 1
    __m512 total = _mm512_setzero_ps();
    for (int b = 0; b < m->blocks; b++) {
        __m512i acc = _mm512_setzero_si512();
        const uint8_t *line = w + (size_t)b * lines * 64;
        const int8_t *xb = p->xq + b * m->block;
        int i = 0;
        for (; i + 4 <= lines; i += 4) {
            acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(line + (size_t)i * 64), sv_x4(xb, i));
            acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(line + (size_t)(i + 1) * 64), sv_x4(xb, i + 1));
            acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(line + (size_t)(i + 2) * 64), sv_x4(xb, i + 2));
            acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(line + (size_t)(i + 3) * 64), sv_x4(xb, i + 3));
        }
        for (; i < lines; i++)
            acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(line + (size_t)i * 64), sv_x4(xb, i));
        acc = _mm512_sub_epi32(acc, _mm512_set1_epi32(128 * p->xsum[b]));
        __m512 step = _mm512_mul_ps(_mm512_loadu_ps(scale + b * SV_PANEL), _mm512_set1_ps(p->xscale[b]));
        total = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), step, total);
    }
    _mm512_storeu_ps(out, total);
#else
    float total[SV_PANEL] = {0};
    for (int b = 0; b < m->blocks; b++) {
        int32_t acc[SV_PANEL] = {0};
        const uint8_t *line = w + (size_t)b * lines * 64;
        const int8_t *xb = p->xq + b * m->block;
        for (int i = 0; i < lines; i++, line += 64, xb += 4)
            for (int c = 0; c < SV_PANEL; c++)
                acc[c] += line[4 * c] * xb[0] + line[4 * c + 1] * xb[1] + line[4 * c + 2] * xb[2] + line[4 * c + 3] * xb[3];
        float xs = p->xscale[b];
        int32_t correction = 128 * p->xsum[b];
        for (int c = 0; c < SV_PANEL; c++) total[c] += (float)(acc[c] - correction) * (scale[b * SV_PANEL + c] * xs);
    }
    memcpy(out, total, sizeof(total));
#endif
}

#define SV_GROUP 4 /* panels read side by side: four weight streams keep more loads in flight than one */

#if SV_KERNEL == 1
/* Four whole panels at once (panel .. panel + 3): the same sums as sv_panel, column for column. */
static void sv_panel_group(const sv_product *p, int panel, float out[SV_GROUP * SV_PANEL]) {
    const sv_matrix *m = p->m;
    size_t stride = (size_t)m->kp * SV_PANEL;
    const uint8_t *w = m->w + (size_t)panel * stride;
    const float *scale = m->scale + (size_t)panel * m->blocks * SV_PANEL;
    int lines = m->block / 4;
    __m512 total[SV_GROUP];
    for (int g = 0; g < SV_GROUP; g++) total[g] = _mm512_setzero_ps();
    for (int b = 0; b < m->blocks; b++) {
        __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
        const uint8_t *line = w + (size_t)b * lines * 64;
        const int8_t *xb = p->xq + b * m->block;
        for (int i = 0; i < lines; i++) {
            __m512i x = sv_x4(xb, i);
            const uint8_t *at = line + (size_t)i * 64;
            acc0 = _mm512_dpbusd_epi32(acc0, _mm512_loadu_si512(at), x);
            acc1 = _mm512_dpbusd_epi32(acc1, _mm512_loadu_si512(at + stride), x);
            acc2 = _mm512_dpbusd_epi32(acc2, _mm512_loadu_si512(at + 2 * stride), x);
            acc3 = _mm512_dpbusd_epi32(acc3, _mm512_loadu_si512(at + 3 * stride), x);
        }
        __m512i correction = _mm512_set1_epi32(128 * p->xsum[b]);
        __m512 xs = _mm512_set1_ps(p->xscale[b]);
        __m512i accs[SV_GROUP] = {acc0, acc1, acc2, acc3};
        for (int g = 0; g < SV_GROUP; g++) {
            __m512 step = _mm512_mul_ps(_mm512_loadu_ps(scale + ((size_t)g * m->blocks + b) * SV_PANEL), xs);
            total[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(accs[g], correction)), step, total[g]);
        }
    }
    for (int g = 0; g < SV_GROUP; g++) _mm512_storeu_ps(out + g * SV_PANEL, total[g]);
}
#endif

/* Tasks are groups of SV_GROUP panels (the last may hold fewer). */
static void sv_product_task(void *ctx, int begin, int end) {
    const sv_product *p = ctx;
    float out[SV_GROUP * SV_PANEL];
    for (int group = begin; group < end; group++) {
        int first = group * SV_GROUP, count = p->m->panels - first < SV_GROUP ? p->m->panels - first : SV_GROUP;
#if SV_KERNEL == 1
        if (count == SV_GROUP)
            sv_panel_group(p, first, out);
        else
#endif
            for (int g = 0; g < count; g++) sv_panel(p, first + g, out + g * SV_PANEL);
        int base = first * SV_PANEL;
        for (int c = 0; c < count * SV_PANEL && base + c < p->m->n; c++) {
            float v = out[c] + (p->bias ? p->bias[base + c] : 0.0f);
            p->y[base + c] = p->relu && v < 0.0f ? 0.0f : v;
        }
    }
}

/* ---- the model -------------------------------------------------------------------------------------------- */

enum { SV_QKV, SV_OUT, SV_FF1, SV_FF2, SV_PER_LAYER };
enum { SV_B_QKV, SV_B_OUT, SV_B_FF1, SV_B_FF2, SV_N1_W, SV_N1_B, SV_N2_W, SV_N2_B, SV_VECTORS };

typedef struct {
    int n_layer, d, heads, ff, vocab, emb_rows;
    float eps, alpha;
    sv_matrix *mats; /* [n_layer * 4 + 1]: the last is the logits product */
    float *vectors;  /* per layer, SV_VECTORS vectors laid out by sv_vector_offset */
    float *embedding; /* [emb_rows, d] */
    float *rates;     /* [d / 2] sinusoid rates */
    sv_pool pool;
    int pool_started;
    int widest_k; /* the longest padded input row the scratch holds */
    /* scratch */
    float *x, *qkv, *mixed, *proj, *hidden, *scores;
    int scores_rows;
    int8_t *xq;
    float *xscale;
    int32_t *xsum;
} sv_model;

static size_t sv_vector_offset(const sv_model *m, int layer, int which) {
    size_t d = m->d, sizes[SV_VECTORS] = {3 * d, d, (size_t)m->ff, d, d, d, d, d}, off = 0;
    for (int i = 0; i < which; i++) off += sizes[i];
    size_t per_layer = 9 * d + m->ff; /* the sizes above, summed */
    return layer * per_layer + off;
}

int sv_kernel(void) { return SV_KERNEL; }

void sv_free(sv_model *m) {
    if (!m) return;
    if (m->pool_started) sv_pool_stop(&m->pool);
    if (m->mats)
        for (int i = 0; i < m->n_layer * SV_PER_LAYER + 1; i++) {
            free(m->mats[i].w);
            free(m->mats[i].scale);
        }
    free(m->mats);
    free(m->vectors);
    free(m->embedding);
    free(m->rates);
    free(m->x);
    free(m->qkv);
    free(m->mixed);
    free(m->proj);
    free(m->hidden);
    free(m->scores);
    free(m->xq);
    free(m->xscale);
    free(m->xsum);
    free(m);
}

sv_model *sv_create(int n_layer, int d, int heads, int ff, int vocab, int emb_rows, float eps, float alpha, int threads) {
    if (n_layer < 1 || d < 2 || d % 2 || heads < 1 || d % heads || ff < 1 || vocab < 1 || emb_rows < 1) return NULL;
    sv_model *m = calloc(1, sizeof(sv_model));
    if (!m) return NULL;
    m->n_layer = n_layer, m->d = d, m->heads = heads, m->ff = ff, m->vocab = vocab, m->emb_rows = emb_rows;
    m->eps = eps, m->alpha = alpha;
    int widest = 3 * d > ff ? 3 * d : ff;
    widest = widest > vocab ? widest : vocab;
    int widest_k = (d > ff ? d : ff) + 4096; /* room for block padding */
    m->mats = calloc((size_t)n_layer * SV_PER_LAYER + 1, sizeof(sv_matrix));
    m->vectors = calloc((size_t)n_layer * (9 * d + ff), sizeof(float));
    m->embedding = calloc((size_t)emb_rows * d, sizeof(float));
    m->rates = calloc((size_t)d / 2, sizeof(float));
    m->x = calloc((size_t)widest_k, sizeof(float));
    m->qkv = calloc((size_t)widest, sizeof(float));
    m->mixed = calloc((size_t)widest_k, sizeof(float));
    m->proj = calloc((size_t)widest, sizeof(float));
    m->hidden = calloc((size_t)widest_k, sizeof(float));
    m->xq = aligned_alloc(64, ((size_t)widest_k + 63) / 64 * 64);
    m->xscale = calloc((size_t)widest_k, sizeof(float));
    m->xsum = calloc((size_t)widest_k, sizeof(int32_t));
    if (!m->mats || !m->vectors || !m->embedding || !m->rates || !m->x || !m->qkv || !m->mixed || !m->proj ||
        !m->hidden || !m->xq || !m->xscale || !m->xsum) {
        sv_free(m);
        return NULL;
    }
    /* the reference's rates: exp(2i * -ln(10000) / d) in float32 */
    float factor = (float)(-log(10000.0) / d);
    for (int i = 0; i < d / 2; i++) m->rates[i] = expf((float)(2 * i) * factor);
    m->widest_k = widest_k;
    sv_pool_start(&m->pool, threads > 1 ? threads - 1 : 0);
    m->pool_started = 1;
    return m;
}

/* index: layer * 4 + {0 qkv, 1 out, 2 ff1, 3 ff2}, or n_layer * 4 for the logits product.
 * w: MatMulNBits bytes [n][blocks][block] (uint8 = int8 + 128); scale: [n][blocks]. Returns 0 or -1. */
int sv_set_matrix(sv_model *m, int index, const uint8_t *w, const float *scale, int k, int n, int block) {
    if (index < 0 || index > m->n_layer * SV_PER_LAYER || k < 1 || n < 1 || block < 4 || block % 4) return -1;
    int blocks = (k + block - 1) / block;
    if ((long)blocks * block > m->widest_k) return -1;
    sv_matrix *mat = &m->mats[index];
    free(mat->w);
    free(mat->scale);
    mat->k = k, mat->n = n, mat->block = block, mat->blocks = blocks, mat->kp = blocks * block;
    mat->panels = (n + SV_PANEL - 1) / SV_PANEL;
    size_t bytes = (size_t)mat->panels * mat->kp * SV_PANEL;
    mat->w = aligned_alloc(64, (bytes + 63) / 64 * 64);
    mat->scale = calloc((size_t)mat->panels * blocks * SV_PANEL, sizeof(float));
    if (!mat->w || !mat->scale) return -1;
    memset(mat->w, 128, bytes);
    for (int col = 0; col < n; col++) {
        int panel = col / SV_PANEL, c = col % SV_PANEL;
        const uint8_t *src = w + (size_t)col * mat->kp;
        uint8_t *dst = mat->w + (size_t)panel * mat->kp * SV_PANEL + 4 * c;
        for (int row = 0; row < k; row++) dst[(size_t)(row / 4) * 64 + row % 4] = src[row];
        for (int b = 0; b < blocks; b++) mat->scale[((size_t)panel * blocks + b) * SV_PANEL + c] = scale[(size_t)col * blocks + b];
    }
    return 0;
}

/* which: 0 in_proj bias [3d], 1 out_proj bias [d], 2 linear1 bias [ff], 3 linear2 bias [d], 4/5 norm1 weight/bias,
 * 6/7 norm2 weight/bias [d]. */
int sv_set_vector(sv_model *m, int layer, int which, const float *values, int count) {
    if (layer < 0 || layer >= m->n_layer || which < 0 || which >= SV_VECTORS) return -1;
    int expect = which == SV_B_QKV ? 3 * m->d : (which == SV_B_FF1 ? m->ff : m->d);
    if (count != expect) return -1;
    memcpy(m->vectors + sv_vector_offset(m, layer, which), values, sizeof(float) * count);
    return 0;
}

int sv_set_embedding(sv_model *m, const float *values, int rows, int d) {
    if (rows != m->emb_rows || d != m->d) return -1;
    memcpy(m->embedding, values, sizeof(float) * rows * d);
    return 0;
}

static void sv_multiply(sv_model *m, const sv_matrix *mat, const float *x, const float *bias, int relu, float *y) {
    sv_quantize(x, mat->k, mat->block, mat->blocks, m->xq, m->xscale, m->xsum);
    sv_product p = {mat, m->xq, m->xscale, m->xsum, bias, relu, y};
    int groups = (mat->panels + SV_GROUP - 1) / SV_GROUP;
    sv_parallel(&m->pool, sv_product_task, &p, groups, groups >= 16 ? 2 : 1);
}

static void sv_layer_norm(float *x, int d, const float *weight, const float *bias, float eps) {
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < d; i++) mean += x[i];
    mean /= d;
    for (int i = 0; i < d; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= d;
    float inv = (float)(1.0 / sqrt(var + eps)), mu = (float)mean;
    for (int i = 0; i < d; i++) x[i] = (x[i] - mu) * inv * weight[i] + bias[i];
}

static inline float sv_dot(const float *a, const float *b, int n) {
    float lanes[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) lanes[j] += a[i + j] * b[i + j];
    float s = 0.0f;
    for (int j = 0; j < 16; j++) s += lanes[j];
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

typedef struct {
    sv_model *m;
    const float *k_cache, *v_cache; /* this layer's [H, rows, hd] */
    int rows, kv_len;
} sv_attention;

#if SV_KERNEL == 1
/* exp(x) for x <= 0 (scores minus their maximum), 16 lanes: 2^n * p(r) with |r| <= ln2/2 and a degree-7 Taylor p
 * (relative error < 1e-8 before rounding); below -87.3 the result is 0, as float32 exp underflows there. */
static inline __m512 sv_exp_nonpositive(__m512 x) {
    const __m512 low = _mm512_set1_ps(-87.3f);
    __mmask16 gone = _mm512_cmp_ps_mask(x, low, _CMP_LT_OQ);
    x = _mm512_max_ps(x, low);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps((__mmask16)~gone, p, n);
}
#endif

#define SV_HEADS_AT_ONCE 4 /* heads whose cache rows are read side by side (more loads in flight, as for the products) */

/* Heads h0 .. h0 + count - 1 of one layer: scores over the cache rows < kv_len and the new token's own row, softmax,
 * weighted sum of the values into m->mixed. */
static void sv_attention_heads(const sv_attention *a, int h0, int count) {
    sv_model *m = a->m;
    int d = m->d, hd = d / m->heads, kv_len = a->kv_len;
    float scale = 1.0f / sqrtf((float)hd);
    float q[SV_HEADS_AT_ONCE][hd], top[SV_HEADS_AT_ONCE], inv[SV_HEADS_AT_ONCE];
    const float *keys[SV_HEADS_AT_ONCE], *values[SV_HEADS_AT_ONCE], *v_own[SV_HEADS_AT_ONCE];
    float *scores[SV_HEADS_AT_ONCE], *out[SV_HEADS_AT_ONCE];
    for (int g = 0; g < count; g++) {
        int h = h0 + g;
        for (int j = 0; j < hd; j++) q[g][j] = m->qkv[h * hd + j] * scale;
        keys[g] = a->k_cache + (size_t)h * a->rows * hd;
        values[g] = a->v_cache + (size_t)h * a->rows * hd;
        v_own[g] = m->qkv + 2 * d + h * hd;
        scores[g] = m->scores + (size_t)h * m->scores_rows;
        out[g] = m->mixed + h * hd;
        scores[g][kv_len] = top[g] = sv_dot(m->qkv + d + h * hd, q[g], hd);
    }
#if SV_KERNEL == 1
    if (hd % 16 == 0 && hd <= 64) {
        int lanes = hd / 16;
        for (int r = 0; r < kv_len; r++)
            for (int g = 0; g < count; g++) {
                const float *key = keys[g] + (size_t)r * hd;
                __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(key), _mm512_loadu_ps(q[g]));
                for (int c = 1; c < lanes; c++) acc = _mm512_fmadd_ps(_mm512_loadu_ps(key + 16 * c), _mm512_loadu_ps(q[g] + 16 * c), acc);
                float score = _mm512_reduce_add_ps(acc);
                scores[g][r] = score;
                top[g] = score > top[g] ? score : top[g];
            }
        for (int g = 0; g < count; g++) {
            __m512 peak = _mm512_set1_ps(top[g]), sums = _mm512_setzero_ps();
            int r = 0;
            for (; r + 16 <= kv_len + 1; r += 16) {
                __m512 e = sv_exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(scores[g] + r), peak));
                _mm512_storeu_ps(scores[g] + r, e);
                sums = _mm512_add_ps(sums, e);
            }
            if (r < kv_len + 1) {
                __mmask16 tail = (__mmask16)((1u << (kv_len + 1 - r)) - 1);
                __m512 e = _mm512_maskz_mov_ps(tail, sv_exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, scores[g] + r), peak)));
                _mm512_mask_storeu_ps(scores[g] + r, tail, e);
                sums = _mm512_add_ps(sums, e);
            }
            inv[g] = 1.0f / _mm512_reduce_add_ps(sums);
        }
        __m512 acc[SV_HEADS_AT_ONCE][4];
        for (int g = 0; g < count; g++) {
            __m512 w_own = _mm512_set1_ps(scores[g][kv_len] * inv[g]);
            for (int c = 0; c < lanes; c++) acc[g][c] = _mm512_mul_ps(w_own, _mm512_loadu_ps(v_own[g] + 16 * c));
        }
        for (int r = 0; r < kv_len; r++)
            for (int g = 0; g < count; g++) {
                __m512 w = _mm512_set1_ps(scores[g][r] * inv[g]);
                const float *v = values[g] + (size_t)r * hd;
                for (int c = 0; c < lanes; c++) acc[g][c] = _mm512_fmadd_ps(w, _mm512_loadu_ps(v + 16 * c), acc[g][c]);
            }
        for (int g = 0; g < count; g++)
            for (int c = 0; c < lanes; c++) _mm512_storeu_ps(out[g] + 16 * c, acc[g][c]);
        return;
    }
#endif
    for (int g = 0; g < count; g++) {
        for (int r = 0; r < kv_len; r++) {
            scores[g][r] = sv_dot(keys[g] + (size_t)r * hd, q[g], hd);
            top[g] = scores[g][r] > top[g] ? scores[g][r] : top[g];
        }
        float total = 0.0f;
        for (int r = 0; r <= kv_len; r++) total += scores[g][r] = expf(scores[g][r] - top[g]);
        float w_inv = 1.0f / total;
        for (int j = 0; j < hd; j++) out[g][j] = scores[g][kv_len] * w_inv * v_own[g][j];
        for (int r = 0; r < kv_len; r++) {
            float w = scores[g][r] * w_inv;
            const float *v = values[g] + (size_t)r * hd;
            for (int j = 0; j < hd; j++) out[g][j] += w * v[j];
        }
    }
}

/* Tasks are groups of SV_HEADS_AT_ONCE heads (the last may hold fewer). */
static void sv_attention_task(void *ctx, int begin, int end) {
    const sv_attention *a = ctx;
    for (int group = begin; group < end; group++) {
        int h0 = group * SV_HEADS_AT_ONCE, count = a->m->heads - h0 < SV_HEADS_AT_ONCE ? a->m->heads - h0 : SV_HEADS_AT_ONCE;
        sv_attention_heads(a, h0, count);
    }
}

/* One step. k_cache/v_cache: [n_layer, heads, rows, hd] float32 (head-major, rows < kv_len valid); with `write_row`
 * the new token's K/V are also written into row kv_len of every head (which must exist). logits: [vocab];
 * k_new/v_new: [n_layer, d]. Returns 0, or -1 for a bad argument. */
int sv_step(sv_model *m, int64_t token, int64_t position, int64_t kv_len, float *k_cache, float *v_cache,
            int rows, int write_row, float *logits, float *k_new, float *v_new) {
    int d = m->d, hd = d / m->heads;
    if (token < 0 || token >= m->emb_rows || kv_len < 0 || kv_len > rows || position < 0) return -1;
    if (write_row && kv_len >= rows) return -1;
    for (int i = 0; i < m->n_layer * SV_PER_LAYER + 1; i++)
        if (!m->mats[i].w) return -1;
    if (m->scores_rows < kv_len + 1) {
        int want = (int)kv_len + 1 + 256;
        float *grown = realloc(m->scores, sizeof(float) * (size_t)m->heads * want);
        if (!grown) return -1;
        m->scores = grown;
        m->scores_rows = want;
    }
    float *x = m->x;
    const float *emb = m->embedding + (size_t)token * d;
    float pos = (float)position;
    for (int i = 0; i < d / 2; i++) {
        float angle = pos * m->rates[i];
        x[2 * i] = emb[2 * i] + m->alpha * sinf(angle);
        x[2 * i + 1] = emb[2 * i + 1] + m->alpha * cosf(angle);
    }
    size_t layer_cache = (size_t)m->heads * rows * hd;
    for (int l = 0; l < m->n_layer; l++) {
        const sv_matrix *mats = m->mats + l * SV_PER_LAYER;
        const float *vec = m->vectors;
        sv_multiply(m, &mats[SV_QKV], x, vec + sv_vector_offset(m, l, SV_B_QKV), 0, m->qkv);
        memcpy(k_new + (size_t)l * d, m->qkv + d, sizeof(float) * d);
        memcpy(v_new + (size_t)l * d, m->qkv + 2 * d, sizeof(float) * d);
        if (write_row) /* rows >= kv_len are not read this step: the new row may go in now */
            for (int h = 0; h < m->heads; h++) {
                size_t at = l * layer_cache + ((size_t)h * rows + kv_len) * hd;
                memcpy(k_cache + at, m->qkv + d + h * hd, sizeof(float) * hd);
                memcpy(v_cache + at, m->qkv + 2 * d + h * hd, sizeof(float) * hd);
            }
        sv_attention att = {m, k_cache + l * layer_cache, v_cache + l * layer_cache, rows, (int)kv_len};
        sv_parallel(&m->pool, sv_attention_task, &att, (m->heads + SV_HEADS_AT_ONCE - 1) / SV_HEADS_AT_ONCE, 1);
        sv_multiply(m, &mats[SV_OUT], m->mixed, vec + sv_vector_offset(m, l, SV_B_OUT), 0, m->proj);
        for (int i = 0; i < d; i++) x[i] += m->proj[i];
        sv_layer_norm(x, d, vec + sv_vector_offset(m, l, SV_N1_W), vec + sv_vector_offset(m, l, SV_N1_B), m->eps);
        sv_multiply(m, &mats[SV_FF1], x, vec + sv_vector_offset(m, l, SV_B_FF1), 1, m->hidden);
        sv_multiply(m, &mats[SV_FF2], m->hidden, vec + sv_vector_offset(m, l, SV_B_FF2), 0, m->proj);
        for (int i = 0; i < d; i++) x[i] += m->proj[i];
        sv_layer_norm(x, d, vec + sv_vector_offset(m, l, SV_N2_W), vec + sv_vector_offset(m, l, SV_N2_B), m->eps);
    }
    sv_multiply(m, &m->mats[m->n_layer * SV_PER_LAYER], x, NULL, 0, logits);
    return 0;
}

#include "bertkit_dnnl.h"
#include <oneapi/dnnl/dnnl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dnnl_engine_t engine;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static dnnl_status_t init_status = dnnl_runtime_error;

static void init(void) {
    init_status = dnnl_engine_create(&engine, dnnl_cpu, 0);
}

// A stream per calling thread (a stream is not for concurrent use).
static dnnl_stream_t thread_stream(void) {
    static __thread dnnl_stream_t stream = NULL;
    if (!stream && dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) stream = NULL;
    return stream;
}

// Debian's oneDNN runs on OpenMP: each calling thread asks for one OpenMP thread (the ICV is per
// thread), found at run time since libgomp comes in with libdnnl.
static void single_thread(void) {
    static __thread int done = 0;
    if (done) return;
    void (*set)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    if (set) set(1);
    done = 1;
}

// A primitive per shape, made once: oneDNN's primitive descriptors cost tens of microseconds, more
// than one of attention's per-head products. Workers run one primitive from several threads at once,
// which oneDNN allows only with a user-managed scratchpad: with the library's (the default), the
// scratchpad is shared by every primitive and a primitive must run on the thread that made it, and two
// workers running one shape at once overwrote each other's partial results (found on the first run on
// avx512_bf16 hardware: attention with dropout off by 0.7 at 2 threads). So each primitive is made in
// user mode and each call passes its thread's own scratchpad. The shapes of a run are few but vary with the sequence
// length and, in the last layer, with the rows kept, so the cache is a hash table read under a shared
// lock; it never removes an entry (a pointer into it stays valid) and, once three quarters full,
// hands out uncached primitives that the caller destroys.
typedef struct {
    int trans_a, trans_b;
    dnnl_data_type_t type;  // of A and B (dnnl_bf16, or dnnl_f32 for the plumbing check)
    int64_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    dnnl_primitive_t primitive;  // NULL: an empty slot
    dnnl_memory_desc_t a_md, b_md, c_md, scratch_md;
    size_t scratch_bytes;  // the scratchpad the primitive needs per call (0: none)
} entry_t;

#define CACHE_SLOTS 2048  // a power of two
#define CACHE_LIMIT (CACHE_SLOTS / 4 * 3)
static entry_t cache[CACHE_SLOTS];
static int cache_used = 0;
static pthread_rwlock_t cache_lock = PTHREAD_RWLOCK_INITIALIZER;

static void matrix_desc(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int64_t ld, int trans, dnnl_data_type_t type) {
    // op(X) is (rows, cols); stored row-major (rows, cols) with stride ld, or (cols, rows) when trans.
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides;
    if (trans) { strides[0] = 1; strides[1] = ld; } else { strides[0] = ld; strides[1] = 1; }
    dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides);
}

static dnnl_status_t make(entry_t *e) {
    matrix_desc(&e->a_md, e->m, e->k, e->lda, e->trans_a, e->type);
    matrix_desc(&e->b_md, e->k, e->n, e->ldb, e->trans_b, e->type);
    matrix_desc(&e->c_md, e->m, e->n, e->ldc, 0, dnnl_f32);
    dnnl_matmul_desc_t desc;
    dnnl_status_t s = dnnl_matmul_desc_init(&desc, &e->a_md, &e->b_md, NULL, &e->c_md);
    if (s != dnnl_success) return s;
    dnnl_primitive_attr_t attr;
    s = dnnl_primitive_attr_create(&attr);
    if (s != dnnl_success) return s;
    if ((s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)) != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return s;
    }
    if (e->alpha != 1.0f && (s = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &e->alpha)) != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return s;
    }
    if (e->beta != 0.0f) {
        dnnl_post_ops_t ops;
        if ((s = dnnl_post_ops_create(&ops)) != dnnl_success) { dnnl_primitive_attr_destroy(attr); return s; }
        s = dnnl_post_ops_append_sum(ops, e->beta);
        if (s == dnnl_success) s = dnnl_primitive_attr_set_post_ops(attr, ops);
        dnnl_post_ops_destroy(ops);
        if (s != dnnl_success) { dnnl_primitive_attr_destroy(attr); return s; }
    }
    dnnl_primitive_desc_t pd;
    s = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return s;
    const dnnl_memory_desc_t *scratch = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (scratch) {
        e->scratch_md = *scratch;
        e->scratch_bytes = dnnl_memory_desc_get_size(scratch);
    } else {
        memset(&e->scratch_md, 0, sizeof e->scratch_md);
        e->scratch_bytes = 0;
    }
    s = dnnl_primitive_create(&e->primitive, pd);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

static int same_shape(const entry_t *a, const entry_t *b) {
    return a->trans_a == b->trans_a && a->trans_b == b->trans_b && a->type == b->type && a->m == b->m && a->n == b->n &&
           a->k == b->k && a->lda == b->lda && a->ldb == b->ldb && a->ldc == b->ldc && a->alpha == b->alpha && a->beta == b->beta;
}

static uint64_t shape_hash(const entry_t *e) {
    uint32_t alpha, beta;
    memcpy(&alpha, &e->alpha, 4);
    memcpy(&beta, &e->beta, 4);
    uint64_t v[] = {(uint64_t)(e->trans_a | e->trans_b << 1 | (uint64_t)e->type << 2), (uint64_t)e->m, (uint64_t)e->n,
                    (uint64_t)e->k, (uint64_t)e->lda, (uint64_t)e->ldb, (uint64_t)e->ldc, alpha | (uint64_t)beta << 32};
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 8; i++) {
        h ^= v[i];
        h *= 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    return h;
}

// The slot holding key's shape, or the empty slot where it would go (NULL only if the table were full,
// which CACHE_LIMIT prevents). Call under the lock.
static entry_t *probe(const entry_t *key) {
    for (uint64_t i = shape_hash(key), n = 0; n < CACHE_SLOTS; i++, n++) {
        entry_t *e = &cache[i & (CACHE_SLOTS - 1)];
        if (!e->primitive || same_shape(e, key)) return e;
    }
    return NULL;
}

// The cached primitive for key's shape, made on first use; when the cache is at its limit, *found is
// key itself with a primitive the caller destroys (*owned = 1).
static dnnl_status_t lookup(entry_t *key, entry_t **found, int *owned) {
    *owned = 0;
    pthread_rwlock_rdlock(&cache_lock);
    entry_t *e = probe(key);
    int hit = e && e->primitive;  // a filled slot never changes again
    pthread_rwlock_unlock(&cache_lock);
    if (hit) { *found = e; return dnnl_success; }
    pthread_rwlock_wrlock(&cache_lock);
    e = probe(key);
    dnnl_status_t s = dnnl_success;
    if (e && e->primitive) {
        *found = e;
    } else if ((s = make(key)) == dnnl_success) {
        if (e && cache_used < CACHE_LIMIT) {
            *e = *key;
            cache_used++;
            *found = e;
        } else {
            *found = key;
            *owned = 1;
        }
    }
    pthread_rwlock_unlock(&cache_lock);
    return s;
}

int bertkit_dnnl_bf16_matmul_available(void) {
    pthread_once(&once, init);
    if (init_status != dnnl_success) return 0;
    entry_t key = {0, 1, dnnl_bf16, 32, 32, 32, 32, 32, 32, 1.0f, 0.0f, NULL, {0}, {0}, {0}, {0}, 0};
    entry_t *e = NULL;
    int owned = 0;
    dnnl_status_t s = lookup(&key, &e, &owned);
    if (s == dnnl_success && owned) dnnl_primitive_destroy(e->primitive);
    return s == dnnl_success;
}

// Memory objects cost about a microsecond each to make, as much as one of attention's per-head
// products takes on bf16 units, so each thread keeps a set per cached shape it used lately (a few
// slots, replaced round-robin) and only points them at each call's buffers. They live as long as the
// thread (the workers are pooled): at most BOUND_SLOTS sets per thread. Measured through the fp32 twin
// on a 4×4×4 product: 3.8 µs a call with memory objects made per call, 0.9 µs reused.
typedef struct {
    const entry_t *entry;  // NULL: a free slot
    dnnl_memory_t a, b, c, scratch;  // scratch: NULL when the primitive needs none
} bound_t;

// This thread's scratchpad, grown to the largest any of its calls needed (64-byte aligned); NULL when
// it cannot grow.
static void *thread_scratchpad(size_t bytes) {
    static __thread void *buffer = NULL;
    static __thread size_t capacity = 0;
    if (bytes <= capacity) return buffer;
    free(buffer);
    size_t rounded = (bytes + 63) / 64 * 64;
    buffer = aligned_alloc(64, rounded);
    capacity = buffer ? rounded : 0;
    return buffer;
}

#define BOUND_SLOTS 16

static bound_t *bound_memories(const entry_t *e) {
    static __thread bound_t slots[BOUND_SLOTS];
    static __thread int next = 0;
    for (int i = 0; i < BOUND_SLOTS; i++) if (slots[i].entry == e) return &slots[i];
    bound_t *m = &slots[next];
    next = (next + 1) % BOUND_SLOTS;
    if (m->entry) {
        dnnl_memory_destroy(m->a);
        dnnl_memory_destroy(m->b);
        dnnl_memory_destroy(m->c);
        if (m->scratch) dnnl_memory_destroy(m->scratch);
        m->entry = NULL;
    }
    // Made with no buffer; each call sets it.
    if (dnnl_memory_create(&m->a, &e->a_md, engine, DNNL_MEMORY_NONE) != dnnl_success) return NULL;
    if (dnnl_memory_create(&m->b, &e->b_md, engine, DNNL_MEMORY_NONE) != dnnl_success) {
        dnnl_memory_destroy(m->a);
        return NULL;
    }
    if (dnnl_memory_create(&m->c, &e->c_md, engine, DNNL_MEMORY_NONE) != dnnl_success) {
        dnnl_memory_destroy(m->a);
        dnnl_memory_destroy(m->b);
        return NULL;
    }
    m->scratch = NULL;
    if (e->scratch_bytes && dnnl_memory_create(&m->scratch, &e->scratch_md, engine, DNNL_MEMORY_NONE) != dnnl_success) {
        dnnl_memory_destroy(m->a);
        dnnl_memory_destroy(m->b);
        dnnl_memory_destroy(m->c);
        return NULL;
    }
    m->entry = e;
    return m;
}

static int gemm(dnnl_data_type_t type, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const void *a, int64_t lda, const void *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    pthread_once(&once, init);
    if (init_status != dnnl_success) return init_status;
    single_thread();
    entry_t key = {trans_a != 0, trans_b != 0, type, m, n, k, lda, ldb, ldc, alpha, beta, NULL, {0}, {0}, {0}, {0}, 0};
    entry_t *e = NULL;
    int owned = 0;
    dnnl_stream_t stream = thread_stream();
    if (!stream) return dnnl_out_of_memory;
    dnnl_status_t s = lookup(&key, &e, &owned);
    if (s != dnnl_success) return s;
    void *scratch = NULL;
    if (e->scratch_bytes && !(scratch = thread_scratchpad(e->scratch_bytes))) {
        if (owned) dnnl_primitive_destroy(e->primitive);
        return dnnl_out_of_memory;
    }
    if (!owned) {
        // A cached shape: this thread's memory objects for it, pointed at this call's buffers.
        bound_t *m = bound_memories(e);
        if (!m) return dnnl_out_of_memory;
        if ((s = dnnl_memory_set_data_handle(m->a, (void *)a)) != dnnl_success ||
            (s = dnnl_memory_set_data_handle(m->b, (void *)b)) != dnnl_success ||
            (s = dnnl_memory_set_data_handle(m->c, c)) != dnnl_success ||
            (m->scratch && (s = dnnl_memory_set_data_handle(m->scratch, scratch)) != dnnl_success)) return s;
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, m->a}, {DNNL_ARG_WEIGHTS, m->b}, {DNNL_ARG_DST, m->c}, {DNNL_ARG_SCRATCHPAD, m->scratch}};
        s = dnnl_primitive_execute(e->primitive, stream, m->scratch ? 4 : 3, args);
        return s == dnnl_success ? dnnl_stream_wait(stream) : s;
    }
    // An uncached primitive (a full cache): everything made for this call is released after it.
    dnnl_memory_t am = NULL, bm = NULL, cm = NULL, sm = NULL;
    if ((s = dnnl_memory_create(&am, &e->a_md, engine, (void *)a)) != dnnl_success) goto done;
    if ((s = dnnl_memory_create(&bm, &e->b_md, engine, (void *)b)) != dnnl_success) goto done;
    if ((s = dnnl_memory_create(&cm, &e->c_md, engine, c)) != dnnl_success) goto done;
    if (scratch && (s = dnnl_memory_create(&sm, &e->scratch_md, engine, scratch)) != dnnl_success) goto done;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}, {DNNL_ARG_SCRATCHPAD, sm}};
    s = dnnl_primitive_execute(e->primitive, stream, sm ? 4 : 3, args);
    if (s == dnnl_success) s = dnnl_stream_wait(stream);
done:
    if (am) dnnl_memory_destroy(am);
    if (bm) dnnl_memory_destroy(bm);
    if (cm) dnnl_memory_destroy(cm);
    if (sm) dnnl_memory_destroy(sm);
    dnnl_primitive_destroy(e->primitive);
    return s;
}

int bertkit_dnnl_gemm_bf16(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                           const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb, float beta,
                           float *c, int64_t ldc) {
    return gemm(dnnl_bf16, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int bertkit_dnnl_gemm_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                          const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                          float *c, int64_t ldc) {
    return gemm(dnnl_f32, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int bertkit_dnnl_cached_shapes(void) {
    pthread_rwlock_rdlock(&cache_lock);
    int n = cache_used;
    pthread_rwlock_unlock(&cache_lock);
    return n;
}

int bertkit_dnnl_cache_limit(void) { return CACHE_LIMIT; }

const char *bertkit_dnnl_version(void) {
    static char text[32];
    const dnnl_version_t *v = dnnl_version();
    snprintf(text, sizeof text, "%d.%d.%d", v->major, v->minor, v->patch);
    return text;
}

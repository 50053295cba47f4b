// Softmax cross-entropy on device memory: the same math as python_layers/loss/engine.py, with
// the same coefficient rule and Z (target_coefficients, z_divisor: see their tests).
//
// Scores are viewed as (outer, C, inner); a position is one (outer, inner) pair and its C
// scores lie `inner` apart. Three kernels, all on the stream Caffe uses:
//   1. position_stats (forward): per position, the max, log sum exp, the targets' sums and
//      coefficients, the loss term and Z's share, and whether the inputs there are bad;
//   2. finish (forward): one block sums those in a fixed order (deterministic), writes the
//      loss (into Caffe's top blob too) and 1 / Z;
//   3. position_outputs: probabilities (forward); in backward, from the scores, the targets
//      and what forward kept (never from what the outputs held), the gradient and the
//      targets' gradient. It writes nothing when finish found bad input, so that bad input
//      leaves every output as it was.
// Each per-position kernel comes in two shapes: a block per position (large C: the block's
// threads share the classes and reduce in shared memory) and a thread per position (small C,
// or positions along `inner`, where neighbouring threads read neighbouring scores).
//
// Arguments are uniform so that one Python list feeds CuPy and the tests' host emulation:
// pointers as unsigned long long, integers as long long, reals as double.
// Notation as in engine.py: a_c = w_c (scale t_c + offset) (dense) or
// w_c offset + sum_j coef_j [c == code_j] (label lists; index targets are lists of one);
// mass = sum_c a_c; loss term = mass * L - sum_c a_c (s_c - max), L = log sum_c exp(s_c - max).

typedef unsigned long long u64;
typedef long long i64;

#ifndef INFINITY  // NVRTC compiles without the C library's headers
#define INFINITY __int_as_float(0x7f800000)
#endif

#define MAX_THREADS 1024  // the largest block (a power of two); blocks use powers of two

enum Kind { DENSE = 0, SPARSE = 1 };
// What Z counts: the rule comes from python_layers/loss/normalize.py (divisor_rule).
enum ZCounts { Z_FIXED = 0, Z_VALID = 1, Z_WEIGHTS = 2 };
enum Bad { GOOD = 0, BAD_SCORES = 1, BAD_TARGETS = 2 };

// Per-position statistics kept between the kernels (doubles).
enum Stat { S_MAX, S_LOG_SUM, S_MASS, S_SCALE, S_OFFSET, S_SUM_T, S_SUM_WT, S_SUM_WTS, N_STATS };
// Per-position partial results for finish (doubles): loss term, Z's share, bad code.
enum Part { P_LOSS, P_Z, P_BAD, N_PARTS };
// finish's results (doubles): loss, 1 / Z, bad code, bad position.
enum Status { R_LOSS, R_INV_Z, R_BAD, R_BAD_AT, N_STATUS };

// --- Block reductions and teams (the threads that share one position) ----------------------
enum Reduce { SUM, MIN, MAX };

// The block's total, minimum or maximum of one value per thread, in a fixed order; every
// thread gets it. `shared` holds MAX_THREADS doubles; blockDim.x is a power of two.
__device__ double block_reduce(double value, double* shared, Reduce how) {
  const int t = threadIdx.x;
  shared[t] = value;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (t < half) {
      const double a = shared[t], b = shared[t + half];
      shared[t] = how == SUM ? a + b : (how == MIN ? fmin(a, b) : fmax(a, b));
    }
    __syncthreads();
  }
  const double result = shared[0];
  __syncthreads();
  return result;
}

template <bool BLOCK>
struct Team {
  __device__ static int rank() { return BLOCK ? (int)threadIdx.x : 0; }
  __device__ static int size() { return BLOCK ? (int)blockDim.x : 1; }
  __device__ static void sync() {
    if (BLOCK) __syncthreads();
  }
  __device__ static void sum(double* values, int n, double* shared) {
    if (BLOCK)
      for (int k = 0; k < n; ++k) values[k] = block_reduce(values[k], shared, SUM);
  }
  __device__ static float max(float value, double* shared) {
    return BLOCK ? (float)block_reduce(value, shared, MAX) : value;
  }
};

struct Position {  // where one position's scores lie
  i64 base, stride;
  __device__ Position(i64 pos, i64 classes, i64 inner)
      : base((pos / inner) * classes * inner + pos % inner), stride(inner) {}
  __device__ i64 at(i64 c) const { return base + c * stride; }
};

__device__ inline float class_weight(const float* w, i64 c) { return w ? w[c] : 1.0f; }

// The targets' coefficients of a position whose targets sum to `total` and whose
// class-weighted targets sum to `weighted`: python_layers/loss/coefficients.py's
// `coefficients`, the one rule for every form, line for line (tests/test_coefficients.py
// holds the two to each other on every branch).
struct Coefficients {
  double scale, offset, mass;
};
__device__ inline Coefficients target_coefficients(
    double total, double weighted, double eps, i64 normalize, i64 classes, double weight_sum) {
  if (!(total > 0.0)) return {0.0, 0.0, 0.0};
  const double scale = normalize ? (1.0 - eps) / total : 1.0 - eps;
  const double offset = eps / classes;
  return {scale, offset, scale * weighted + offset * weight_sum};
}

// Z: python_layers/loss/normalize.py's `divisor` (the fixed Z or the count; clamped to >= 1,
// or for the weighted count only 0 -> 1), held to it by tests/test_coefficients.py.
__device__ inline double z_divisor(i64 z_counts, double z_fixed, i64 z_clamp, double counted) {
  const double z = z_counts == Z_FIXED ? z_fixed : counted;
  return z_clamp ? fmax(1.0, z) : (z > 0.0 ? z : 1.0);
}

// A label's index in the (outer, K, inner) label array.
__device__ inline i64 label_at(i64 pos, i64 j, i64 width, i64 inner) {
  return ((pos / inner) * width + j) * inner + pos % inner;
}

// --- 1. Statistics per position ------------------------------------------------------------
template <bool BLOCK>
__device__ void position_stats(
    i64 pos, const float* s, const float* t, const float* lw, const float* w, i64 classes,
    i64 inner, i64 width, i64 kind, i64 has_lw, i64 normalize, i64 has_pad, double pad,
    i64 z_counts, double eps, double weight_sum, double* stats, int* codes, float* coefs,
    double* parts, double* shared) {
  typedef Team<BLOCK> T;
  const Position p(pos, classes, inner);
  // 1. max, and whether the scores are finite
  float m = -INFINITY;
  double bad_scores = 0.0;
  for (i64 c = T::rank(); c < classes; c += T::size()) {
    const float v = s[p.at(c)];
    if (!isfinite(v)) bad_scores = 1.0;
    m = fmaxf(m, v);
  }
  m = T::max(m, shared);
  // 2. sums over the classes: exp, and for dense targets t, w t, w t (s - max), and w (s - max)
  double sums[7] = {0.0, 0.0, 0.0, 0.0, 0.0, bad_scores, 0.0};  // exp T WT WTS WS bad_s bad_t
  for (i64 c = T::rank(); c < classes; c += T::size()) {
    const float shifted = s[p.at(c)] - m;
    const float wc = class_weight(w, c);
    sums[0] += (double)expf(shifted);
    sums[4] += (double)wc * shifted;
    if (kind == DENSE) {
      const float tc = t[p.at(c)];
      if (!(tc >= 0.0f && isfinite(tc))) sums[6] = 1.0;
      sums[1] += tc;
      sums[2] += (double)wc * tc;
      sums[3] += (double)wc * tc * shifted;
    }
  }
  T::sum(sums, 7, shared);
  if (T::rank() != 0) return;
  const double log_sum = log(sums[0]);
  double dot, z, sum_t = sums[1], bad_targets = sums[6];
  Coefficients a;
  if (kind == DENSE) {
    a = target_coefficients(sum_t, sums[2], eps, normalize, classes, weight_sum);
    dot = a.scale * sums[3] + a.offset * sums[4];
    z = sum_t > 0.0 ? 1.0 : 0.0;
  } else {  // label lists (index targets: lists of one whose padding is ignore_label)
    sum_t = 0.0;
    double weighted = 0.0;
    for (i64 j = 0; j < width; ++j) {
      const i64 at = label_at(pos, j, width, inner);
      const float label = t[at];
      const bool padded = has_pad && label == (float)pad;
      const bool known = label == floorf(label) && label >= 0.0f && label < (float)classes;
      if (!(padded || known)) bad_targets = 1.0;
      float weight = has_lw ? lw[at] : 1.0f;
      if (!(weight >= 0.0f && isfinite(weight))) bad_targets = 1.0;
      const bool listed = known && !padded;
      const int code = listed ? (int)label : 0;  // padding reads class 0 with weight 0
      weight = listed ? weight : 0.0f;
      codes[pos * width + j] = code;
      coefs[pos * width + j] = weight;  // the label's weight for now; scaled below
      sum_t += weight;
      weighted += (double)weight * class_weight(w, code);
    }
    const bool valid = sum_t > 0.0;
    a = target_coefficients(sum_t, weighted, eps, normalize, classes, weight_sum);
    dot = a.offset * sums[4];
    for (i64 j = 0; j < width; ++j) {
      const int code = codes[pos * width + j];
      const float coef = (float)(coefs[pos * width + j] * a.scale) * class_weight(w, code);
      coefs[pos * width + j] = coef;
      dot += (double)coef * (s[p.at(code)] - m);
    }
    z = z_counts == Z_WEIGHTS ? (valid ? weighted : 0.0) : (valid ? 1.0 : 0.0);
  }
  double* st = stats + pos * N_STATS;
  st[S_MAX] = m;
  st[S_LOG_SUM] = log_sum;
  st[S_MASS] = a.mass;
  st[S_SCALE] = a.scale;
  st[S_OFFSET] = a.offset;
  st[S_SUM_T] = sum_t;
  st[S_SUM_WT] = sums[2];
  st[S_SUM_WTS] = sums[3];
  double* part = parts + pos * N_PARTS;
  part[P_LOSS] = a.mass * log_sum - dot;
  part[P_Z] = z;
  part[P_BAD] = sums[5] > 0.0 ? BAD_SCORES : (bad_targets > 0.0 ? BAD_TARGETS : GOOD);
}

#define STATS_PARAMS                                                                        \
  u64 scores, u64 targets, u64 label_weights, u64 class_weights, i64 positions, i64 classes, \
      i64 inner, i64 width, i64 kind, i64 has_lw, i64 normalize, i64 has_pad, double pad,   \
      i64 z_counts, double eps, double weight_sum, u64 stats, u64 codes, u64 coefs, u64 parts
#define STATS_ARGS                                                                          \
  (const float*)scores, (const float*)targets, (const float*)label_weights,                 \
      (const float*)class_weights, classes, inner, width, kind, has_lw, normalize, has_pad, \
      pad, z_counts, eps, weight_sum, (double*)stats, (int*)codes, (float*)coefs, (double*)parts

extern "C" __global__ void stats_block(STATS_PARAMS) {
  __shared__ double shared[MAX_THREADS];
  position_stats<true>((i64)blockIdx.x, STATS_ARGS, shared);
}

extern "C" __global__ void stats_thread(STATS_PARAMS) {
  const i64 pos = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (pos < positions) position_stats<false>(pos, STATS_ARGS, nullptr);
}

// --- 2. Loss, Z and the scales: one block, a fixed summation order ---------------------------
extern "C" __global__ void finish(
    u64 parts_, i64 positions, i64 z_counts, double z_fixed, i64 z_clamp, u64 status_,
    u64 loss_out) {
  __shared__ double shared[MAX_THREADS];
  const double* parts = (const double*)parts_;
  double* status = (double*)status_;
  double loss = 0.0, counted = 0.0, first_bad = (double)positions;  // Z's shares; none bad
  for (i64 pos = threadIdx.x; pos < positions; pos += blockDim.x) {
    const double* part = parts + pos * N_PARTS;
    loss += part[P_LOSS];
    counted += part[P_Z];
    if (part[P_BAD] != GOOD && pos < first_bad) first_bad = (double)pos;
  }
  loss = block_reduce(loss, shared, SUM);
  counted = block_reduce(counted, shared, SUM);
  first_bad = block_reduce(first_bad, shared, MIN);
  if (threadIdx.x != 0) return;
  const double z = z_divisor(z_counts, z_fixed, z_clamp, counted);
  loss /= z;
  status[R_LOSS] = loss;
  status[R_INV_Z] = 1.0 / z;
  status[R_BAD] = first_bad < positions ? parts[(i64)first_bad * N_PARTS + P_BAD] : GOOD;
  status[R_BAD_AT] = first_bad;
  if (loss_out && first_bad >= positions) *(float*)loss_out = (float)loss;
}

// --- 3. Gradient, probabilities and the targets' gradient ----------------------------------
template <bool BLOCK>
__device__ void position_outputs(
    i64 pos, const float* s, const float* t, const float* lw, const float* w, i64 classes,
    i64 inner, i64 width, i64 kind, i64 normalize, double eps, const double* stats,
    const int* codes, const float* coefs, const double* status, double grad_scale,
    double target_scale, float* grad, float* probs, float* target_grad, float* weight_grad) {
  typedef Team<BLOCK> T;
  const Position p(pos, classes, inner);
  const double* st = stats + pos * N_STATS;
  const float m = (float)st[S_MAX];
  const double log_sum = st[S_LOG_SUM], sum_t = st[S_SUM_T];
  const double sum_exp = exp(log_sum);
  const float inverse = (float)(1.0 / sum_exp);  // 1 / sum exp, as engine.py's float32
  const double grad_z = grad_scale * status[R_INV_Z];  // loss weight / Z
  const float g = (float)grad_z, tg = (float)(target_scale * status[R_INV_Z]);
  const float grad_mass = (float)(grad_z * st[S_MASS] / sum_exp);
  const float scale = (float)st[S_SCALE], offset = (float)st[S_OFFSET];
  // d loss / d normalised targets, projected through t / sum(t) (dense targets)
  const double projection = sum_t > 0.0 ? (log_sum * st[S_SUM_WT] - st[S_SUM_WTS]) / sum_t : 0.0;
  const bool per_class = grad || probs || target_grad;  // else only the label weights' gradient
  for (i64 c = T::rank(); per_class && c < classes; c += T::size()) {
    const i64 at = p.at(c);
    const float shifted = s[at] - m;
    const float e = expf(shifted);
    const float wc = class_weight(w, c);
    if (probs) probs[at] = e * inverse;
    if (grad) {
      const float a = kind == DENSE ? wc * (scale * t[at] + offset) : wc * offset;
      grad[at] = e * grad_mass - g * a;
    }
    if (target_grad) {  // (1 - eps) w_c (-log p_c), through the normalisation; 0 if ignored
      double unit = 0.0;
      if (sum_t > 0.0) {
        unit = (1.0 - eps) * wc * (log_sum - (double)shifted);
        if (normalize) unit = (unit - (1.0 - eps) * projection) / sum_t;
      }
      target_grad[at] = (float)((double)tg * unit);
    }
  }
  if (kind == DENSE) return;
  T::sync();  // the row's gradient is written; the listed classes are corrected one by one,
  if (T::rank() != 0) return;  // in order, so that a class listed twice is corrected twice
  double projected = 0.0;
  for (i64 j = 0; j < width && grad; ++j)
    grad[p.at(codes[pos * width + j])] -= g * coefs[pos * width + j];
  if (!weight_grad) return;
  // label weights: the dense targets' gradient gathered at the listed classes
  for (i64 j = 0; j < width; ++j) {  // padding (-1) has no weight
    const i64 at = label_at(pos, j, width, inner);
    const double weight = t[at] >= 0.0f ? lw[at] : 0.0;
    const int code = codes[pos * width + j];
    projected += weight * class_weight(w, code) * (log_sum - (double)(s[p.at(code)] - m));
  }
  for (i64 j = 0; j < width; ++j) {
    const i64 at = label_at(pos, j, width, inner);
    const int code = codes[pos * width + j];
    double unit = 0.0;
    if (sum_t > 0.0 && t[at] >= 0.0f) {
      unit = (1.0 - eps) * class_weight(w, code) * (log_sum - (double)(s[p.at(code)] - m));
      if (normalize) unit = (unit - (1.0 - eps) * projected / sum_t) / sum_t;
    }
    weight_grad[at] = (float)((double)tg * unit);
  }
}

#define OUTPUT_PARAMS                                                                        \
  u64 scores, u64 targets, u64 label_weights, u64 class_weights, i64 positions, i64 classes, \
      i64 inner, i64 width, i64 kind, i64 normalize, double eps, u64 stats, u64 codes,       \
      u64 coefs, u64 status, double grad_scale, double target_scale, u64 grad, u64 probs,    \
      u64 target_grad, u64 weight_grad
#define OUTPUT_ARGS                                                                          \
  (const float*)scores, (const float*)targets, (const float*)label_weights,                  \
      (const float*)class_weights, classes, inner, width, kind, normalize, eps,              \
      (const double*)stats, (const int*)codes, (const float*)coefs, (const double*)status,   \
      grad_scale, target_scale, (float*)grad, (float*)probs, (float*)target_grad,            \
      (float*)weight_grad

extern "C" __global__ void outputs_block(OUTPUT_PARAMS) {
  if (((const double*)status)[R_BAD] != GOOD) return;  // bad input: write nothing
  position_outputs<true>((i64)blockIdx.x, OUTPUT_ARGS);
}

extern "C" __global__ void outputs_thread(OUTPUT_PARAMS) {
  if (((const double*)status)[R_BAD] != GOOD) return;
  const i64 pos = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (pos < positions) position_outputs<false>(pos, OUTPUT_ARGS);
}

// --- A small helper for the layer's other writes (zeros) --------------------------
extern "C" __global__ void fill_floats(u64 data, i64 count, double value) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count) ((float*)data)[i] = (float)value;
}

// Row operations of the fused kernels (declared in kernels.h), vectorised with GCC/Clang vector types: 16 floats
// per step, which is one AVX-512 register, two AVX2 registers or four SSE registers depending on the clone that
// target_clones picked at load time. A row's last partial step goes through the same vector code on a padded copy,
// so every element is computed the same way wherever it sits in the row.
#include "kernels.h"
#include <algorithm>
#include <cmath>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NTS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NTS_CLONES
#endif
#define NTS_INLINE inline __attribute__((always_inline))

namespace nts {
namespace kern {

namespace {
constexpr int64_t W = 16;
typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
typedef uint32_t vu __attribute__((vector_size(64)));
typedef uint16_t vh __attribute__((vector_size(32)));

NTS_INLINE vf Splat(float x) { return vf{} + x; }
NTS_INLINE vi Lanes() { return vi{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}; }

// Loads of m ≤ W elements (lanes ≥ m get `pad`) and stores of the first m lanes.
NTS_INLINE vf Load(const float* p, int64_t m = W, float pad = 0.0f) {
  vf v;
  if (m == W) {
    std::memcpy(&v, p, sizeof v);
  } else {
    float tmp[W];
    for (int64_t i = 0; i < W; i++) tmp[i] = i < m ? p[i] : pad;
    std::memcpy(&v, tmp, sizeof v);
  }
  return v;
}
NTS_INLINE vf Load(const uint16_t* p, int64_t m = W, float pad = 0.0f) {
  vh h;
  if (m == W) {
    std::memcpy(&h, p, sizeof h);
  } else {
    uint16_t tmp[W];
    uint32_t padBits;
    std::memcpy(&padBits, &pad, sizeof padBits);
    for (int64_t i = 0; i < W; i++) tmp[i] = i < m ? p[i] : static_cast<uint16_t>(padBits >> 16);
    std::memcpy(&h, tmp, sizeof h);
  }
  return (vf)(__builtin_convertvector(h, vu) << 16);
}
NTS_INLINE void Store(float* p, vf v, int64_t m = W) {
  if (m == W) {
    std::memcpy(p, &v, sizeof v);
  } else {
    float tmp[W];
    std::memcpy(tmp, &v, sizeof v);
    std::memcpy(p, tmp, m * sizeof(float));
  }
}
// float → bf16, round to nearest even; NaN stays NaN.
NTS_INLINE void Store(uint16_t* p, vf v, int64_t m = W) {
  const vu bits = (vu)v;
  vu rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  rounded = (v != v) ? (vu{} + 0x7fc0u) : rounded;
  const vh h = __builtin_convertvector(rounded, vh);
  if (m == W) {
    std::memcpy(p, &h, sizeof h);
  } else {
    uint16_t tmp[W];
    std::memcpy(tmp, &h, sizeof h);
    std::memcpy(p, tmp, m * sizeof(uint16_t));
  }
}

NTS_INLINE float HSum(vf v) {
  float s = 0.0f;
  for (int i = 0; i < W; i++) s += v[i];
  return s;
}
NTS_INLINE float HMax(vf v) {
  float m = v[0];
  for (int i = 1; i < W; i++) m = v[i] > m ? v[i] : m;
  return m;
}

// exp, ~1 ulp on [-87, 88] (Cephes' expf: 2^n · p(r)); inputs below -87 give ~1e-38, not 0.
NTS_INLINE vf Exp(vf x) {
  x = x < -87.0f ? Splat(-87.0f) : x;
  x = x > 88.0f ? Splat(88.0f) : x;
  const vf magic = Splat(12582912.0f);  // 1.5 · 2^23: adding it rounds to an integer held in the low mantissa bits
  const vf t = x * 1.44269504088896341f + magic;
  const vf n = t - magic;
  const vi ni = (vi)t - (vi)magic;
  const vf r = x - n * 0.693359375f + n * 2.12194440e-4f;
  vf p = Splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * (vf)((ni + 127) << 23);
}

// tanh(u) = 1 − 2 / (exp(2u) + 1): exact limits ±1 for large |u| (exp saturates at e^±87).
NTS_INLINE vf Tanh(vf u) { return 1.0f - 2.0f / (Exp(u + u) + 1.0f); }

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

// Calls step(i, m) over [0, n) in steps of W, the last one with m < W.
template <typename F>
NTS_INLINE void Steps(int64_t n, F&& step) {
  int64_t i = 0;
  for (; i + W <= n; i += W) step(i, W);
  if (i < n) step(i, n - i);
}

template <typename T>
NTS_INLINE float RowMaxT(const T* x, int64_t n) {
  vf m = Splat(-INFINITY);
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) {
    const vf v = Load(x + i, c, -INFINITY);
    m = v > m ? v : m;
  });
  return HMax(m);
}

template <typename T>
NTS_INLINE float SumExpShiftT(const T* x, int64_t n, float shift) {
  vf acc = {};
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) {
    const vf e = Exp(Load(x + i, c) - shift);
    acc += c == W ? e : ((Lanes() < (vi{} + static_cast<int32_t>(c))) ? e : vf{});
  });
  return HSum(acc);
}

template <typename S, typename D>
NTS_INLINE void ScaledSoftmaxT(const S* x, D* g, int64_t n, float lse, float a) {
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) { Store(g + i, Exp(Load(x + i, c) - lse) * a, c); });
}

template <typename T>
NTS_INLINE void BiasGeluT(const T* x, const float* bias, T* y, int64_t n) {
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) {
    const vf h = Load(x + i, c) + Load(bias + i, c);
    const vf t = Tanh(kGeluC * (h + kGeluA * h * h * h));
    Store(y + i, 0.5f * h * (1.0f + t), c);
  });
}

template <typename T>
NTS_INLINE void BiasGeluGradT(const T* x, const float* bias, const T* dy, T* dx, float* dbias, int64_t n) {
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) {
    const vf h = Load(x + i, c) + Load(bias + i, c);
    const vf h2 = h * h;
    const vf t = Tanh(kGeluC * (h + kGeluA * h2 * h));
    const vf d = 0.5f * (1.0f + t) + 0.5f * h * (1.0f - t * t) * kGeluC * (1.0f + 3.0f * kGeluA * h2);
    const vf g = Load(dy + i, c) * d;
    Store(dx + i, g, c);
    Store(dbias + i, Load(dbias + i, c) + g, c);
  });
}

template <typename T>
NTS_INLINE float DotT(const T* a, const T* b, int64_t n) {
  vf acc = {};
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) { acc += Load(a + i, c) * Load(b + i, c); });
  return HSum(acc);
}
}  // namespace

NTS_CLONES float RowMax(const float* x, int64_t n) { return RowMaxT(x, n); }
NTS_CLONES float RowMax(const uint16_t* x, int64_t n) { return RowMaxT(x, n); }

NTS_CLONES float ExpShiftInPlace(float* x, int64_t n, float shift) {
  vf acc = {};
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) {
    const vf e = Exp(Load(x + i, c) - shift);
    Store(x + i, e, c);
    acc += c == W ? e : ((Lanes() < (vi{} + static_cast<int32_t>(c))) ? e : vf{});
  });
  return HSum(acc);
}

NTS_CLONES float SumExpShift(const float* x, int64_t n, float shift) { return SumExpShiftT(x, n, shift); }
NTS_CLONES float SumExpShift(const uint16_t* x, int64_t n, float shift) { return SumExpShiftT(x, n, shift); }

NTS_CLONES void ScaleStore(const float* src, float* dst, int64_t n, float a) {
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) { Store(dst + i, Load(src + i, c) * a, c); });
}
NTS_CLONES void ScaleStore(const float* src, uint16_t* dst, int64_t n, float a) {
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) { Store(dst + i, Load(src + i, c) * a, c); });
}
NTS_CLONES void ScaleInPlace(float* x, int64_t n, float a) {
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) { Store(x + i, Load(x + i, c) * a, c); });
}

NTS_CLONES void SoftmaxGradInPlace(const float* p, float* dp, int64_t n, float d) {
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) { Store(dp + i, Load(p + i, c) * (Load(dp + i, c) - d), c); });
}

NTS_CLONES float Dot(const float* a, const float* b, int64_t n) { return DotT(a, b, n); }
NTS_CLONES float Dot(const uint16_t* a, const uint16_t* b, int64_t n) { return DotT(a, b, n); }

NTS_CLONES void ScaledSoftmax(const float* x, float* g, int64_t n, float lse, float a) { ScaledSoftmaxT(x, g, n, lse, a); }
NTS_CLONES void ScaledSoftmax(const uint16_t* x, uint16_t* g, int64_t n, float lse, float a) { ScaledSoftmaxT(x, g, n, lse, a); }
NTS_CLONES void ScaledSoftmax(const float* x, uint16_t* g, int64_t n, float lse, float a) { ScaledSoftmaxT(x, g, n, lse, a); }

NTS_CLONES void BiasGelu(const float* x, const float* bias, float* y, int64_t n) { BiasGeluT(x, bias, y, n); }
NTS_CLONES void BiasGelu(const uint16_t* x, const float* bias, uint16_t* y, int64_t n) { BiasGeluT(x, bias, y, n); }
NTS_CLONES void BiasGeluGrad(const float* x, const float* bias, const float* dy, float* dx, float* dbias, int64_t n) {
  BiasGeluGradT(x, bias, dy, dx, dbias, n);
}
NTS_CLONES void BiasGeluGrad(const uint16_t* x, const float* bias, const uint16_t* dy, uint16_t* dx, float* dbias, int64_t n) {
  BiasGeluGradT(x, bias, dy, dx, dbias, n);
}

NTS_CLONES void AddStore(const float* src, const float* bias, float* dst, int64_t n) {
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) { Store(dst + i, bias ? Load(src + i, c) + Load(bias + i, c) : Load(src + i, c), c); });
}
NTS_CLONES void AddStore(const float* src, const float* bias, uint16_t* dst, int64_t n) {
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) { Store(dst + i, bias ? Load(src + i, c) + Load(bias + i, c) : Load(src + i, c), c); });
}
NTS_CLONES void AddInto(const float* x, float* acc, int64_t n) {
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) { Store(acc + i, Load(acc + i, c) + Load(x + i, c), c); });
}
NTS_CLONES void AddInto(const uint16_t* x, float* acc, int64_t n) {
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) { Store(acc + i, Load(acc + i, c) + Load(x + i, c), c); });
}

namespace {
// 32 weights of row n starting at i as two float vectors (a, b), paired with x[i .. i+16) and x[i+16 .. i+32).
// float32 weights: the two halves as they lie. bf16 weights: read as 16 uint32 lanes, whose low halves are the even
// elements and high halves the odd ones — `lane << 16` and `lane & 0xffff0000` are those as floats, with no
// widening shuffles — so the rows of x are laid out to match beforehand (DeinterleaveRows).
NTS_INLINE void WeightPair(const float* w, vf& a, vf& b) {
  a = Load(w);
  b = Load(w + W);
}
NTS_INLINE void WeightPair(const uint16_t* w, vf& a, vf& b) {
  vu lanes;
  std::memcpy(&lanes, w, sizeof lanes);
  a = (vf)(lanes << 16);
  b = (vf)(lanes & 0xffff0000u);
}

// y[m, n] for M rows and weight rows [n0, n1). M is a template parameter so that the accumulators stay in
// registers (a runtime M kept them on the stack: half the speed of oneDNN's one-row kernel); two accumulators per
// row so that consecutive FMAs do not wait on each other.
template <int64_t M, typename TW>
NTS_INLINE void SmallRows(const float* xs, const TW* w, int64_t ldw, int64_t K, int64_t n0, int64_t n1, float alpha, float beta, float* y, int64_t ldy) {
  const int64_t K32 = K / (2 * W) * (2 * W);
  for (int64_t n = n0; n < n1; n++) {
    vf even[M] = {}, odd[M] = {};
    const TW* wn = w + n * ldw;
    for (int64_t i = 0; i < K32; i += 2 * W) {
      // Weights are streamed from memory once: fetch 4 KB ahead (3 rows of GPT-2 124M in bf16: 17.9-18.6 →
      // 15.6-16.0 ms per step).
      for (size_t line = 0; line < 2 * W * sizeof(TW); line += 64) __builtin_prefetch(reinterpret_cast<const char*>(wn + i) + 4096 + line);
      vf a, b;
      WeightPair(wn + i, a, b);
      for (int64_t m = 0; m < M; m++) {
        even[m] += a * Load(xs + m * K + i);
        odd[m] += b * Load(xs + m * K + i + W);
      }
    }
    for (int64_t m = 0; m < M; m++) {
      float sum = HSum(even[m] + odd[m]);
      for (int64_t k = K32; k < K; k++) sum += xs[m * K + k] * At(wn, k);
      float* out = y + m * ldy + n;
      *out = alpha * sum + (beta == 0.0f ? 0.0f : beta * *out);
    }
  }
}

template <typename TW>
NTS_INLINE void SmallRowsAnyM(const float* xs, int64_t M, const TW* w, int64_t ldw, int64_t K, int64_t n0, int64_t n1, float alpha, float beta, float* y, int64_t ldy) {
  switch (M) {
    case 1: return SmallRows<1>(xs, w, ldw, K, n0, n1, alpha, beta, y, ldy);
    case 2: return SmallRows<2>(xs, w, ldw, K, n0, n1, alpha, beta, y, ldy);
    case 3: return SmallRows<3>(xs, w, ldw, K, n0, n1, alpha, beta, y, ldy);
    case 4: return SmallRows<4>(xs, w, ldw, K, n0, n1, alpha, beta, y, ldy);
    case 5: return SmallRows<5>(xs, w, ldw, K, n0, n1, alpha, beta, y, ldy);
    case 6: return SmallRows<6>(xs, w, ldw, K, n0, n1, alpha, beta, y, ldy);
    case 7: return SmallRows<7>(xs, w, ldw, K, n0, n1, alpha, beta, y, ldy);
    default: return SmallRows<8>(xs, w, ldw, K, n0, n1, alpha, beta, y, ldy);
  }
}
}  // namespace

NTS_CLONES void SmallRowsTimesWeightsT(const float* x, int64_t M, const float* w, int64_t ldw, int64_t K, int64_t n0, int64_t n1,
                                       float alpha, float beta, float* y, int64_t ldy) {
  SmallRowsAnyM(x, M, w, ldw, K, n0, n1, alpha, beta, y, ldy);
}
NTS_CLONES void SmallRowsTimesWeightsT(const float* xs, int64_t M, const uint16_t* w, int64_t ldw, int64_t K, int64_t n0, int64_t n1,
                                       float alpha, float beta, float* y, int64_t ldy) {
  SmallRowsAnyM(xs, M, w, ldw, K, n0, n1, alpha, beta, y, ldy);
}

NTS_CLONES void AdamWUpdate(float* p, const float* g, float* m, float* v, int64_t n, float decay, float b1, float b2,
                            float stepSize, float invBc2Sqrt, float eps) {
  const float omb1 = 1.0f - b1, omb2 = 1.0f - b2;
  Steps(n, [&](int64_t i, int64_t c) __attribute__((always_inline)) {
    const vf gv = Load(g + i, c);
    const vf mv = b1 * Load(m + i, c) + omb1 * gv;
    const vf vv = b2 * Load(v + i, c) + omb2 * gv * gv;
    Store(m + i, mv, c);
    Store(v + i, vv, c);
    vf root;
    for (int k = 0; k < W; k++) root[k] = __builtin_sqrtf(vv[k]);
    Store(p + i, Load(p + i, c) * decay - stepSize * (mv / (root * invBc2Sqrt + eps)), c);
  });
}

// x rows (bf16) → float, each run of 32 as its 16 even then 16 odd elements; the tail (K mod 32) as is.
void DeinterleaveRows(const uint16_t* x, int64_t M, int64_t lda, int64_t K, float* xs) {
  const int64_t K32 = K / 32 * 32;
  for (int64_t m = 0; m < M; m++) {
    const uint16_t* row = x + m * lda;
    float* out = xs + m * K;
    for (int64_t i = 0; i < K32; i += 32) {
      for (int64_t j = 0; j < 16; j++) {
        out[i + j] = Bf16ToFloat(row[i + 2 * j]);
        out[i + 16 + j] = Bf16ToFloat(row[i + 2 * j + 1]);
      }
    }
    for (int64_t k = K32; k < K; k++) out[k] = Bf16ToFloat(row[k]);
  }
}

}  // namespace kern
}  // namespace nts

// Building blocks of the fused CPU kernels (attention.cc, gelu.cc, cross_entropy.cc): row operations on float and
// bf16 data, explicitly vectorised, and a GEMM with float32 output for float or bf16 inputs.
//
// Row operations are compiled once per x86 vector ISA (AVX-512, AVX2, baseline) and the best is picked at load time
// (target_clones), so one binary runs on any x86-64 and uses the widest units the CPU has. They are written with
// GCC/Clang vector types rather than left to the auto-vectoriser, which kept the exp loop scalar (measured: the
// first attention kernel spent 28 % of its time in a scalar exp).
//
// bf16 data is passed as its raw 16 bits (uint16_t), rounded to nearest even on store, as c10::BFloat16 does.
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <cstdint>
#include <cstring>
#include <memory>

namespace nts {
namespace kern {

inline float Bf16ToFloat(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest even, as c10::BFloat16 does (NaN stays a NaN).
inline uint16_t FloatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if (f != f) return 0x7fc0;
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

// Scalar access to float or bf16 storage.
inline float At(const float* p, int64_t i) { return p[i]; }
inline float At(const uint16_t* p, int64_t i) { return Bf16ToFloat(p[i]); }
inline void Put(float* p, int64_t i, float v) { p[i] = v; }
inline void Put(uint16_t* p, int64_t i, float v) { p[i] = FloatToBf16(v); }

// An uninitialised work buffer (std::vector zero-fills: for the LM head's 206 MB logits chunk and every linear
// layer's float32 output that was a memset of ~1.5 GB per GPT-2 124M training step, all overwritten anyway).
template <typename T>
class Scratch {
 public:
  explicit Scratch(int64_t n) : data_(n > 0 ? new T[n] : nullptr) {}
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  T& operator[](int64_t i) { return data_[i]; }

 private:
  std::unique_ptr<T[]> data_;
};

// Raw element type of a tensor dtype the kernels accept.
template <typename T> struct Raw;
template <> struct Raw<float> { using type = float; };
template <> struct Raw<at::BFloat16> { using type = uint16_t; };

// ---- rows (n elements each; any n ≥ 0)

float RowMax(const float* x, int64_t n);
float RowMax(const uint16_t* x, int64_t n);
// x[i] ← exp(x[i] − shift); returns Σ of the new values.
float ExpShiftInPlace(float* x, int64_t n, float shift);
// Σ exp(x[i] − shift), x unchanged.
float SumExpShift(const float* x, int64_t n, float shift);
float SumExpShift(const uint16_t* x, int64_t n, float shift);
// dst[i] = a · src[i], converted to dst's type.
void ScaleStore(const float* src, float* dst, int64_t n, float a);
void ScaleStore(const float* src, uint16_t* dst, int64_t n, float a);
// x[i] ← a · x[i].
void ScaleInPlace(float* x, int64_t n, float a);
// dp[i] ← p[i] · (dp[i] − d): the softmax backward given d = Σ p·dp.
void SoftmaxGradInPlace(const float* p, float* dp, int64_t n, float d);
float Dot(const float* a, const float* b, int64_t n);
float Dot(const uint16_t* a, const uint16_t* b, int64_t n);
// g[i] = a · exp(x[i] − lse): the softmax of a row scaled by a (cross-entropy's gradient before the one-hot).
void ScaledSoftmax(const float* x, float* g, int64_t n, float lse, float a);
void ScaledSoftmax(const uint16_t* x, uint16_t* g, int64_t n, float lse, float a);
void ScaledSoftmax(const float* x, uint16_t* g, int64_t n, float lse, float a);
// GPT-2's tanh GELU of (x + bias): y = gelu(x + bias).
void BiasGelu(const float* x, const float* bias, float* y, int64_t n);
void BiasGelu(const uint16_t* x, const float* bias, uint16_t* y, int64_t n);
// dx = dy · gelu'(x + bias); dbias[i] += dx[i] (before dx is rounded to its type).
void BiasGeluGrad(const float* x, const float* bias, const float* dy, float* dx, float* dbias, int64_t n);
void BiasGeluGrad(const uint16_t* x, const float* bias, const uint16_t* dy, uint16_t* dx, float* dbias, int64_t n);

// dst[i] = src[i] + bias[i] (bias may be null), converted to dst's type.
void AddStore(const float* src, const float* bias, float* dst, int64_t n);
void AddStore(const float* src, const float* bias, uint16_t* dst, int64_t n);
// acc[i] += x[i].
void AddInto(const float* x, float* acc, int64_t n);
void AddInto(const uint16_t* x, float* acc, int64_t n);

// y[m, n] = alpha · Σ_k x[m, k] · w[n, k] + beta · y[m, n] for n in [n0, n1), m < M ≤ kSmallRows: a few rows times a
// row-major bf16 weight matrix, as a decoding step needs (the weights streamed once for all M rows). x comes as
// DeinterleaveRows made it.
constexpr int64_t kSmallRows = 8;
void DeinterleaveRows(const uint16_t* x, int64_t M, int64_t lda, int64_t K, float* xs);
void SmallRowsTimesWeightsT(const float* xs, int64_t M, const uint16_t* w, int64_t ldw, int64_t K, int64_t n0, int64_t n1,
                            float alpha, float beta, float* y, int64_t ldy);
// The same with float32 rows (contiguous, M × K) and weights.
void SmallRowsTimesWeightsT(const float* x, int64_t M, const float* w, int64_t ldw, int64_t K, int64_t n0, int64_t n1,
                            float alpha, float beta, float* y, int64_t ldy);

// One AdamW update over n float32 values (decoupled decay, bias-corrected moments), in place:
// m = b1 m + (1 − b1) g; v = b2 v + (1 − b2) g²; p = p · decay − stepSize · m / (√v · invBc2Sqrt + eps).
void AdamWUpdate(float* p, const float* g, float* m, float* v, int64_t n, float decay, float b1, float b2, float stepSize,
                 float invBc2Sqrt, float eps);

// ---- GEMM

// Which GEMM serves the fused kernels: oneDNN's BLAS-style calls, found in the libtorch this process loaded
// (Debian links libdnnl.so; other builds may bundle it), else ATen matmuls over float copies (correct, slower).
// NANOGPT_GEMM=aten forces the fallback, so tests cover both.
const char* GemmBackendName();
// Gives OpenBLAS (if libtorch uses it) a single thread unless OPENBLAS_NUM_THREADS is set; true when it did.
bool LimitBlasThreads();

// C[M×N] = alpha · op(A) · op(B) + beta · C, row-major with leading dimensions; op(X) = Xᵀ when trans is true.
// A and B are float or bf16, C is float. Safe to call from inside at::parallel_for (runs on the caller's thread
// there). With beta == 0, C's previous contents are ignored.
void Gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void Gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
          const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace kern
}  // namespace nts

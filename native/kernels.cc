// The GEMM behind the fused kernels (see kernels.h): oneDNN's dnnl_sgemm / dnnl_gemm_bf16bf16f32 when the loaded
// libtorch carries them, else ATen.
//
// Why oneDNN's BLAS-style entry points: attention tiles need bf16 × bf16 products accumulated and returned in
// float32 (an online softmax in bf16 would lose the row sums), which ATen only offers by materialising float copies.
// Measured on the 2-core development VM, one thread: 128×1024×64 bf16 → f32 in 49 µs (340 GFLOP/s), float32
// 104 µs. They are looked up at run time in the libraries libtorch loaded, so the addon links nothing extra and
// still loads where oneDNN is not exported.
#include "kernels.h"
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <cstdlib>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

namespace nts {
namespace kern {

namespace {
using DnnlDim = int64_t;
using SgemmFn = int (*)(char, char, DnnlDim, DnnlDim, DnnlDim, float, const float*, DnnlDim, const float*, DnnlDim, float,
                        float*, DnnlDim);
using Bf16GemmFn = int (*)(char, char, DnnlDim, DnnlDim, DnnlDim, float, const uint16_t*, DnnlDim, const uint16_t*,
                           DnnlDim, float, float*, DnnlDim);

enum class Kind { OneDnn, Aten };

struct Backend {
  Kind kind = Kind::Aten;
  SgemmFn sgemm = nullptr;
  Bf16GemmFn bf16 = nullptr;
};

// The libtorch_cpu library this addon runs on, for dlsym (which searches a library and all it depends on).
void* TorchLibrary() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&at::get_num_threads), &info) == 0 || info.dli_fname == nullptr) return nullptr;
  return dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
}

// dlsym on a handle searches that library and everything it depends on; libtorch_cpu.so depends on libdnnl.so in
// Debian's build and contains oneDNN in the official one. The addon's own dependencies are not in the global
// namespace (node loads addons RTLD_LOCAL), hence the handle.
Backend Resolve() {
  Backend b;
  const char* force = std::getenv("NANOGPT_GEMM");
  if (force != nullptr && std::string(force) == "aten") return b;
  void* lib = TorchLibrary();
  if (lib == nullptr) return b;
  b.sgemm = reinterpret_cast<SgemmFn>(dlsym(lib, "dnnl_sgemm"));
  b.bf16 = reinterpret_cast<Bf16GemmFn>(dlsym(lib, "dnnl_gemm_bf16bf16f32"));
  if (b.sgemm != nullptr && b.bf16 != nullptr) b.kind = Kind::OneDnn;
  return b;
}

const Backend& Get() {
  static const Backend backend = Resolve();
  return backend;
}

// The fallback: float copies of the operands through at::addmm_ (BLAS). Slow next to oneDNN, but exact and
// available everywhere.
template <typename T>
void AtenGemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const T* A, int64_t lda,
              const T* B, int64_t ldb, float beta, float* C, int64_t ldc, at::ScalarType type) {
  at::NoGradGuard noGrad;
  at::Tensor a = at::from_blob(const_cast<T*>(A), {transA ? K : M, transA ? M : K}, {lda, 1}, at::TensorOptions().dtype(type));
  at::Tensor b = at::from_blob(const_cast<T*>(B), {transB ? N : K, transB ? K : N}, {ldb, 1}, at::TensorOptions().dtype(type));
  a = a.to(at::kFloat);
  b = b.to(at::kFloat);
  if (transA) a = a.t();
  if (transB) b = b.t();
  at::Tensor c = at::from_blob(C, {M, N}, {ldc, 1}, at::TensorOptions().dtype(at::kFloat));
  if (beta == 0.0f) c.zero_();
  c.addmm_(a, b, beta, alpha);
}
// C = beta · C: a product over an empty inner dimension.
void ScaleOnly(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}
}  // namespace

// Debian's libtorch (1.13 and 2.x) sends the float32 matmuls ATen still runs (composite attention with dropout,
// other devices' fallbacks) to OpenBLAS, whose own pthread pool is sized to every core and is called from inside
// libtorch's OpenMP regions: two pools spinning on the same cores. In python3-torch 2.6 on the development VM,
// float32 attention ran 4-20x slower that way than with OPENBLAS_NUM_THREADS=1; with 1.13, a profile of our
// composite float32 attention put 43 % of its time in OpenBLAS and 12 % in OpenMP spinning. So only libtorch's
// pool runs: OpenBLAS gets one thread, unless the user set its thread count.
bool LimitBlasThreads() {
  if (std::getenv("OPENBLAS_NUM_THREADS") != nullptr || std::getenv("GOTO_NUM_THREADS") != nullptr) return false;
  void* lib = TorchLibrary();
  if (lib == nullptr) return false;
  auto setThreads = reinterpret_cast<void (*)(int)>(dlsym(lib, "openblas_set_num_threads"));
  if (setThreads == nullptr) return false;
  setThreads(1);
  return true;
}

const char* GemmBackendName() { return Get().kind == Kind::OneDnn ? "onednn" : "aten"; }

namespace {
// A few rows times a row-major weight matrix (a decoding step), where streaming the weights once beats oneDNN:
// float32, 1-8 rows: memory-bound, ours 6-10 % faster per token at GPT-2 124M (27.5 → 25.8 ms, 30.8 → 27.3 ms,
// one thread). bf16, 2-8 rows (several samples decoded together): oneDNN's bf16 GEMM repacks the whole weight
// matrix on every call there (3 rows: 36 ms per step against 10 ms for one row), ours 16-18 ms; one row stays with
// oneDNN (10 ms against our 12.8).
bool SmallRowsApply(const float*, int64_t M, int64_t lda, int64_t K) { return M <= kSmallRows && lda == K; }
bool SmallRowsApply(const uint16_t*, int64_t M, int64_t, int64_t) { return M >= 2 && M <= kSmallRows; }

// The rows of x as SmallRowsTimesWeightsT reads them: float32 rows as they are, bf16 rows de-interleaved.
const float* SmallRowsInput(const float* A, int64_t, int64_t, int64_t, Scratch<float>&) { return A; }
const float* SmallRowsInput(const uint16_t* A, int64_t M, int64_t lda, int64_t K, Scratch<float>& xs) {
  DeinterleaveRows(A, M, lda, K, xs.data());
  return xs.data();
}

int OneDnnGemm(const Backend& b, char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  return b.sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
int OneDnnGemm(const Backend& b, char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
               const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  return b.bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <typename T>
void GemmT(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const T* A, int64_t lda, const T* B,
           int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return ScaleOnly(M, N, beta, C, ldc);
  if (!transA && transB && SmallRowsApply(A, M, lda, K)) {
    Scratch<float> scratch(std::is_same<T, uint16_t>::value ? M * K : 0);
    const float* xs = SmallRowsInput(A, M, lda, K, scratch);
    at::parallel_for(0, N, 64, [&](int64_t n0, int64_t n1) { SmallRowsTimesWeightsT(xs, M, B, ldb, K, n0, n1, alpha, beta, C, ldc); });
    return;
  }
  const Backend& b = Get();
  if (b.kind == Kind::OneDnn) {
    const int status = OneDnnGemm(b, transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    TORCH_CHECK(status == 0, "oneDNN GEMM failed with status ", status);
    return;
  }
  AtenGemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, std::is_same<T, uint16_t>::value ? at::kBFloat16 : at::kFloat);
}
}  // namespace

void Gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  GemmT(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void Gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
          const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  GemmT(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace kern
}  // namespace nts

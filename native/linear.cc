// Linear layers through oneDNN's BLAS-style GEMM (kern::Gemm, float32 output) instead of at::linear, with bf16
// copies of float32 weights made once per weight version, and the GPT's output layer fused with its cross-entropy.
//
// Why native, measured on the 2-core development VM (GPT-2 124M, batch 4 × 1024, bf16, 2 threads):
// - The same oneDNN kernels reached through dnnl_gemm_bf16bf16f32 ran the four linear layers of a block in 224 ms
//   (forward, input gradient, weight gradient) against 260 ms through at::addmm / at::mm, whose bf16 output path
//   adds a conversion and, for the LM head, an 823 MB float32 temporary: 1.22 s against 1.73 s there.
// - Weight gradients come out in float32 and go straight into the float32 .grad: no bf16 rounding of them, no
//   autocast ToCopyBackward pass per weight.
// - Autocast re-casts every weight in every forward; here a weight is cast once per version (the optimizer step
//   bumps it), so gradient accumulation and evaluation reuse the copy.
// - LM head + cross-entropy in row chunks: the [N, V] logits (412 MB in bf16) and their gradient never exist whole;
//   each chunk's softmax gradient is used while still in cache for the input and weight gradients.
#include "common.h"
#include "compat.h"
#include "kernels.h"
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/variable.h>
#include <cmath>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace nts {

// ---- bf16 copies of float32 weights, one per (weight, version)

namespace {
struct CastEntry {
  c10::weak_intrusive_ptr<c10::TensorImpl> owner;
  uint32_t version;
  at::Tensor copy;
};
std::mutex gCastLock;
std::unordered_map<const c10::TensorImpl*, CastEntry> gCasts;

// Drops copies whose weight is gone; called on every insertion, so the cache never outlives a model for long.
void SweepCasts() {
  for (auto it = gCasts.begin(); it != gCasts.end();) {
    if (it->second.owner.expired()) it = gCasts.erase(it);
    else ++it;
  }
}
}  // namespace

// The bf16 copy of a float32 weight, made if the weight changed since the last call (in-place updates bump a
// tensor's version counter: the optimizer does so explicitly, see optim.cc). Only leaves are cached: anything else
// is a fresh value every forward.
at::Tensor CachedBf16(const at::Tensor& w) {
  if (w.scalar_type() == at::kBFloat16) return w;
  at::NoGradGuard noGrad;
  if (!w.is_leaf()) return w.to(at::kBFloat16);
  const uint32_t version = w._version();
  std::lock_guard<std::mutex> guard(gCastLock);
  auto it = gCasts.find(w.unsafeGetTensorImpl());
  if (it != gCasts.end() && !it->second.owner.expired() && it->second.version == version) return it->second.copy;
  at::Tensor copy = w.detach().to(at::kBFloat16).contiguous();
  SweepCasts();
  gCasts.erase(w.unsafeGetTensorImpl());
  gCasts.emplace(w.unsafeGetTensorImpl(), CastEntry{c10::weak_intrusive_ptr<c10::TensorImpl>(w.getIntrusivePtr()), version, copy});
  return copy;
}

void ClearCastCache() {
  std::lock_guard<std::mutex> guard(gCastLock);
  gCasts.clear();
}

namespace {
constexpr int64_t kRowsPerTask = 16;
constexpr int64_t kColsPerTask = 256;

// Compute in bf16 when CPU autocast asks for it (what at::linear would do under autocast), else in x's dtype.
bool AutocastBf16() { return CpuAutocastEnabled() && CpuAutocastDtype() == at::kBFloat16; }

template <typename R>
const R* Ptr(const at::Tensor& t) { return reinterpret_cast<const R*>(t.data_ptr()); }
template <typename R>
R* MutPtr(const at::Tensor& t) { return reinterpret_cast<R*>(t.data_ptr()); }

// out[r] = R(acc[r] + bias) for every row.
template <typename R>
void StoreWithBias(const float* acc, const float* bias, R* out, int64_t rows, int64_t cols) {
  at::parallel_for(0, rows, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) kern::AddStore(acc + r * cols, bias, out + r * cols, cols);
  });
}

// Σ over rows of g [rows, cols] in float32, in row order per column (deterministic).
template <typename R>
at::Tensor ColumnSums(const R* g, int64_t rows, int64_t cols) {
  at::Tensor out = at::zeros({cols}, at::TensorOptions().dtype(at::kFloat));
  float* o = out.data_ptr<float>();
  at::parallel_for(0, cols, kColsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t r = 0; r < rows; r++) kern::AddInto(g + r * cols + begin, o + begin, end - begin);
  });
  return out;
}

// y [N, out] = x [N, in] · Wᵀ (+ b): float32 GEMM output, then bias and the store into R.
template <typename R>
at::Tensor Project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, at::ScalarType dtype) {
  const int64_t N = x.size(0), in = x.size(1), out = w.size(0);
  at::Tensor y = at::empty({N, out}, x.options().dtype(dtype));
  const float* b = bias.defined() ? bias.data_ptr<float>() : nullptr;
  if constexpr (std::is_same<R, float>::value) {
    // float32: the GEMM writes y itself, starting from the bias rows.
    if (b != nullptr) y.copy_(bias.unsqueeze(0).expand({N, out}));
    kern::Gemm(false, true, N, out, in, 1.0f, Ptr<R>(x), in, Ptr<R>(w), in, b != nullptr ? 1.0f : 0.0f, y.data_ptr<float>(), out);
  } else {
    kern::Scratch<float> acc(N * out);
    kern::Gemm(false, true, N, out, in, 1.0f, Ptr<R>(x), in, Ptr<R>(w), in, 0.0f, acc.data(), out);
    StoreWithBias(acc.data(), b, MutPtr<R>(y), N, out);
  }
  return y;
}

// Differentiable y = x Wᵀ + b for x [N, in] and W [out, in] in the compute dtype R (float or bf16), W's float32
// master given separately so its gradient comes back in float32. Saves x and W in R, as autocast's linear would.
struct FusedLinear : public torch::autograd::Function<FusedLinear> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& xIn, const at::Tensor& weight,
                            const at::Tensor& biasIn, bool hasBias, bool bf16) {
    const at::ScalarType dtype = bf16 ? at::kBFloat16 : at::kFloat;
    const int64_t in = weight.size(1);
    at::Tensor x = xIn.reshape({-1, in}).to(dtype).contiguous();
    at::Tensor w = bf16 ? CachedBf16(weight) : weight.contiguous();
    at::Tensor bias = hasBias ? biasIn.to(at::kFloat).contiguous() : at::Tensor();
    at::Tensor y = bf16 ? Project<uint16_t>(x, w, bias, dtype) : Project<float>(x, w, bias, dtype);
    ctx->save_for_backward({x, w});
    ctx->saved_data["x_dtype"] = static_cast<int64_t>(xIn.scalar_type());
    ctx->saved_data["w_dtype"] = static_cast<int64_t>(weight.scalar_type());
    ctx->saved_data["b_dtype"] = hasBias ? static_cast<int64_t>(biasIn.scalar_type()) : int64_t{-1};
    ctx->saved_data["x_shape"] = xIn.sizes().vec();
    std::vector<int64_t> shape = xIn.sizes().vec();
    shape.back() = weight.size(0);
    return y.view(shape);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& w = saved[1];
    const bool bf16 = x.scalar_type() == at::kBFloat16;
    const int64_t N = x.size(0), in = x.size(1), out = w.size(0);
    at::Tensor dy = grads[0].reshape({N, out}).to(x.scalar_type()).contiguous();
    at::Tensor dx, dw, db;
    const auto xDtype = static_cast<at::ScalarType>(ctx->saved_data["x_dtype"].toInt());
    if (ctx->needs_input_grad(0)) {
      // float32 accumulator; returned as is when x was float32 (autocast's cast would widen it anyway).
      dx = at::empty({N, in}, x.options().dtype(at::kFloat));
      if (bf16) kern::Gemm(false, false, N, in, out, 1.0f, Ptr<uint16_t>(dy), out, Ptr<uint16_t>(w), in, 0.0f, dx.data_ptr<float>(), in);
      else kern::Gemm(false, false, N, in, out, 1.0f, Ptr<float>(dy), out, Ptr<float>(w), in, 0.0f, dx.data_ptr<float>(), in);
      dx = dx.to(xDtype).view(ctx->saved_data["x_shape"].toIntVector());
    }
    if (ctx->needs_input_grad(1)) {
      dw = at::empty({out, in}, x.options().dtype(at::kFloat));
      if (bf16) kern::Gemm(true, false, out, in, N, 1.0f, Ptr<uint16_t>(dy), out, Ptr<uint16_t>(x), in, 0.0f, dw.data_ptr<float>(), in);
      else kern::Gemm(true, false, out, in, N, 1.0f, Ptr<float>(dy), out, Ptr<float>(x), in, 0.0f, dw.data_ptr<float>(), in);
      dw = dw.to(static_cast<at::ScalarType>(ctx->saved_data["w_dtype"].toInt()));
    }
    const int64_t bDtype = ctx->saved_data["b_dtype"].toInt();
    if (bDtype >= 0 && ctx->needs_input_grad(2)) {
      db = bf16 ? ColumnSums(Ptr<uint16_t>(dy), N, out) : ColumnSums(Ptr<float>(dy), N, out);
      db = db.to(static_cast<at::ScalarType>(bDtype));
    }
    return {dx, dw, db, at::Tensor(), at::Tensor()};
  }
};

bool FusedLinearApplies(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b, bool bf16) {
  auto cpuFloatish = [](const at::Tensor& t) {
    return t.device().is_cpu() && (t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16) && t.layout() == at::kStrided;
  };
  if (!cpuFloatish(x) || !cpuFloatish(w) || (b && !cpuFloatish(*b))) return false;
  if (w.dim() != 2 || x.dim() < 1 || x.size(-1) != w.size(1) || x.numel() == 0 || w.numel() == 0) return false;
  if (b && (b->dim() != 1 || b->size(0) != w.size(0))) return false;
  // Without autocast both must be float32 (at::linear rejects mixed dtypes; let it say so).
  return bf16 || (x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat);
}
}  // namespace

// y = x Wᵀ + b: the fused path above where it applies (CPU, float32/bf16), at::linear (and its autocast) elsewhere.
at::Tensor LinearForward(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b) {
  const bool bf16 = AutocastBf16();
  if (!FusedLinearApplies(x, w, b, bf16)) return at::linear(x, w, b);
  at::Tensor bias = b ? *b : at::zeros({w.size(0)}, w.options().dtype(at::kFloat));
  return FusedLinear::apply(x, w, bias, b.has_value(), bf16);
}

// ---- LM head fused with the mean cross-entropy

namespace {
constexpr int64_t kChunkRows = 1024;

// For rows [r0, r0 + n) of the chunk's float32 logits: each row's log-sum-exp and loss; with `grad`, the softmax
// minus one-hot (unscaled; ignored rows zero) into grad [n, V] of type G.
template <typename G>
void ChunkRows(const float* logits, int64_t n, int64_t V, const int64_t* target, int64_t ignoreIndex, double* rowLoss, G* grad) {
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const float* row = logits + r * V;
      const float m = kern::RowMax(row, V);
      const float lse = m + std::log(kern::SumExpShift(row, V, m));
      const bool ignored = target[r] == ignoreIndex;
      rowLoss[r] = ignored ? 0.0 : static_cast<double>(lse) - row[target[r]];
      if (grad == nullptr) continue;
      G* g = grad + r * V;
      if (ignored) {
        std::fill(g, g + V, G{});
        continue;
      }
      kern::ScaledSoftmax(row, g, V, lse, 1.0f);
      kern::Put(g, target[r], std::exp(row[target[r]] - lse) - 1.0f);
    }
  });
}

int64_t CountValidTargets(const at::Tensor& target, int64_t classes, int64_t ignoreIndex) {
  const int64_t* t = target.data_ptr<int64_t>();
  int64_t valid = 0;
  for (int64_t i = 0; i < target.numel(); i++) {
    if (t[i] == ignoreIndex) continue;
    TORCH_CHECK(t[i] >= 0 && t[i] < classes, "linearCrossEntropy: target ", t[i], " at row ", i, " is not a class index in [0, ",
                classes, ") nor the ignore index ", ignoreIndex);
    valid++;
  }
  return valid;
}

// Forward computes the loss and, when a gradient will be needed, the unscaled input and weight gradients chunk by
// chunk (Σ over rows of softmax − one-hot); backward only scales them by upstream / valid rows.
template <typename R>
struct LceWork {
  static double Run(const at::Tensor& x, const at::Tensor& w, const at::Tensor& target, int64_t ignoreIndex, bool withGrad,
                    at::Tensor& dx, at::Tensor& dw) {
    const int64_t N = x.size(0), C = x.size(1), V = w.size(0);
    const R* xp = Ptr<R>(x);
    const R* wp = Ptr<R>(w);
    const int64_t* t = target.data_ptr<int64_t>();
    std::vector<double> rowLoss(N);
    kern::Scratch<float> logits(std::min(N, kChunkRows) * V);
    kern::Scratch<R> grad(withGrad ? std::min(N, kChunkRows) * V : 0);
    if (withGrad) {
      dx = at::empty({N, C}, x.options().dtype(at::kFloat));
      dw = at::empty({V, C}, x.options().dtype(at::kFloat));
    }
    for (int64_t r0 = 0; r0 < N; r0 += kChunkRows) {
      const int64_t n = std::min(kChunkRows, N - r0);
      kern::Gemm(false, true, n, V, C, 1.0f, xp + r0 * C, C, wp, C, 0.0f, logits.data(), V);
      ChunkRows<R>(logits.data(), n, V, t + r0, ignoreIndex, rowLoss.data() + r0, withGrad ? grad.data() : nullptr);
      if (!withGrad) continue;
      kern::Gemm(false, false, n, C, V, 1.0f, grad.data(), V, wp, C, 0.0f, dx.data_ptr<float>() + r0 * C, C);
      kern::Gemm(true, false, V, C, n, 1.0f, grad.data(), V, xp + r0 * C, C, r0 == 0 ? 0.0f : 1.0f, dw.data_ptr<float>(), C);
    }
    double sum = 0.0;
    for (double l : rowLoss) sum += l;
    return sum;
  }
};

struct LinearCrossEntropy : public torch::autograd::Function<LinearCrossEntropy> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& xIn, const at::Tensor& weight,
                            const at::Tensor& targetIn, int64_t ignoreIndex, bool bf16, bool withGrad) {
    const int64_t C = weight.size(1);
    const at::ScalarType dtype = bf16 ? at::kBFloat16 : at::kFloat;
    at::Tensor x = xIn.reshape({-1, C}).to(dtype).contiguous();
    at::Tensor w = bf16 ? CachedBf16(weight) : weight.contiguous();
    at::Tensor target = targetIn.reshape({-1}).contiguous();
    TORCH_CHECK(target.size(0) == x.size(0), "linearCrossEntropy: ", x.size(0), " rows but ", target.size(0), " targets");
    const int64_t valid = CountValidTargets(target, weight.size(0), ignoreIndex);
    at::Tensor dx, dw;
    const double sum = bf16 ? LceWork<uint16_t>::Run(x, w, target, ignoreIndex, withGrad, dx, dw)
                            : LceWork<float>::Run(x, w, target, ignoreIndex, withGrad, dx, dw);
    ctx->save_for_backward({dx, dw});
    ctx->saved_data["valid"] = valid;
    ctx->saved_data["x_dtype"] = static_cast<int64_t>(xIn.scalar_type());
    ctx->saved_data["w_dtype"] = static_cast<int64_t>(weight.scalar_type());
    ctx->saved_data["x_shape"] = xIn.sizes().vec();
    return at::scalar_tensor(valid > 0 ? sum / static_cast<double>(valid) : std::nan(""), xIn.options().dtype(at::kFloat));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    // The gradients are scaled in place and handed over (a fresh 154 MB copy of the weight gradient cost ~330 ms of
    // page faults per step on the development VM), so they can be handed over once only.
    TORCH_CHECK(!ctx->saved_data.count("used"), "linearCrossEntropy: backward through the same loss twice (retain_graph) is not supported");
    ctx->saved_data["used"] = true;
    auto saved = ctx->get_saved_variables();
    const int64_t valid = ctx->saved_data["valid"].toInt();
    // With no valid row every gradient is zero (the loss itself is NaN).
    const double scale = valid > 0 ? grads[0].item<double>() / static_cast<double>(valid) : 0.0;
    at::Tensor dx = saved[0].mul_(scale).to(static_cast<at::ScalarType>(ctx->saved_data["x_dtype"].toInt()))
                        .view(ctx->saved_data["x_shape"].toIntVector());
    at::Tensor dw = saved[1].mul_(scale).to(static_cast<at::ScalarType>(ctx->saved_data["w_dtype"].toInt()));
    return {dx, dw, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};
}  // namespace

// ---- bindings

// linearCrossEntropy(x [..., C], weight [V, C], target [...] int64, ignoreIndex) → mean cross-entropy of x Wᵀ.
static Napi::Value LinearCrossEntropyOp(const Napi::CallbackInfo& info) {
  at::Tensor& x = Tens(info, 0);
  at::Tensor& w = Tens(info, 1);
  at::Tensor& target = Tens(info, 2);
  const int64_t ignoreIndex = Int(info, 3);
  if (w.dim() != 2 || x.dim() < 1 || x.size(-1) != w.size(1)) {
    throw Napi::RangeError::New(info.Env(), "linearCrossEntropy expects x [..., C] and weight [V, C]");
  }
  if (target.scalar_type() != at::kLong || target.numel() * w.size(1) != x.numel()) {
    throw Napi::RangeError::New(info.Env(), "linearCrossEntropy expects int64 targets, one per row of x");
  }
  const bool bf16 = AutocastBf16();
  if (!FusedLinearApplies(x, w, c10::nullopt, bf16)) {
    // Other devices or dtypes: the plain composite (logits, then cross-entropy in float32).
    at::Tensor logits = at::linear(x.reshape({-1, w.size(1)}), w);
    return Wrap(info.Env(), at::cross_entropy_loss(logits.to(at::kFloat), target.reshape({-1}), c10::nullopt, at::Reduction::Mean, ignoreIndex));
  }
  // Decided here: inside a custom function's forward, grad mode is always off.
  const bool withGrad = at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad());
  return Wrap(info.Env(), LinearCrossEntropy::apply(x, w, target, ignoreIndex, bf16, withGrad));
}

static Napi::Value ClearCastCacheOp(const Napi::CallbackInfo& info) {
  ClearCastCache();
  return info.Env().Undefined();
}

void InitLinear(Napi::Env env, Napi::Object e) {
  NTS_EXPORT(e, "linearCrossEntropy", LinearCrossEntropyOp);
  NTS_EXPORT(e, "clearCastCache", ClearCastCacheOp);
}

}  // namespace nts

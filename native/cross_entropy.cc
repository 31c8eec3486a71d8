// Mean cross-entropy of [N, V] logits, row by row: forward keeps each row's log-sum-exp (N floats) and the logits,
// backward writes softmax − one-hot straight into a gradient of the logits' dtype. No float32 [N, V] tensor ever
// exists (at GPT-2 124M, batch 4 × 1024: 824 MB that at::log_softmax(logits, float) allocated and autograd kept).
//
// Why native: besides the memory, one pass per row instead of ATen's float copy, log-softmax, gather and (backward)
// softmax, scatter and scale, each a full sweep over 4096 × 50257 values; docs/benchmarks.md ("cross-entropy").
#include "common.h"
#include "kernels.h"
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <cmath>
#include <vector>

namespace nts {

namespace {
constexpr int64_t kRowsPerTask = 4;

// Every target must be a class index or the ignore index; checked before any work, as nll_loss does.
int64_t CountValid(const at::Tensor& target, int64_t classes, int64_t ignoreIndex) {
  const int64_t* t = target.data_ptr<int64_t>();
  int64_t valid = 0;
  for (int64_t i = 0; i < target.numel(); i++) {
    if (t[i] == ignoreIndex) continue;
    TORCH_CHECK(t[i] >= 0 && t[i] < classes, "meanCrossEntropy: target ", t[i], " at row ", i, " is not a class index in [0, ", classes,
                ") nor the ignore index ", ignoreIndex);
    valid++;
  }
  return valid;
}

// Row log-sum-exps into lse, and the mean loss over valid rows (summed in row order: deterministic).
template <typename R>
double ForwardRows(const at::Tensor& logits, const at::Tensor& target, int64_t ignoreIndex, float* lse, int64_t valid) {
  const int64_t N = logits.size(0), V = logits.size(1);
  const R* x = reinterpret_cast<const R*>(logits.data_ptr());
  const int64_t* t = target.data_ptr<int64_t>();
  std::vector<double> rowLoss(N, 0.0);
  at::parallel_for(0, N, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const R* row = x + r * V;
      const float m = kern::RowMax(row, V);
      lse[r] = m + std::log(kern::SumExpShift(row, V, m));
      if (t[r] != ignoreIndex) rowLoss[r] = static_cast<double>(lse[r]) - kern::At(row, t[r]);
    }
  });
  double sum = 0.0;
  for (double l : rowLoss) sum += l;
  return valid > 0 ? sum / static_cast<double>(valid) : std::nan("");
}

// grad[r] = scale · (softmax(logits[r]) − onehot(target[r])), zero for ignored rows.
template <typename R>
void BackwardRows(const at::Tensor& logits, const at::Tensor& target, int64_t ignoreIndex, const float* lse, float scale, const at::Tensor& grad) {
  const int64_t N = logits.size(0), V = logits.size(1);
  const R* x = reinterpret_cast<const R*>(logits.data_ptr());
  R* g = reinterpret_cast<R*>(grad.data_ptr());
  const int64_t* t = target.data_ptr<int64_t>();
  at::parallel_for(0, N, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      R* out = g + r * V;
      if (t[r] == ignoreIndex) {
        std::fill(out, out + V, R{});
        continue;
      }
      kern::ScaledSoftmax(x + r * V, out, V, lse[r], scale);
      // The target's entry computed once in float (not softmax rounded, then 1 subtracted and rounded again).
      kern::Put(out, t[r], scale * (std::exp(kern::At(x + r * V, t[r]) - lse[r]) - 1.0f));
    }
  });
}

bool IsBf16(const at::Tensor& t) { return t.scalar_type() == at::kBFloat16; }

struct MeanCrossEntropy : public torch::autograd::Function<MeanCrossEntropy> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logitsIn, const at::Tensor& targetIn, int64_t ignoreIndex) {
    at::Tensor logits = logitsIn.contiguous();
    at::Tensor target = targetIn.contiguous();
    const int64_t valid = CountValid(target, logits.size(1), ignoreIndex);
    at::Tensor lse = at::empty({logits.size(0)}, logits.options().dtype(at::kFloat));
    const double loss = IsBf16(logits) ? ForwardRows<uint16_t>(logits, target, ignoreIndex, lse.data_ptr<float>(), valid)
                                       : ForwardRows<float>(logits, target, ignoreIndex, lse.data_ptr<float>(), valid);
    ctx->save_for_backward({logits, target, lse});
    ctx->saved_data["ignore"] = ignoreIndex;
    ctx->saved_data["valid"] = valid;
    return at::scalar_tensor(loss, logits.options().dtype(at::kFloat));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& logits = saved[0];
    const at::Tensor& target = saved[1];
    const at::Tensor& lse = saved[2];
    const int64_t valid = ctx->saved_data["valid"].toInt();
    // With no valid row every gradient is zero (the loss itself is NaN).
    const float scale = valid > 0 ? grads[0].item<float>() / static_cast<float>(valid) : 0.0f;
    at::Tensor grad = at::empty_like(logits);
    const int64_t ignore = ctx->saved_data["ignore"].toInt();
    if (IsBf16(logits)) BackwardRows<uint16_t>(logits, target, ignore, lse.data_ptr<float>(), scale, grad);
    else BackwardRows<float>(logits, target, ignore, lse.data_ptr<float>(), scale, grad);
    return {grad, at::Tensor(), at::Tensor()};
  }
};
}  // namespace

// meanCrossEntropy(logits [N, V] float32 | bfloat16, target [N] int64, ignoreIndex) → scalar float32.
static Napi::Value MeanCrossEntropyOp(const Napi::CallbackInfo& info) {
  at::Tensor& logits = Tens(info, 0);
  at::Tensor& target = Tens(info, 1);
  if (logits.dim() != 2 || target.dim() != 1 || target.size(0) != logits.size(0)) {
    throw Napi::RangeError::New(info.Env(), "meanCrossEntropy expects logits [N, V] and targets [N]");
  }
  if (!at::isFloatingType(logits.scalar_type())) throw Napi::TypeError::New(info.Env(), "meanCrossEntropy: logits must be floating point");
  if (target.scalar_type() != at::kLong) throw Napi::TypeError::New(info.Env(), "meanCrossEntropy: targets must be int64");
  if (logits.size(1) == 0) throw Napi::RangeError::New(info.Env(), "meanCrossEntropy: logits need at least one class");
  const int64_t ignoreIndex = Int(info, 2);
  const bool fused = logits.device().is_cpu() && (logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kBFloat16);
  // Other dtypes and devices: ATen's cross-entropy, in float32 at least.
  if (!fused) {
    at::Tensor l = logits.scalar_type() == at::kDouble ? logits : logits.to(at::kFloat);
    return Wrap(info.Env(), at::cross_entropy_loss(l, target, c10::nullopt, at::Reduction::Mean, ignoreIndex).to(at::kFloat));
  }
  return Wrap(info.Env(), MeanCrossEntropy::apply(logits, target, ignoreIndex));
}

void InitCrossEntropy(Napi::Env env, Napi::Object e) { NTS_EXPORT(e, "meanCrossEntropy", MeanCrossEntropyOp); }

}  // namespace nts

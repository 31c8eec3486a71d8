// Gradient clipping and the AdamW update, over whole parameter lists in one native call.
#include "common.h"
#include "kernels.h"
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/variable.h>
#include <cmath>

namespace nts {

static std::vector<double> NumList(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be an array of numbers");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<double> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be an array of numbers");
    out[k] = v.As<Napi::Number>().DoubleValue();
  }
  return out;
}

// gradNorm(params) → total L2 norm of all gradients (params without a gradient are skipped).
static double TotalGradNorm(const std::vector<at::Tensor>& params, std::vector<at::Tensor>& grads) {
  std::vector<at::Tensor> norms;
  for (auto& p : params) {
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    grads.push_back(g);
    norms.push_back(at::norm(g.detach(), 2).to(at::kDouble));
  }
  if (norms.empty()) return 0.0;
  return at::stack(norms).norm(2).item<double>();
}

// clipGradNorm(params, maxNorm) → the norm before clipping. Scales every gradient by maxNorm / (norm + 1e-6)
// when the norm exceeds maxNorm, as torch.nn.utils.clip_grad_norm_. A non-finite norm is returned as is and the
// gradients are left untouched, so the caller can decide to skip the step.
static Napi::Value ClipGradNorm(const Napi::CallbackInfo& info) {
  auto params = TensList(info, 0);
  double maxNorm = Num(info, 1);
  std::vector<at::Tensor> grads;
  double total = TotalGradNorm(params, grads);
  if (std::isfinite(total) && maxNorm > 0) {
    double coef = maxNorm / (total + 1e-6);
    if (coef < 1.0) {
      at::NoGradGuard ng;
      for (auto& g : grads) g.mul_(coef);
    }
  }
  return Napi::Number::New(info.Env(), total);
}

static Napi::Value GradNorm(const Napi::CallbackInfo& info) {
  auto params = TensList(info, 0);
  std::vector<at::Tensor> grads;
  return Napi::Number::New(info.Env(), TotalGradNorm(params, grads));
}

struct AdamHyper {
  double lr, wd, beta1, beta2, eps, bc1, bc2Sqrt;
};

// One fused pass over float32 parameter, gradient and moments: read p, g, m, v once, write p, m, v once.
// The composed ATen version (mul_, lerp_, mul_, addcmul_, sqrt, div, add_, addcdiv_) walks memory ~8 times;
// measured in `npm run bench -- adamw` (docs/benchmarks.md), the fused loop is several times faster on CPU.
// Same arithmetic as torch.optim.AdamW's single-tensor path (decoupled decay, then bias-corrected moments).
static void FusedAdamWFloat(at::Tensor& p, const at::Tensor& g, at::Tensor& m, at::Tensor& v, const AdamHyper& h) {
  float* P = p.data_ptr<float>();
  const float* G = g.data_ptr<float>();
  float* M = m.data_ptr<float>();
  float* V = v.data_ptr<float>();
  const float decay = static_cast<float>(1.0 - h.lr * h.wd);
  const float stepSize = static_cast<float>(h.lr / h.bc1);
  const float invBc2Sqrt = static_cast<float>(1.0 / h.bc2Sqrt);
  // Vectorised in kern::AdamWUpdate (AVX-512 where the CPU has it): the plain loop compiled for baseline x86-64
  // ran at 216 ms per GPT-2 124M step, behind torch.optim.AdamW(foreach=True)'s 142 ms (docs/benchmarks.md).
  at::parallel_for(0, p.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    kern::AdamWUpdate(P + begin, G + begin, M + begin, V + begin, end - begin, decay, static_cast<float>(h.beta1),
                      static_cast<float>(h.beta2), stepSize, invBc2Sqrt, static_cast<float>(h.eps));
  });
}

// The same update with ATen ops, for anything the fused loop does not cover (other dtypes, CUDA, strides).
static void ComposedAdamW(at::Tensor& p, const at::Tensor& g, at::Tensor& m, at::Tensor& v, const AdamHyper& h) {
  p.mul_(1.0 - h.lr * h.wd);
  m.lerp_(g, 1.0 - h.beta1);
  v.mul_(h.beta2).addcmul_(g, g, 1.0 - h.beta2);
  at::Tensor denom = (v.sqrt() / h.bc2Sqrt).add_(h.eps);
  p.addcdiv_(m, denom, -h.lr / h.bc1);
}

static bool FusedOk(const at::Tensor& p, const at::Tensor& g, const at::Tensor& m, const at::Tensor& v) {
  for (const at::Tensor* t : {&p, &g, &m, &v}) {
    if (t->scalar_type() != at::kFloat || !t->is_contiguous() || t->device().type() != at::kCPU) return false;
  }
  return p.numel() == g.numel() && p.numel() == m.numel() && p.numel() == v.numel();
}

// adamwStep(params, expAvg, expAvgSq, lrs, weightDecays, beta1, beta2, eps, step, fused)
static Napi::Value AdamWStep(const Napi::CallbackInfo& info) {
  auto params = TensList(info, 0);
  auto ms = TensList(info, 1);
  auto vs = TensList(info, 2);
  auto lrs = NumList(info, 3);
  auto wds = NumList(info, 4);
  double beta1 = Num(info, 5), beta2 = Num(info, 6), eps = Num(info, 7);
  int64_t step = Int(info, 8);
  bool allowFused = Missing(info, 9) ? true : Bool(info, 9);
  size_t n = params.size();
  if (ms.size() != n || vs.size() != n || lrs.size() != n || wds.size() != n)
    throw Napi::RangeError::New(info.Env(), "adamwStep: params, moments, lrs and weight decays must have the same length");
  if (step < 1) throw Napi::RangeError::New(info.Env(), "adamwStep: step must be >= 1");
  at::NoGradGuard ng;
  double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  double bc2Sqrt = std::sqrt(1.0 - std::pow(beta2, static_cast<double>(step)));
  for (size_t i = 0; i < n; i++) {
    at::Tensor& p = params[i];
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (!ms[i].sizes().equals(p.sizes()) || !vs[i].sizes().equals(p.sizes()))
      throw Napi::RangeError::New(info.Env(), "adamwStep: moment buffers of parameter " + std::to_string(i) + " do not match its shape");
    AdamHyper h{lrs[i], wds[i], beta1, beta2, eps, bc1, bc2Sqrt};
    if (allowFused && FusedOk(p, g, ms[i], vs[i])) {
      FusedAdamWFloat(p, g, ms[i], vs[i], h);
      // The loop writes through raw pointers: tell autograd and the bf16 weight cache (linear.cc) p changed.
      torch::autograd::impl::bump_version(p);
    } else {
      ComposedAdamW(p, g, ms[i], vs[i], h);
    }
  }
  return info.Env().Undefined();
}

// zeroGrads(params): drops gradients (set_to_none), so the next backward writes fresh ones without a memset.
static Napi::Value ZeroGrads(const Napi::CallbackInfo& info) {
  auto params = TensList(info, 0);
  for (auto& p : params) p.mutable_grad() = at::Tensor();
  return info.Env().Undefined();
}

void InitOptim(Napi::Env env, Napi::Object e) {
  NTS_EXPORT(e, "clipGradNorm", ClipGradNorm);
  NTS_EXPORT(e, "gradNorm", GradNorm);
  NTS_EXPORT(e, "adamwStep", AdamWStep);
  NTS_EXPORT(e, "zeroGrads", ZeroGrads);
}

}  // namespace nts

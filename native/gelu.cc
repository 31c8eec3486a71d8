// GPT-2's MLP activation with the c_fc bias folded in: y = gelu_tanh(x + bias), forward and backward in one pass
// each, for float32 and bf16 x (computed in float32, stored in x's dtype). The bias gradient is summed in the same
// backward pass.
//
// Why native: libtorch 1.13's bf16 GELU is not vectorised (0.107 s per layer forward + backward at [4, 1024, 3072]
// with python3-torch), and going through float32 instead cost 0.045 s and ~300 MB of float32 activations over the
// model. The bias comes along because c_fc as addmm (bias inside the GEMM) was 10 % slower than mm at these shapes
// (python3-torch, 2 threads: 33.3 vs 29.9 ms for [4096, 768] × [768, 3072]). Figures in docs/benchmarks.md ("gelu").
#include "common.h"
#include "kernels.h"
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <algorithm>
#include <vector>

namespace nts {

namespace {
constexpr int64_t kRowsPerTask = 16;
constexpr int64_t kRowsPerBlock = 128;

template <typename R>
void Forward(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& y, int64_t rows, int64_t F) {
  const R* xp = reinterpret_cast<const R*>(x.data_ptr());
  R* yp = reinterpret_cast<R*>(y.data_ptr());
  const float* bp = bias.data_ptr<float>();
  at::parallel_for(0, rows, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) kern::BiasGelu(xp + r * F, bp, yp + r * F, F);
  });
}

// Returns the bias gradient (float32). Rows go in fixed blocks, each with its own partial sum, added up in block
// order afterwards: the result does not depend on the thread count or timing (resumed runs stay bit-exact).
template <typename R>
at::Tensor Backward(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& dy, const at::Tensor& dx, int64_t rows, int64_t F) {
  const R* xp = reinterpret_cast<const R*>(x.data_ptr());
  const R* dyp = reinterpret_cast<const R*>(dy.data_ptr());
  R* dxp = reinterpret_cast<R*>(dx.data_ptr());
  const float* bp = bias.data_ptr<float>();
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<float> partial(blocks * F, 0.0f);
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; blk++) {
      for (int64_t r = blk * kRowsPerBlock; r < std::min(rows, (blk + 1) * kRowsPerBlock); r++) {
        kern::BiasGeluGrad(xp + r * F, bp, dyp + r * F, dxp + r * F, partial.data() + blk * F, F);
      }
    }
  });
  at::Tensor dbias = at::zeros({F}, bias.options());
  float* dbp = dbias.data_ptr<float>();
  for (int64_t blk = 0; blk < blocks; blk++)
    for (int64_t i = 0; i < F; i++) dbp[i] += partial[blk * F + i];
  return dbias;
}

bool IsBf16(const at::Tensor& t) { return t.scalar_type() == at::kBFloat16; }

struct BiasGeluTanh : public torch::autograd::Function<BiasGeluTanh> {
  // `hasBias` false: `biasIn` is a zero stand-in and gets no gradient (undefined inputs do not pass through apply).
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& xIn, const at::Tensor& biasIn, bool hasBias) {
    at::Tensor x = xIn.contiguous();
    const int64_t F = x.size(-1);
    at::Tensor bias = biasIn.to(at::kFloat).contiguous();
    at::Tensor y = at::empty_like(x);
    if (IsBf16(x)) Forward<uint16_t>(x, bias, y, x.numel() / F, F);
    else Forward<float>(x, bias, y, x.numel() / F, F);
    ctx->save_for_backward({x, bias});
    ctx->saved_data["bias_dtype"] = hasBias ? static_cast<int64_t>(biasIn.scalar_type()) : int64_t{-1};
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& bias = saved[1];
    const int64_t F = x.size(-1);
    at::Tensor dy = grads[0].to(x.scalar_type()).contiguous();
    at::Tensor dx = at::empty_like(x);
    at::Tensor dbias = IsBf16(x) ? Backward<uint16_t>(x, bias, dy, dx, x.numel() / F, F) : Backward<float>(x, bias, dy, dx, x.numel() / F, F);
    const int64_t biasDtype = ctx->saved_data["bias_dtype"].toInt();
    return {dx, biasDtype < 0 ? at::Tensor() : dbias.to(static_cast<at::ScalarType>(biasDtype)), at::Tensor()};
  }
};
}  // namespace

// biasGelu(x [..., F] float32 | bfloat16, bias [F] | undefined) → gelu_tanh(x + bias) in x's dtype.
static Napi::Value BiasGelu(const Napi::CallbackInfo& info) {
  at::Tensor& x = Tens(info, 0);
  auto bias = OptTens(info, 1);
  if (x.dim() < 1 || x.numel() == 0) throw Napi::RangeError::New(info.Env(), "biasGelu: x must have at least one element");
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kBFloat16) throw Napi::TypeError::New(info.Env(), "biasGelu: x must be float32 or bfloat16");
  if (!x.device().is_cpu()) throw Napi::TypeError::New(info.Env(), "biasGelu: x must be on the CPU");
  if (bias && (bias->dim() != 1 || bias->size(0) != x.size(-1))) {
    throw Napi::RangeError::New(info.Env(), "biasGelu: bias must be [F] with F the last dimension of x");
  }
  at::Tensor b = bias ? *bias : at::zeros({x.size(-1)}, x.options().dtype(at::kFloat));
  return Wrap(info.Env(), BiasGeluTanh::apply(x, b, bias.has_value()));
}

void InitGelu(Napi::Env env, Napi::Object e) { NTS_EXPORT(e, "biasGelu", BiasGelu); }

}  // namespace nts

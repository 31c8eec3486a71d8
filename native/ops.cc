// Tensor operations: each binding reads its arguments, calls one ATen function and wraps the result.
#include "common.h"

namespace nts {

#define R(expr) return Wrap(info.Env(), (expr))
#define UNARY(Name, method) \
  static Napi::Value Name(const Napi::CallbackInfo& info) { R(Tens(info, 0).method()); }

// Binary arithmetic accepts a tensor or a number on the right, like PyTorch.
#define BINARY(Name, fn) \
  static Napi::Value Name(const Napi::CallbackInfo& info) { \
    at::Tensor& a = Tens(info, 0); \
    if (IsTensorArg(info, 1)) R(at::fn(a, Tens(info, 1))); \
    R(at::fn(a, ScalarArg(info, 1))); \
  }
#define INPLACE_BINARY(Name, method) \
  static Napi::Value Name(const Napi::CallbackInfo& info) { \
    at::Tensor& a = Tens(info, 0); \
    if (IsTensorArg(info, 1)) a.method(Tens(info, 1)); else a.method(ScalarArg(info, 1)); \
    return info[0]; \
  }

// ---- shape
static Napi::Value View(const Napi::CallbackInfo& info) { R(Tens(info, 0).view(IntList(info, 1))); }
static Napi::Value Reshape(const Napi::CallbackInfo& info) { R(Tens(info, 0).reshape(IntList(info, 1))); }
static Napi::Value Transpose(const Napi::CallbackInfo& info) { R(Tens(info, 0).transpose(Int(info, 1), Int(info, 2))); }
static Napi::Value Permute(const Napi::CallbackInfo& info) { R(Tens(info, 0).permute(IntList(info, 1))); }
static Napi::Value Unsqueeze(const Napi::CallbackInfo& info) { R(Tens(info, 0).unsqueeze(Int(info, 1))); }
static Napi::Value Squeeze(const Napi::CallbackInfo& info) {
  if (Missing(info, 1)) R(Tens(info, 0).squeeze());
  R(Tens(info, 0).squeeze(Int(info, 1)));
}
static Napi::Value Expand(const Napi::CallbackInfo& info) { R(Tens(info, 0).expand(IntList(info, 1))); }
static Napi::Value Narrow(const Napi::CallbackInfo& info) { R(Tens(info, 0).narrow(Int(info, 1), Int(info, 2), Int(info, 3))); }
static Napi::Value Select(const Napi::CallbackInfo& info) { R(Tens(info, 0).select(Int(info, 1), Int(info, 2))); }
static Napi::Value Index(const Napi::CallbackInfo& info) { R(Tens(info, 0).index_select(Int(info, 1), Tens(info, 2))); }
static Napi::Value Split(const Napi::CallbackInfo& info) {
  at::Tensor& t = Tens(info, 0);
  if (info[1].IsArray()) return WrapList(info.Env(), t.split_with_sizes(IntList(info, 1), Int(info, 2)));
  return WrapList(info.Env(), t.split(Int(info, 1), Int(info, 2)));
}
static Napi::Value Chunk(const Napi::CallbackInfo& info) { return WrapList(info.Env(), Tens(info, 0).chunk(Int(info, 1), Int(info, 2))); }
static Napi::Value Cat(const Napi::CallbackInfo& info) { R(at::cat(TensList(info, 0), Int(info, 1))); }
static Napi::Value Stack(const Napi::CallbackInfo& info) { R(at::stack(TensList(info, 0), Int(info, 1))); }
static Napi::Value Flatten(const Napi::CallbackInfo& info) { R(Tens(info, 0).flatten(Int(info, 1), Int(info, 2))); }

// ---- elementwise math
BINARY(Add, add)
BINARY(Sub, sub)
BINARY(Mul, mul)
BINARY(Div, div)
BINARY(Pow, pow)
BINARY(Eq, eq)
BINARY(Ne, ne)
BINARY(Lt, lt)
BINARY(Le, le)
BINARY(Gt, gt)
BINARY(Ge, ge)
static Napi::Value Maximum(const Napi::CallbackInfo& info) {
  at::Tensor& a = Tens(info, 0);
  if (IsTensorArg(info, 1)) R(at::maximum(a, Tens(info, 1)));
  R(at::clamp_min(a, ScalarArg(info, 1)));
}
UNARY(Sqrt, sqrt)
UNARY(Rsqrt, rsqrt)
UNARY(Exp, exp)
UNARY(Log, log)
UNARY(Tanh, tanh)
UNARY(Neg, neg)
UNARY(Abs, abs)
UNARY(Sigmoid, sigmoid)
UNARY(Relu, relu)
UNARY(LogicalNot, logical_not)
static Napi::Value Clamp(const Napi::CallbackInfo& info) {
  c10::optional<at::Scalar> lo, hi;
  if (!Missing(info, 1)) lo = ScalarArg(info, 1);
  if (!Missing(info, 2)) hi = ScalarArg(info, 2);
  R(at::clamp(Tens(info, 0), lo, hi));
}
static Napi::Value Where(const Napi::CallbackInfo& info) {
  at::Tensor& c = Tens(info, 0);
  if (IsTensorArg(info, 1) && IsTensorArg(info, 2)) R(at::where(c, Tens(info, 1), Tens(info, 2)));
  if (IsTensorArg(info, 1)) R(at::where(c, Tens(info, 1), ScalarArg(info, 2)));
  if (IsTensorArg(info, 2)) R(at::where(c, ScalarArg(info, 1), Tens(info, 2)));
  R(at::where(c, ScalarArg(info, 1), ScalarArg(info, 2)));
}
static Napi::Value MaskedFill(const Napi::CallbackInfo& info) { R(Tens(info, 0).masked_fill(Tens(info, 1), ScalarArg(info, 2))); }
static Napi::Value Tril(const Napi::CallbackInfo& info) { R(Tens(info, 0).tril(Int(info, 1))); }
static Napi::Value Triu(const Napi::CallbackInfo& info) { R(Tens(info, 0).triu(Int(info, 1))); }

// ---- linear algebra
static Napi::Value Matmul(const Napi::CallbackInfo& info) { R(at::matmul(Tens(info, 0), Tens(info, 1))); }
static Napi::Value Bmm(const Napi::CallbackInfo& info) { R(at::bmm(Tens(info, 0), Tens(info, 1))); }
// The fused path of linear.cc where it applies (CPU float32/bf16), at::linear otherwise.
static Napi::Value Linear(const Napi::CallbackInfo& info) { R(LinearForward(Tens(info, 0), Tens(info, 1), OptTens(info, 2))); }

// ---- reductions: dims === undefined reduces over everything.
static Napi::Value Sum(const Napi::CallbackInfo& info) {
  auto dtype = OptDtype(info, 3);
  if (Missing(info, 1)) R(Tens(info, 0).sum(dtype));
  R(Tens(info, 0).sum(IntList(info, 1), Bool(info, 2), dtype));
}
static Napi::Value Mean(const Napi::CallbackInfo& info) {
  auto dtype = OptDtype(info, 3);
  if (Missing(info, 1)) R(Tens(info, 0).mean(dtype));
  R(Tens(info, 0).mean(IntList(info, 1), Bool(info, 2), dtype));
}
static Napi::Value MaxMin(const Napi::CallbackInfo& info, bool isMax) {
  at::Tensor& t = Tens(info, 0);
  if (Missing(info, 1)) R(isMax ? t.max() : t.min());
  auto r = isMax ? t.max(Int(info, 1), Bool(info, 2)) : t.min(Int(info, 1), Bool(info, 2));
  return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
}
static Napi::Value Max(const Napi::CallbackInfo& info) { return MaxMin(info, true); }
static Napi::Value Min(const Napi::CallbackInfo& info) { return MaxMin(info, false); }
static Napi::Value Argmax(const Napi::CallbackInfo& info) {
  if (Missing(info, 1)) R(Tens(info, 0).argmax());
  R(Tens(info, 0).argmax(Int(info, 1), Bool(info, 2)));
}
static Napi::Value Norm(const Napi::CallbackInfo& info) {
  at::Scalar p = ScalarArg(info, 1);
  if (Missing(info, 2)) R(at::norm(Tens(info, 0), p));
  R(at::norm(Tens(info, 0), p, IntList(info, 2), Bool(info, 3)));
}

// ---- neural-network functions
static Napi::Value Embedding(const Napi::CallbackInfo& info) { R(at::embedding(Tens(info, 0), Tens(info, 1))); }
static Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  R(at::layer_norm(Tens(info, 0), IntList(info, 1), OptTens(info, 2), OptTens(info, 3), Num(info, 4)));
}
static Napi::Value Gelu(const Napi::CallbackInfo& info) { R(at::gelu(Tens(info, 0), Bool(info, 1) ? "tanh" : "none")); }
static Napi::Value Softmax(const Napi::CallbackInfo& info) { R(at::softmax(Tens(info, 0), Int(info, 1), OptDtype(info, 2))); }
static Napi::Value LogSoftmax(const Napi::CallbackInfo& info) { R(at::log_softmax(Tens(info, 0), Int(info, 1), OptDtype(info, 2))); }
static Napi::Value Dropout(const Napi::CallbackInfo& info) { R(at::dropout(Tens(info, 0), Num(info, 1), Bool(info, 2))); }
// crossEntropy(logits[N,C], target[N], ignoreIndex, reduction 0 none | 1 mean | 2 sum, labelSmoothing)
static Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  int64_t reduction = Int(info, 3);
  if (reduction < 0 || reduction > 2) throw Napi::RangeError::New(info.Env(), "reduction must be none, mean or sum");
  R(at::cross_entropy_loss(Tens(info, 0), Tens(info, 1), c10::nullopt, reduction, Int(info, 2), Num(info, 4)));
}
static Napi::Value Topk(const Napi::CallbackInfo& info) {
  auto r = at::topk(Tens(info, 0), Int(info, 1), Int(info, 2), Bool(info, 3), true);
  return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
}
static Napi::Value Sort(const Napi::CallbackInfo& info) {
  auto r = at::sort(Tens(info, 0), Int(info, 1), Bool(info, 2));
  return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
}
static Napi::Value Cumsum(const Napi::CallbackInfo& info) { R(at::cumsum(Tens(info, 0), Int(info, 1))); }
static Napi::Value Multinomial(const Napi::CallbackInfo& info) { R(at::multinomial(Tens(info, 0), Int(info, 1), Bool(info, 2))); }
static Napi::Value Gather(const Napi::CallbackInfo& info) { R(at::gather(Tens(info, 0), Int(info, 1), Tens(info, 2))); }
static Napi::Value Scatter(const Napi::CallbackInfo& info) { R(Tens(info, 0).scatter(Int(info, 1), Tens(info, 2), ScalarArg(info, 3))); }

// ---- in-place updates (return the same handle)
INPLACE_BINARY(Add_, add_)
INPLACE_BINARY(Sub_, sub_)
INPLACE_BINARY(Mul_, mul_)
INPLACE_BINARY(Div_, div_)
static Napi::Value AddScaled_(const Napi::CallbackInfo& info) { Tens(info, 0).add_(Tens(info, 1), ScalarArg(info, 2)); return info[0]; }
static Napi::Value Addcmul_(const Napi::CallbackInfo& info) { Tens(info, 0).addcmul_(Tens(info, 1), Tens(info, 2), ScalarArg(info, 3)); return info[0]; }
static Napi::Value Addcdiv_(const Napi::CallbackInfo& info) { Tens(info, 0).addcdiv_(Tens(info, 1), Tens(info, 2), ScalarArg(info, 3)); return info[0]; }
static Napi::Value Lerp_(const Napi::CallbackInfo& info) {
  if (IsTensorArg(info, 2)) Tens(info, 0).lerp_(Tens(info, 1), Tens(info, 2));
  else Tens(info, 0).lerp_(Tens(info, 1), ScalarArg(info, 2));
  return info[0];
}
static Napi::Value Copy_(const Napi::CallbackInfo& info) { Tens(info, 0).copy_(Tens(info, 1)); return info[0]; }
static Napi::Value Clamp_(const Napi::CallbackInfo& info) {
  c10::optional<at::Scalar> lo, hi;
  if (!Missing(info, 1)) lo = ScalarArg(info, 1);
  if (!Missing(info, 2)) hi = ScalarArg(info, 2);
  Tens(info, 0).clamp_(lo, hi);
  return info[0];
}
static Napi::Value Equal(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), at::equal(Tens(info, 0), Tens(info, 1))); }
static Napi::Value Allclose(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::allclose(Tens(info, 0), Tens(info, 1), Num(info, 2), Num(info, 3)));
}

void InitOps(Napi::Env env, Napi::Object e) {
  NTS_EXPORT(e, "view", View); NTS_EXPORT(e, "reshape", Reshape); NTS_EXPORT(e, "transpose", Transpose);
  NTS_EXPORT(e, "permute", Permute); NTS_EXPORT(e, "unsqueeze", Unsqueeze); NTS_EXPORT(e, "squeeze", Squeeze);
  NTS_EXPORT(e, "expand", Expand); NTS_EXPORT(e, "narrow", Narrow); NTS_EXPORT(e, "select", Select);
  NTS_EXPORT(e, "indexSelect", Index); NTS_EXPORT(e, "split", Split); NTS_EXPORT(e, "chunk", Chunk);
  NTS_EXPORT(e, "cat", Cat); NTS_EXPORT(e, "stack", Stack); NTS_EXPORT(e, "flatten", Flatten);
  NTS_EXPORT(e, "add", Add); NTS_EXPORT(e, "sub", Sub); NTS_EXPORT(e, "mul", Mul); NTS_EXPORT(e, "div", Div);
  NTS_EXPORT(e, "pow", Pow); NTS_EXPORT(e, "eq", Eq); NTS_EXPORT(e, "ne", Ne); NTS_EXPORT(e, "lt", Lt);
  NTS_EXPORT(e, "le", Le); NTS_EXPORT(e, "gt", Gt); NTS_EXPORT(e, "ge", Ge); NTS_EXPORT(e, "maximum", Maximum);
  NTS_EXPORT(e, "sqrt", Sqrt); NTS_EXPORT(e, "rsqrt", Rsqrt); NTS_EXPORT(e, "exp", Exp); NTS_EXPORT(e, "log", Log);
  NTS_EXPORT(e, "tanh", Tanh); NTS_EXPORT(e, "neg", Neg); NTS_EXPORT(e, "abs", Abs); NTS_EXPORT(e, "sigmoid", Sigmoid);
  NTS_EXPORT(e, "relu", Relu); NTS_EXPORT(e, "logicalNot", LogicalNot); NTS_EXPORT(e, "clamp", Clamp);
  NTS_EXPORT(e, "where", Where); NTS_EXPORT(e, "maskedFill", MaskedFill); NTS_EXPORT(e, "tril", Tril);
  NTS_EXPORT(e, "triu", Triu); NTS_EXPORT(e, "matmul", Matmul); NTS_EXPORT(e, "bmm", Bmm);
  NTS_EXPORT(e, "linear", Linear); NTS_EXPORT(e, "sum", Sum); NTS_EXPORT(e, "mean", Mean); NTS_EXPORT(e, "max", Max);
  NTS_EXPORT(e, "min", Min); NTS_EXPORT(e, "argmax", Argmax); NTS_EXPORT(e, "norm", Norm);
  NTS_EXPORT(e, "embedding", Embedding); NTS_EXPORT(e, "layerNorm", LayerNorm); NTS_EXPORT(e, "gelu", Gelu);
  NTS_EXPORT(e, "softmax", Softmax); NTS_EXPORT(e, "logSoftmax", LogSoftmax); NTS_EXPORT(e, "dropout", Dropout);
  NTS_EXPORT(e, "crossEntropy", CrossEntropy); NTS_EXPORT(e, "topk", Topk); NTS_EXPORT(e, "sort", Sort);
  NTS_EXPORT(e, "cumsum", Cumsum); NTS_EXPORT(e, "multinomial", Multinomial); NTS_EXPORT(e, "gather", Gather);
  NTS_EXPORT(e, "scatter", Scatter);
  NTS_EXPORT(e, "add_", Add_); NTS_EXPORT(e, "sub_", Sub_); NTS_EXPORT(e, "mul_", Mul_); NTS_EXPORT(e, "div_", Div_);
  NTS_EXPORT(e, "addScaled_", AddScaled_); NTS_EXPORT(e, "addcmul_", Addcmul_); NTS_EXPORT(e, "addcdiv_", Addcdiv_);
  NTS_EXPORT(e, "lerp_", Lerp_); NTS_EXPORT(e, "copy_", Copy_); NTS_EXPORT(e, "clamp_", Clamp_);
  NTS_EXPORT(e, "equal", Equal); NTS_EXPORT(e, "allclose", Allclose);
}

}  // namespace nts

// Fused causal self-attention for CPU, forward and backward, flash-style: queries and keys in tiles, an online
// softmax (running row max and sum), the output and each row's log-sum-exp kept for backward, never a T × T matrix.
// Tiles wholly above the diagonal are never computed. Parallel over batch × heads (× query tiles in forward) on
// libtorch's intra-op threads, so --threads governs it. float32 and bf16 inputs; bf16 products accumulate in
// float32 (kern::Gemm), softmax statistics are float32.
//
// Why native: at GPT-2 124M's shape (B 4, H 12, T 1024, D 64, bf16, 2 threads) the composed path materialised
// score blocks, masked, soft-maxed and multiplied them back through ATen, ~1.3 s of a ~10 s training step and a
// few hundred MB of activations per layer; docs/benchmarks.md ("attention") has the figures for this kernel.
#include "common.h"
#include "kernels.h"
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace nts {

namespace {

// Tile sizes: queries per tile and keys per tile. A tile's scores are 128 × 512 floats (256 KB, within a core's L2
// on current x86). Swept at GPT-2's shape (B 4, H 12, T 1024, bf16, 2 threads): forward 64–256 × 256–1024 all gave
// 18.4–19.3 ms; backward 128 × 512 gave 41 ms, 64 × 256 and 512 × 512 gave 44–52 ms, 64 × 128 ~100 ms (GEMM calls
// this small are dominated by oneDNN's packing).
constexpr int64_t kFwdQ = 128;
constexpr int64_t kFwdK = 512;
constexpr int64_t kBwdQ = 128;
constexpr int64_t kBwdK = 512;

// A [B, T, H, D] tensor's memory: element (b, t, h, d) sits at p[b·sb + t·st + h·sh + d] (d contiguous).
template <typename R>
struct Heads {
  R* p;
  int64_t sb, st, sh;
  R* head(int64_t b, int64_t h) const { return p + b * sb + h * sh; }
};
template <typename R>
Heads<R> HeadsOf(const at::Tensor& t) {
  return {reinterpret_cast<R*>(t.data_ptr()), t.stride(0), t.stride(1), t.stride(2)};
}

// The operand a Gemm sees for probabilities/score gradients: the float buffer itself for float inputs, a bf16 copy
// for bf16 inputs (oneDNN's mixed GEMM takes bf16 × bf16).
template <typename R>
struct Operand {
  kern::Scratch<uint16_t> bf16;
  explicit Operand(int64_t n) : bf16(std::is_same<R, uint16_t>::value ? n : 0) {}
  const R* From(const float* x, int64_t n) {
    if constexpr (std::is_same<R, float>::value) {
      return x;
    } else {
      kern::ScaleStore(x, bf16.data(), n, 1.0f);
      return bf16.data();
    }
  }
};

struct Shape {
  int64_t B, Tq, Tk, H, D;
  int64_t offset;  // query i sits at absolute position offset + i and sees keys 0 ..= offset + i
  float scale;
};

// Keys a query row sees inside the key tile starting at j0 (≤ 0: none).
inline int64_t VisibleKeys(const Shape& s, int64_t row, int64_t j0, int64_t nk) {
  return std::min<int64_t>(nk, s.offset + row + 1 - j0);
}

// ---- forward: one tile of queries of one head, against every key tile it can see.
template <typename R>
void ForwardTile(const Shape& s, const Heads<const R>& q, const Heads<const R>& k, const Heads<const R>& v,
                 const Heads<R>& o, float* lse, int64_t b, int64_t h, int64_t i0) {
  const int64_t D = s.D;
  const int64_t nq = std::min(kFwdQ, s.Tq - i0);
  const int64_t keyEnd = std::min(s.Tk, s.offset + i0 + nq);
  kern::Scratch<float> scores(nq * kFwdK);
  std::vector<float> acc(nq * D, 0.0f), rowMax(nq, -std::numeric_limits<float>::infinity()), rowSum(nq, 0.0f);
  Operand<R> probs(nq * kFwdK);
  const R* qi = q.head(b, h) + i0 * q.st;
  for (int64_t j0 = 0; j0 < keyEnd; j0 += kFwdK) {
    const int64_t nk = std::min(kFwdK, keyEnd - j0);
    kern::Gemm(false, true, nq, nk, D, s.scale, qi, q.st, k.head(b, h) + j0 * k.st, k.st, 0.0f, scores.data(), nk);
    for (int64_t r = 0; r < nq; r++) {
      float* row = scores.data() + r * nk;
      const int64_t visible = VisibleKeys(s, i0 + r, j0, nk);
      if (visible <= 0) {
        std::fill(row, row + nk, 0.0f);
        continue;
      }
      const float newMax = std::max(rowMax[r], kern::RowMax(row, visible));
      const float rescale = std::exp(rowMax[r] - newMax);  // 0 on the first tile (rowMax = -inf)
      const float sum = kern::ExpShiftInPlace(row, visible, newMax);
      std::fill(row + visible, row + nk, 0.0f);
      rowSum[r] = rowSum[r] * rescale + sum;
      if (rescale != 1.0f) kern::ScaleInPlace(acc.data() + r * D, D, rescale);
      rowMax[r] = newMax;
    }
    const R* p = probs.From(scores.data(), nq * nk);
    kern::Gemm(false, false, nq, D, nk, 1.0f, p, nk, v.head(b, h) + j0 * v.st, v.st, 1.0f, acc.data(), D);
  }
  R* oi = o.head(b, h) + i0 * o.st;
  for (int64_t r = 0; r < nq; r++) {
    kern::ScaleStore(acc.data() + r * D, oi + r * o.st, D, 1.0f / rowSum[r]);
    lse[r] = rowMax[r] + std::log(rowSum[r]);
  }
}

// q: [B, Tq, H, D], k, v: [B, Tk, H, D] (any strides, d contiguous) → o [B, Tq, H, D], lse [B, H, Tq].
template <typename R>
void Forward(const Shape& s, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& o, const at::Tensor& lse) {
  const auto qh = HeadsOf<const R>(q), kh = HeadsOf<const R>(k), vh = HeadsOf<const R>(v);
  const auto oh = HeadsOf<R>(o);
  float* l = lse.data_ptr<float>();
  const int64_t tiles = (s.Tq + kFwdQ - 1) / kFwdQ;
  at::parallel_for(0, s.B * s.H * tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; w++) {
      const int64_t bh = w / tiles, t = w % tiles;
      const int64_t b = bh / s.H, h = bh % s.H;
      ForwardTile<R>(s, qh, kh, vh, oh, l + (b * s.H + h) * s.Tq + t * kFwdQ, b, h, t * kFwdQ);
    }
  });
}

// ---- backward: one head at a time (its dQ, dK, dV accumulate over tiles in float32, then are written once).
template <typename R>
void BackwardHead(const Shape& s, const Heads<const R>& q, const Heads<const R>& k, const Heads<const R>& v,
                  const Heads<const R>& o, const Heads<const R>& dout, const float* lse, const Heads<R>& dq,
                  const Heads<R>& dk, const Heads<R>& dv, int64_t b, int64_t h) {
  const int64_t D = s.D;
  kern::Scratch<float> rowDot(s.Tq), probs(kBwdQ * kBwdK), dscores(kBwdQ * kBwdK);
  std::vector<float> dqAcc(s.Tq * D, 0.0f), dkAcc(s.Tk * D, 0.0f), dvAcc(s.Tk * D, 0.0f);
  Operand<R> probsOp(kBwdQ * kBwdK), dscoresOp(kBwdQ * kBwdK);
  const R* qh = q.head(b, h);
  const R* kh = k.head(b, h);
  const R* vh = v.head(b, h);
  const R* doh = dout.head(b, h);
  // Σ_d dO·O per query row: the softmax backward's row term (dO·O = Σ_j P_ij dP_ij).
  for (int64_t t = 0; t < s.Tq; t++) rowDot[t] = kern::Dot(doh + t * dout.st, o.head(b, h) + t * o.st, D);
  for (int64_t i0 = 0; i0 < s.Tq; i0 += kBwdQ) {
    const int64_t nq = std::min(kBwdQ, s.Tq - i0);
    const int64_t keyEnd = std::min(s.Tk, s.offset + i0 + nq);
    const R* qi = qh + i0 * q.st;
    const R* doi = doh + i0 * dout.st;
    for (int64_t j0 = 0; j0 < keyEnd; j0 += kBwdK) {
      const int64_t nk = std::min(kBwdK, keyEnd - j0);
      const R* kj = kh + j0 * k.st;
      const R* vj = vh + j0 * v.st;
      // P = exp(scale · Q Kᵀ − lse), zero where masked.
      kern::Gemm(false, true, nq, nk, D, s.scale, qi, q.st, kj, k.st, 0.0f, probs.data(), nk);
      for (int64_t r = 0; r < nq; r++) {
        float* row = probs.data() + r * nk;
        const int64_t visible = std::max<int64_t>(0, VisibleKeys(s, i0 + r, j0, nk));
        kern::ExpShiftInPlace(row, visible, lse[i0 + r]);
        std::fill(row + visible, row + nk, 0.0f);
      }
      const R* p = probsOp.From(probs.data(), nq * nk);
      // dV_j += Pᵀ dO_i;  dP = dO_i V_jᵀ;  dS = P ∘ (dP − rowDot);  dQ_i += scale · dS K_j;  dK_j += scale · dSᵀ Q_i.
      kern::Gemm(true, false, nk, D, nq, 1.0f, p, nk, doi, dout.st, 1.0f, dvAcc.data() + j0 * D, D);
      kern::Gemm(false, true, nq, nk, D, 1.0f, doi, dout.st, vj, v.st, 0.0f, dscores.data(), nk);
      for (int64_t r = 0; r < nq; r++) kern::SoftmaxGradInPlace(probs.data() + r * nk, dscores.data() + r * nk, nk, rowDot[i0 + r]);
      const R* ds = dscoresOp.From(dscores.data(), nq * nk);
      kern::Gemm(false, false, nq, D, nk, s.scale, ds, nk, kj, k.st, 1.0f, dqAcc.data() + i0 * D, D);
      kern::Gemm(true, false, nk, D, nq, s.scale, ds, nk, qi, q.st, 1.0f, dkAcc.data() + j0 * D, D);
    }
  }
  for (int64_t t = 0; t < s.Tq; t++) kern::ScaleStore(dqAcc.data() + t * D, dq.head(b, h) + t * dq.st, D, 1.0f);
  for (int64_t t = 0; t < s.Tk; t++) {
    kern::ScaleStore(dkAcc.data() + t * D, dk.head(b, h) + t * dk.st, D, 1.0f);
    kern::ScaleStore(dvAcc.data() + t * D, dv.head(b, h) + t * dv.st, D, 1.0f);
  }
}

template <typename R>
void Backward(const Shape& s, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& o,
              const at::Tensor& dout, const at::Tensor& lse, const at::Tensor& dq, const at::Tensor& dk, const at::Tensor& dv) {
  const auto qh = HeadsOf<const R>(q), kh = HeadsOf<const R>(k), vh = HeadsOf<const R>(v), oh = HeadsOf<const R>(o);
  const auto doh = HeadsOf<const R>(dout);
  const auto dqh = HeadsOf<R>(dq), dkh = HeadsOf<R>(dk), dvh = HeadsOf<R>(dv);
  const float* l = lse.data_ptr<float>();
  at::parallel_for(0, s.B * s.H, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; bh++) {
      const int64_t b = bh / s.H, h = bh % s.H;
      BackwardHead<R>(s, qh, kh, vh, oh, doh, l + bh * s.Tq, dqh, dkh, dvh, b, h);
    }
  });
}

// ---- argument checks and dispatch on dtype

void CheckHeads(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 4, "attention: ", name, " must be [B, T, H, D], got ", t.sizes());
  TORCH_CHECK(t.device().is_cpu(), "attention: ", name, " must be on the CPU (fused attention is a CPU kernel)");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16, "attention: ", name,
              " must be float32 or bfloat16, got ", t.scalar_type());
  TORCH_CHECK(t.stride(3) == 1, "attention: ", name, "'s last dimension must be contiguous");
}

Shape ShapeOf(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  CheckHeads(q, "q");
  CheckHeads(k, "k");
  CheckHeads(v, "v");
  TORCH_CHECK(k.sizes() == v.sizes(), "attention: k and v differ in shape: ", k.sizes(), " vs ", v.sizes());
  TORCH_CHECK(q.size(0) == k.size(0) && q.size(2) == k.size(2) && q.size(3) == k.size(3),
              "attention: q ", q.sizes(), " does not match k ", k.sizes(), " in batch, heads or head size");
  TORCH_CHECK(q.scalar_type() == k.scalar_type() && q.scalar_type() == v.scalar_type(), "attention: q, k and v must share a dtype");
  TORCH_CHECK(k.size(1) >= q.size(1), "attention: fewer keys (", k.size(1), ") than queries (", q.size(1), ")");
  Shape s{q.size(0), q.size(1), k.size(1), q.size(2), q.size(3), k.size(1) - q.size(1), 0.0f};
  s.scale = 1.0f / std::sqrt(static_cast<float>(s.D));
  return s;
}

// Writes the attention of q over k, v into `out` ([B, Tq, H, D], any strides with d contiguous) and returns the
// row log-sum-exps [B, H, Tq].
at::Tensor RunForward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out) {
  Shape s = ShapeOf(q, k, v);
  at::Tensor lse = at::empty({s.B, s.H, s.Tq}, q.options().dtype(at::kFloat));
  if (q.scalar_type() == at::kBFloat16) Forward<uint16_t>(s, q, k, v, out, lse);
  else Forward<float>(s, q, k, v, out, lse);
  return lse;
}

// q, k, v as [B, T, H, D] views of a [B, T, 3C] projection (no copy).
std::tuple<at::Tensor, at::Tensor, at::Tensor> SplitHeads(const at::Tensor& qkv, int64_t heads) {
  const int64_t C = qkv.size(2) / 3;
  at::Tensor parts = qkv.view({qkv.size(0), qkv.size(1), 3, heads, C / heads});
  return {parts.select(2, 0), parts.select(2, 1), parts.select(2, 2)};
}

// Attention over a fused QKV projection, differentiable: [B, T, 3C] → [B, T, C]. Saves the projection, the output
// and the row log-sum-exps (B·H·T floats), the only state backward needs besides the incoming gradient.
struct FusedCausalAttention : public torch::autograd::Function<FusedCausalAttention> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& qkvIn, int64_t heads) {
    at::Tensor qkv = qkvIn.contiguous();
    auto [q, k, v] = SplitHeads(qkv, heads);
    at::Tensor out = at::empty({qkv.size(0), qkv.size(1), qkv.size(2) / 3}, qkv.options());
    at::Tensor lse = RunForward(q, k, v, out.view(q.sizes()));
    ctx->save_for_backward({qkv, out, lse});
    ctx->saved_data["heads"] = heads;
    return out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& qkv = saved[0];
    const at::Tensor& out = saved[1];
    const at::Tensor& lse = saved[2];
    const int64_t heads = ctx->saved_data["heads"].toInt();
    auto [q, k, v] = SplitHeads(qkv, heads);
    at::Tensor dout = grads[0].to(out.scalar_type()).contiguous().view(q.sizes());
    at::Tensor dqkv = at::empty_like(qkv);
    auto [dq, dk, dv] = SplitHeads(dqkv, heads);
    Shape s = ShapeOf(q, k, v);
    at::Tensor o = out.view(q.sizes());
    if (qkv.scalar_type() == at::kBFloat16) Backward<uint16_t>(s, q, k, v, o, dout, lse, dq, dk, dv);
    else Backward<float>(s, q, k, v, o, dout, lse, dq, dk, dv);
    return {dqkv, at::Tensor()};
  }
};
}  // namespace

// causalAttentionQKV(qkv [B, T, 3C], heads) → [B, T, C]: training, evaluation and prompts without a cache.
static Napi::Value CausalAttentionQKV(const Napi::CallbackInfo& info) {
  at::Tensor& qkv = Tens(info, 0);
  int64_t heads = Int(info, 1);
  if (qkv.dim() != 3 || heads <= 0 || qkv.size(2) % (3 * heads) != 0) {
    throw Napi::RangeError::New(info.Env(), "causalAttentionQKV expects qkv [B, T, 3·C] with C divisible by the head count");
  }
  return Wrap(info.Env(), FusedCausalAttention::apply(qkv, heads));
}

// causalAttention(q [B, Tq, H, D], k, v [B, Tk, H, D]) → [B, Tq, H, D], queries at positions Tk − Tq …: decoding
// against a KV cache. Not differentiable (inference only).
static Napi::Value CausalAttention(const Napi::CallbackInfo& info) {
  at::Tensor& q = Tens(info, 0);
  at::Tensor& k = Tens(info, 1);
  at::Tensor& v = Tens(info, 2);
  if (at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad())) {
    throw Napi::Error::New(info.Env(), "causalAttention is inference-only; use causalAttentionQKV (or noGrad) for gradients");
  }
  CheckHeads(q, "q");
  at::Tensor out = at::empty({q.size(0), q.size(1), q.size(2), q.size(3)}, q.options());
  RunForward(q, k, v, out);
  return Wrap(info.Env(), out);
}

static Napi::Value GemmBackend(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), kern::GemmBackendName()); }

void InitAttention(Napi::Env env, Napi::Object e) {
  kern::LimitBlasThreads();
  NTS_EXPORT(e, "causalAttentionQKV", CausalAttentionQKV);
  NTS_EXPORT(e, "causalAttention", CausalAttention);
  NTS_EXPORT(e, "gemmBackend", GemmBackend);
}

}  // namespace nts

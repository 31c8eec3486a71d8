// Autograd, grad mode, autocast, threads and RNG state.
#include "common.h"
#include "compat.h"
#include <ATen/autocast_mode.h>
#include <ATen/Parallel.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/csrc/autograd/variable.h>
#include <memory>
#include <utility>
#include <torch/version.h>

namespace nts {

static Napi::Value Backward(const Napi::CallbackInfo& info) {
  at::Tensor& t = Tens(info, 0);
  auto grad = OptTens(info, 1);
  bool retain = !Missing(info, 2) && Bool(info, 2);
  t.backward(grad.value_or(at::Tensor()), retain);
  return info.Env().Undefined();
}

// backwardAsync(loss, grad?) runs the backward pass on a libuv worker thread, so a long backward of a big model
// does not freeze the event loop (progress output, signals, an HTTP endpoint sharing the process).
class BackwardWorker : public Napi::AsyncWorker {
 public:
  BackwardWorker(Napi::Env env, at::Tensor loss, at::Tensor grad)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), loss_(std::move(loss)), grad_(std::move(grad)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      loss_.backward(grad_);
    } catch (const c10::Error& e) {
      SetError(e.what_without_backtrace());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
    loss_ = at::Tensor();
    grad_ = at::Tensor();
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  at::Tensor loss_, grad_;
};

static Napi::Value BackwardAsync(const Napi::CallbackInfo& info) {
  auto grad = OptTens(info, 1);
  auto* w = new BackwardWorker(info.Env(), Tens(info, 0), grad.value_or(at::Tensor()));
  auto p = w->Promise();
  w->Queue();
  return p;
}

// Gradient-ready notifications, for overlapping the data-parallel all-reduce with backward (src/train/ddp.ts).
// A post-hook on a leaf's AccumulateGrad node runs on the backward thread right after the leaf's .grad has been
// updated; it only posts the leaf's index to JavaScript (a thread-safe function), where the bucketing and the
// collectives live. Native because no JavaScript can run on the backward thread.
namespace {

struct GradReadyHooks {
  static constexpr uint64_t kMagic = 0x6e74732d686f6f6bULL;  // "nts-hook"
  uint64_t magic = kMagic;
  Napi::ThreadSafeFunction tsfn;
  // Stamped on every notification when the hook fires: a delivery still queued from an earlier backward carries
  // the earlier tag, so JavaScript can tell it from the current pass's (deliveries are asynchronous).
  std::shared_ptr<std::atomic<int64_t>> tag = std::make_shared<std::atomic<int64_t>>(0);
  bool live = false;
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks;

  // Unhooks every node, then lets the thread-safe function go. Main thread only, with no backward running.
  void Remove() {
    for (auto& [node, key] : hooks) node->del_post_hook(key);
    hooks.clear();
    if (live) tsfn.Release();
    live = false;
  }
};

struct Ready {
  int32_t index;
  int64_t tag;
};

class ReadyPostHook : public torch::autograd::FunctionPostHook {
 public:
  ReadyPostHook(Napi::ThreadSafeFunction tsfn, std::shared_ptr<std::atomic<int64_t>> tag, int32_t index)
      : tsfn_(std::move(tsfn)), tag_(std::move(tag)), index_(index) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    auto* ready = new Ready{index_, tag_->load()};
    // Non-blocking: the backward thread never waits for JavaScript. Fails only while the environment shuts down.
    if (tsfn_.NonBlockingCall(ready, Deliver) != napi_ok) delete ready;
    return outputs;
  }

 private:
  static void Deliver(Napi::Env env, Napi::Function callback, Ready* ready) {
    Ready r = *ready;
    delete ready;
    if (env == nullptr || callback.IsEmpty()) return;
    try {
      callback.Call({Napi::Number::New(env, r.index), Napi::Number::New(env, static_cast<double>(r.tag))});
    } catch (const Napi::Error&) {
      // The JavaScript side records its own failures; nothing may unwind into libuv from here.
    }
  }
  Napi::ThreadSafeFunction tsfn_;
  std::shared_ptr<std::atomic<int64_t>> tag_;
  int32_t index_;
};

GradReadyHooks* HooksArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsExternal()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " is not a gradient hook handle");
  auto* h = info[i].As<Napi::External<GradReadyHooks>>().Data();
  if (h == nullptr || h->magic != GradReadyHooks::kMagic) throw Napi::TypeError::New(info.Env(), "argument is not a gradient hook handle");
  return h;
}

}  // namespace

// onGradReady(leaves: Tensor[], callback(index, tag)) → handle: callback(i, tag) runs on the main thread each time
// backward has accumulated leaves[i].grad; tag is the value setGradReadyTag(handle, tag) last set when the hook
// fired. removeGradReady(handle) unhooks them (also done when the handle is collected).
static Napi::Value OnGradReady(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<at::Tensor> leaves = TensList(info, 0);
  if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "onGradReady: argument 1 must be a function");
  for (size_t i = 0; i < leaves.size(); i++) {
    if (!leaves[i].requires_grad() || !leaves[i].is_leaf()) {
      throw Napi::TypeError::New(env, "onGradReady: tensor " + std::to_string(i) + " is not a leaf that requires grad");
    }
  }
  auto owner = std::make_unique<GradReadyHooks>();
  owner->tsfn = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "nanogpt-grad-ready", 0, 1);
  owner->live = true;
  owner->tsfn.Unref(env);  // waiting for gradients must not keep the process alive
  try {
    for (size_t i = 0; i < leaves.size(); i++) {
      auto node = torch::autograd::impl::grad_accumulator(leaves[i]);
      auto key = node->add_post_hook(std::make_unique<ReadyPostHook>(owner->tsfn, owner->tag, static_cast<int32_t>(i)));
      owner->hooks.emplace_back(std::move(node), key);
    }
  } catch (...) {
    owner->Remove();
    throw;
  }
  return Napi::External<GradReadyHooks>::New(env, owner.release(), [](Napi::Env, GradReadyHooks* h) {
    h->Remove();
    h->magic = 0;
    delete h;
  });
}

static Napi::Value SetGradReadyTag(const Napi::CallbackInfo& info) {
  HooksArg(info, 0)->tag->store(Int(info, 1));
  return info.Env().Undefined();
}

static Napi::Value RemoveGradReady(const Napi::CallbackInfo& info) {
  HooksArg(info, 0)->Remove();
  return info.Env().Undefined();
}

static Napi::Value Grad(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Tens(info, 0).grad()); }
static Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  auto g = OptTens(info, 1);
  Tens(info, 0).mutable_grad() = g.value_or(at::Tensor());
  return info.Env().Undefined();
}
static Napi::Value RequiresGrad(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), Tens(info, 0).requires_grad()); }
static Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) { Tens(info, 0).requires_grad_(Bool(info, 1)); return info[0]; }
static Napi::Value IsLeaf(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), Tens(info, 0).is_leaf()); }
static Napi::Value RetainGrad(const Napi::CallbackInfo& info) { Tens(info, 0).retain_grad(); return info[0]; }

static Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  bool prev = at::GradMode::is_enabled();
  at::GradMode::set_enabled(Bool(info, 0));
  return Napi::Boolean::New(info.Env(), prev);
}
static Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled()); }

// autocastEnter(dtype) → [previously enabled, previous dtype code]. CPU autocast runs matmul-like ops in the
// low-precision dtype and keeps precision-sensitive ones (softmax, losses, layer norm) in float32.
static Napi::Value AutocastEnter(const Napi::CallbackInfo& info) {
  at::ScalarType dtype = Dtype(info, 0);
  bool enable = Missing(info, 1) ? true : Bool(info, 1);
  Napi::Array prev = Napi::Array::New(info.Env(), 2);
  prev.Set(0u, Napi::Boolean::New(info.Env(), CpuAutocastEnabled()));
  prev.Set(1u, Napi::Number::New(info.Env(), static_cast<int>(CpuAutocastDtype())));
  SetCpuAutocastEnabled(enable);
  SetCpuAutocastDtype(dtype);
  at::autocast::increment_nesting();
  return prev;
}
// autocastExit(prevEnabled, prevDtype): restores the outer state; the cast-weight cache is dropped when the
// outermost region ends, as torch.autocast does.
static Napi::Value AutocastExit(const Napi::CallbackInfo& info) {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  SetCpuAutocastEnabled(Bool(info, 0));
  SetCpuAutocastDtype(Dtype(info, 1));
  return info.Env().Undefined();
}
static Napi::Value IsAutocast(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), CpuAutocastEnabled()); }

static Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int64_t n = Int(info, 0);
  if (n < 1) throw Napi::RangeError::New(info.Env(), "thread count must be >= 1");
  at::set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}
static Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), at::get_num_threads()); }
static Napi::Value SetNumInteropThreads(const Napi::CallbackInfo& info) {
  int64_t n = Int(info, 0);
  if (n < 1) throw Napi::RangeError::New(info.Env(), "thread count must be >= 1");
  at::set_num_interop_threads(static_cast<int>(n));  // throws if parallel work already started
  return info.Env().Undefined();
}
static Napi::Value GetNumInteropThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), at::get_num_interop_threads()); }
static Napi::Value ParallelInfo(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), at::get_parallel_info()); }
static Napi::Value Version(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("torch", Napi::String::New(info.Env(), std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH)));
  o.Set("cuda", Napi::Boolean::New(info.Env(), at::hasCUDA()));
  o.Set("mkldnn", Napi::Boolean::New(info.Env(), at::hasMKLDNN()));
  return o;
}

static Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  at::manual_seed(static_cast<uint64_t>(Int(info, 0)));
  return info.Env().Undefined();
}
// The CPU generator's full state (Mersenne Twister + normal cache) as bytes, for bit-exact resume.
static Napi::Value GetRngState(const Napi::CallbackInfo& info) {
  auto gen = at::detail::getDefaultCPUGenerator();
  at::Tensor s;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    s = gen.get_state();
  }
  Napi::Buffer<uint8_t> b = Napi::Buffer<uint8_t>::Copy(info.Env(), s.data_ptr<uint8_t>(), s.numel());
  return b;
}
static Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "RNG state must be a Uint8Array");
  auto ta = info[0].As<Napi::TypedArray>();
  auto* p = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  at::Tensor s = at::from_blob(p, {static_cast<int64_t>(ta.ByteLength())}, at::kByte).clone();
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(s);  // validates the size and throws a c10::Error on a wrong one
  return info.Env().Undefined();
}

// profileStart(path) / profileStop(): libtorch's own operator profiler (every ATen op and autograd node, on every
// thread, with its duration) written as a Chrome trace to `path` when stopped. For finding where a step's time goes
// (`npm run bench -- train --profile FILE`); nothing else uses it.
static std::unique_ptr<torch::autograd::profiler::RecordProfile> gProfile;
static Napi::Value ProfileStart(const Napi::CallbackInfo& info) {
  if (gProfile) throw Napi::Error::New(info.Env(), "a profile is already being recorded");
  gProfile = std::make_unique<torch::autograd::profiler::RecordProfile>(Str(info, 0));
  return info.Env().Undefined();
}
static Napi::Value ProfileStop(const Napi::CallbackInfo& info) {
  gProfile.reset();
  return info.Env().Undefined();
}

void InitAutograd(Napi::Env env, Napi::Object e) {
  NTS_EXPORT(e, "backward", Backward); NTS_EXPORT(e, "backwardAsync", BackwardAsync);
  NTS_EXPORT(e, "onGradReady", OnGradReady); NTS_EXPORT(e, "removeGradReady", RemoveGradReady);
  NTS_EXPORT(e, "setGradReadyTag", SetGradReadyTag);
  NTS_EXPORT(e, "grad", Grad); NTS_EXPORT(e, "setGrad", SetGrad);
  NTS_EXPORT(e, "requiresGrad", RequiresGrad); NTS_EXPORT(e, "setRequiresGrad", SetRequiresGrad);
  NTS_EXPORT(e, "isLeaf", IsLeaf); NTS_EXPORT(e, "retainGrad", RetainGrad);
  NTS_EXPORT(e, "setGradEnabled", SetGradEnabled); NTS_EXPORT(e, "isGradEnabled", IsGradEnabled);
  NTS_EXPORT(e, "autocastEnter", AutocastEnter); NTS_EXPORT(e, "autocastExit", AutocastExit);
  NTS_EXPORT(e, "isAutocast", IsAutocast);
  NTS_EXPORT(e, "setNumThreads", SetNumThreads); NTS_EXPORT(e, "getNumThreads", GetNumThreads);
  NTS_EXPORT(e, "setNumInteropThreads", SetNumInteropThreads); NTS_EXPORT(e, "getNumInteropThreads", GetNumInteropThreads);
  NTS_EXPORT(e, "parallelInfo", ParallelInfo); NTS_EXPORT(e, "version", Version);
  NTS_EXPORT(e, "profileStart", ProfileStart); NTS_EXPORT(e, "profileStop", ProfileStop);
  NTS_EXPORT(e, "manualSeed", ManualSeed); NTS_EXPORT(e, "getRngState", GetRngState); NTS_EXPORT(e, "setRngState", SetRngState);
}

}  // namespace nts

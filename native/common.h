// Shared plumbing of the addon: tensor handles, argument marshalling, and the guard that turns every
// C++ exception (c10::Error included) into a JavaScript Error. No policy lives here.
#pragma once
#include <napi.h>
#include <ATen/ATen.h>
// at::NoGradGuard: no longer reaches us through ATen/ATen.h in libtorch 2.x.
#include <ATen/core/grad_mode.h>
#include <atomic>
#include <string>
#include <vector>

namespace nts {

// A JavaScript tensor handle is a plain object with one of these attached by napi_wrap. dispose() drops `t` (this
// handle's reference to the storage), detaches the holder and deletes it; the GC finalizer does the same for a
// handle that was never disposed.
struct TensorHolder {
  static constexpr uint64_t kMagic = 0x6e616e6f67707421ULL;  // "nanogpt!"
  uint64_t magic = kMagic;
  at::Tensor t;
  int64_t reportedBytes = 0;
};

// Live handles and the bytes they were reported with, for memory().
extern std::atomic<int64_t> gLiveTensors;
extern std::atomic<int64_t> gLiveBytes;

Napi::Value Wrap(Napi::Env env, at::Tensor t);
void Release(Napi::Env env, TensorHolder* h);

// Argument readers: each throws a Napi::TypeError naming the argument when the JS value is not what is needed.
at::Tensor& Tens(const Napi::CallbackInfo& info, size_t i);
TensorHolder* Holder(const Napi::Value& v, const char* what);
c10::optional<at::Tensor> OptTens(const Napi::CallbackInfo& info, size_t i);
std::vector<at::Tensor> TensList(const Napi::CallbackInfo& info, size_t i);
int64_t Int(const Napi::CallbackInfo& info, size_t i);
double Num(const Napi::CallbackInfo& info, size_t i);
bool Bool(const Napi::CallbackInfo& info, size_t i);
std::string Str(const Napi::CallbackInfo& info, size_t i);
std::vector<int64_t> IntList(const Napi::CallbackInfo& info, size_t i);
at::ScalarType Dtype(const Napi::CallbackInfo& info, size_t i);
c10::optional<at::ScalarType> OptDtype(const Napi::CallbackInfo& info, size_t i);
at::Device Dev(const Napi::CallbackInfo& info, size_t i);
bool Missing(const Napi::CallbackInfo& info, size_t i);
// A number or a tensor handle: ops like add() accept both.
bool IsTensorArg(const Napi::CallbackInfo& info, size_t i);
at::Scalar ScalarArg(const Napi::CallbackInfo& info, size_t i);
Napi::Array WrapList(Napi::Env env, const std::vector<at::Tensor>& ts);

// Runs `fn` and converts any C++ exception into a pending JavaScript Error carrying libtorch's message (without
// its C++ backtrace). Every entry point goes through this, so bad input never aborts the process.
using Fn = Napi::Value (*)(const Napi::CallbackInfo&);
template <Fn F>
Napi::Value Guard(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    return F(info);
  } catch (const Napi::Error& e) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  } catch (...) {
    throw Napi::Error::New(env, "unknown native error");
  }
}

// Registration helpers: each module adds its functions to the exports object.
#define NTS_EXPORT(exports, name, fn) exports.Set(name, Napi::Function::New<nts::Guard<fn>>(exports.Env(), name))

void InitTensor(Napi::Env env, Napi::Object exports);
void InitOps(Napi::Env env, Napi::Object exports);
void InitAutograd(Napi::Env env, Napi::Object exports);
void InitOptim(Napi::Env env, Napi::Object exports);
void InitDist(Napi::Env env, Napi::Object exports);
void InitAttention(Napi::Env env, Napi::Object exports);
void InitGelu(Napi::Env env, Napi::Object exports);
void InitCrossEntropy(Napi::Env env, Napi::Object exports);
void InitLinear(Napi::Env env, Napi::Object exports);

// y = x Wᵀ + b (linear.cc): oneDNN GEMMs and cached bf16 weights on the CPU, at::linear elsewhere.
at::Tensor LinearForward(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b);

}  // namespace nts

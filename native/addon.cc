// Module entry: each translation unit registers its own functions.
#include <c10/util/Logging.h>

#include <cstdio>
#include <cstdlib>

#include "common.h"

// hardExit(code): ends the process at once with `code`. process.exit() first joins libuv's worker threads, and a
// worker inside a libtorch call that never returns (2.x's rendezvous client waiting on a silent peer) would hold the
// process forever after its error was reported.
static Napi::Value HardExit(const Napi::CallbackInfo& info) {
  int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  std::fflush(nullptr);
  std::_Exit(code);
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("hardExit", Napi::Function::New(env, HardExit, "hardExit"));
  // libtorch applies TORCH_CPP_LOG_LEVEL only when asked to (Python does it at import); without this call the
  // level the JS side sets (src/torch/native.ts) is ignored and c10d's retry warnings print C++ backtraces.
  c10::initLogging();
  nts::InitTensor(env, exports);
  nts::InitOps(env, exports);
  nts::InitAutograd(env, exports);
  nts::InitOptim(env, exports);
  nts::InitDist(env, exports);
  nts::InitAttention(env, exports);
  nts::InitGelu(env, exports);
  nts::InitCrossEntropy(env, exports);
  nts::InitLinear(env, exports);
  return exports;
}

NODE_API_MODULE(nanogpt_torch, Init)

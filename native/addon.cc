// Module entry: each translation unit registers its own functions.
#include <c10/util/Logging.h>

#include "common.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
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

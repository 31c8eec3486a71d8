// Module entry: each translation unit registers its own functions.
#include "common.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
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

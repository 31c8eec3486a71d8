// Tensor handles, argument marshalling, creation, conversion and properties.
#include "common.h"

namespace nts {

std::atomic<int64_t> gLiveTensors{0};
std::atomic<int64_t> gLiveBytes{0};

static int64_t BytesOf(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage()) return 0;
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

void Release(Napi::Env env, TensorHolder* h) {
  if (!h->t.defined()) return;
  if (h->reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, -h->reportedBytes);
  gLiveBytes -= h->reportedBytes;
  gLiveTensors -= 1;
  h->reportedBytes = 0;
  h->t = at::Tensor();
}

static void DeleteHolder(Napi::Env env, TensorHolder* h) {
  Release(env, h);
  h->magic = 0;
  delete h;
}

// The GC backstop for a handle that was never disposed. Node runs napi finalizers from a setImmediate callback,
// not from the GC itself, so they wait until the event loop turns.
static void Finalize(napi_env env, void* data, void* /*hint*/) { DeleteHolder(Napi::Env(env), static_cast<TensorHolder*>(data)); }

// A handle is a plain JavaScript object with the holder attached by napi_wrap, not a napi External: dispose() can
// then detach it (napi_remove_wrap), which deletes napi's reference and its finalizer on the spot. An External's
// finalizer cannot be removed, so every disposed handle still left ~250 bytes (reference, holder) queued until the
// event loop turned: a synchronous generation loop grew by ~1.3 MB per 5,000 ops and never gave it back.
Napi::Value Wrap(Napi::Env env, at::Tensor t) {
  if (!t.defined()) return env.Null();
  auto* h = new TensorHolder();
  h->t = std::move(t);
  h->reportedBytes = BytesOf(h->t);
  Napi::Object obj = Napi::Object::New(env);
  napi_status st = napi_wrap(env, obj, h, Finalize, nullptr, nullptr);
  if (st != napi_ok) {
    h->t = at::Tensor();
    delete h;
    NAPI_THROW_IF_FAILED(env, st, Napi::Value());
  }
  gLiveTensors += 1;
  gLiveBytes += h->reportedBytes;
  // Tell V8 about native memory so it schedules GC of forgotten handles; deterministic release is dispose().
  if (h->reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, h->reportedBytes);
  return obj;
}

// The holder of a handle, or nullptr for anything else (including a disposed handle, which has none).
static TensorHolder* HolderOrNull(const Napi::Value& v) {
  if (!v.IsObject()) return nullptr;
  void* data = nullptr;
  if (napi_unwrap(v.Env(), v, &data) != napi_ok || data == nullptr) return nullptr;
  auto* h = static_cast<TensorHolder*>(data);
  return h->magic == TensorHolder::kMagic ? h : nullptr;
}

Napi::Array WrapList(Napi::Env env, const std::vector<at::Tensor>& ts) {
  Napi::Array a = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) a.Set(static_cast<uint32_t>(i), Wrap(env, ts[i]));
  return a;
}

TensorHolder* Holder(const Napi::Value& v, const char* what) {
  TensorHolder* h = HolderOrNull(v);
  if (h == nullptr) throw Napi::TypeError::New(v.Env(), std::string(what) + " is not a tensor (or is a disposed one)");
  return h;
}

static std::string ArgName(size_t i) { return "argument " + std::to_string(i); }

at::Tensor& Tens(const Napi::CallbackInfo& info, size_t i) {
  auto* h = Holder(info[i], ArgName(i).c_str());
  if (!h->t.defined()) throw Napi::Error::New(info.Env(), "tensor used after dispose() (" + ArgName(i) + ")");
  return h->t;
}

bool Missing(const Napi::CallbackInfo& info, size_t i) { return info.Length() <= i || info[i].IsUndefined() || info[i].IsNull(); }

c10::optional<at::Tensor> OptTens(const Napi::CallbackInfo& info, size_t i) {
  if (Missing(info, i)) return c10::nullopt;
  return Tens(info, i);
}

std::vector<at::Tensor> TensList(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), ArgName(i) + " must be an array of tensors");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    auto* h = Holder(a.Get(k), (ArgName(i) + "[" + std::to_string(k) + "]").c_str());
    if (!h->t.defined()) throw Napi::Error::New(info.Env(), "tensor used after dispose() (" + ArgName(i) + "[" + std::to_string(k) + "])");
    out.push_back(h->t);
  }
  return out;
}

double Num(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), ArgName(i) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

int64_t Int(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsBigInt()) {
    bool lossless = false;
    int64_t v = info[i].As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(info.Env(), ArgName(i) + " does not fit in int64");
    return v;
  }
  double d = Num(info, i);
  if (!(d == static_cast<double>(static_cast<int64_t>(d))) || d > 9.2e18 || d < -9.2e18)
    throw Napi::TypeError::New(info.Env(), ArgName(i) + " must be an integer");
  return static_cast<int64_t>(d);
}

bool Bool(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsBoolean()) throw Napi::TypeError::New(info.Env(), ArgName(i) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::string Str(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), ArgName(i) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

std::vector<int64_t> IntList(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), ArgName(i) + " must be an array of integers");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 0.5;
    if (!(d == static_cast<double>(static_cast<int64_t>(d))))
      throw Napi::TypeError::New(info.Env(), ArgName(i) + "[" + std::to_string(k) + "] must be an integer");
    out[k] = static_cast<int64_t>(d);
  }
  return out;
}

static bool KnownDtype(int64_t code) {
  switch (static_cast<at::ScalarType>(code)) {
    case at::kByte: case at::kChar: case at::kShort: case at::kInt: case at::kLong: case at::kHalf:
    case at::kFloat: case at::kDouble: case at::kBool: case at::kBFloat16:
      return code >= 0 && code < static_cast<int64_t>(at::ScalarType::NumOptions);
    default:
      return false;
  }
}

at::ScalarType Dtype(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), ArgName(i) + " must be a dtype code");
  int64_t code = Int(info, i);
  if (!KnownDtype(code)) throw Napi::TypeError::New(info.Env(), "unknown dtype code " + std::to_string(code));
  return static_cast<at::ScalarType>(code);
}

c10::optional<at::ScalarType> OptDtype(const Napi::CallbackInfo& info, size_t i) {
  if (Missing(info, i)) return c10::nullopt;
  return Dtype(info, i);
}

at::Device Dev(const Napi::CallbackInfo& info, size_t i) {
  if (Missing(info, i)) return at::Device(at::kCPU);
  return at::Device(Str(info, i));  // throws c10::Error with the valid spellings on a bad string
}

// Any object is meant as a tensor (Tens then names a disposed or foreign one); everything else is a scalar.
bool IsTensorArg(const Napi::CallbackInfo& info, size_t i) { return info.Length() > i && info[i].IsObject(); }

at::Scalar ScalarArg(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsBoolean()) return at::Scalar(info[i].As<Napi::Boolean>().Value());
  double d = Num(info, i);
  return at::Scalar(d);
}

// ---------------------------------------------------------------------------------------------------------------
// Creation

static at::TensorOptions Opts(const Napi::CallbackInfo& info, size_t dtypeAt) {
  return at::TensorOptions().dtype(Dtype(info, dtypeAt)).device(Dev(info, dtypeAt + 1));
}

// fromBuffer(typedArray, srcKind, shape, dtype, device): copies the bytes of a typed array into a new tensor.
// srcKind is a dtype code, or -16 for uint16 (no such torch dtype in 1.13): tokens from a .bin window become int64
// with one vectorised conversion instead of a JavaScript loop.
static Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray() && !info[0].IsArrayBuffer() && !info[0].IsDataView())
    throw Napi::TypeError::New(info.Env(), "argument 0 must be a typed array or ArrayBuffer");
  uint8_t* data;
  size_t byteLength;
  if (info[0].IsArrayBuffer()) {
    auto ab = info[0].As<Napi::ArrayBuffer>();
    data = static_cast<uint8_t*>(ab.Data());
    byteLength = ab.ByteLength();
  } else {
    auto ta = info[0].As<Napi::TypedArray>();
    data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    byteLength = ta.ByteLength();
  }
  int64_t srcKind = Int(info, 1);
  auto shape = IntList(info, 2);
  at::ScalarType dst = Dtype(info, 3);
  at::Device dev = Dev(info, 4);
  bool uint16 = srcKind == -16;
  at::ScalarType src = uint16 ? at::kShort : (KnownDtype(srcKind) ? static_cast<at::ScalarType>(srcKind) : throw Napi::TypeError::New(info.Env(), "unknown source dtype"));
  int64_t numel = 1;
  for (auto d : shape) {
    if (d < 0) throw Napi::RangeError::New(info.Env(), "shape has a negative dimension");
    numel *= d;
  }
  size_t need = static_cast<size_t>(numel) * c10::elementSize(src);
  if (need != byteLength)
    throw Napi::RangeError::New(info.Env(), "buffer holds " + std::to_string(byteLength) + " bytes but shape and dtype need " + std::to_string(need));
  at::Tensor view = at::from_blob(data, shape, at::TensorOptions().dtype(src));
  at::Tensor out;
  if (uint16) {
    out = view.to(at::kInt).bitwise_and_(0xFFFF).to(dst);
  } else if (src == dst) {
    out = view.clone();
  } else {
    out = view.to(dst);
  }
  if (dev.type() != at::kCPU) out = out.to(dev);
  return Wrap(info.Env(), out);
}

static Napi::Value Zeros(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::zeros(IntList(info, 0), Opts(info, 1))); }
static Napi::Value Ones(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::ones(IntList(info, 0), Opts(info, 1))); }
static Napi::Value Empty(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::empty(IntList(info, 0), Opts(info, 1))); }
static Napi::Value Full(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::full(IntList(info, 0), ScalarArg(info, 1), Opts(info, 2)));
}
static Napi::Value Arange(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::arange(ScalarArg(info, 0), ScalarArg(info, 1), ScalarArg(info, 2), Opts(info, 3)));
}
static Napi::Value Rand(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::rand(IntList(info, 0), Opts(info, 1))); }
static Napi::Value Randn(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::randn(IntList(info, 0), Opts(info, 1))); }
static Napi::Value Randint(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::randint(Int(info, 0), Int(info, 1), IntList(info, 2), Opts(info, 3)));
}
static Napi::Value Normal_(const Napi::CallbackInfo& info) { Tens(info, 0).normal_(Num(info, 1), Num(info, 2)); return info[0]; }
static Napi::Value Uniform_(const Napi::CallbackInfo& info) { Tens(info, 0).uniform_(Num(info, 1), Num(info, 2)); return info[0]; }
static Napi::Value Zero_(const Napi::CallbackInfo& info) { Tens(info, 0).zero_(); return info[0]; }
static Napi::Value Fill_(const Napi::CallbackInfo& info) { Tens(info, 0).fill_(ScalarArg(info, 1)); return info[0]; }

// ---------------------------------------------------------------------------------------------------------------
// Properties and conversion

static Napi::Value Shape(const Napi::CallbackInfo& info) {
  auto sizes = Tens(info, 0).sizes();
  Napi::Array a = Napi::Array::New(info.Env(), sizes.size());
  for (size_t k = 0; k < sizes.size(); k++) a.Set(static_cast<uint32_t>(k), Napi::Number::New(info.Env(), static_cast<double>(sizes[k])));
  return a;
}
static Napi::Value DtypeOf(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<int>(Tens(info, 0).scalar_type()));
}
static Napi::Value DeviceOf(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), Tens(info, 0).device().str()); }
static Napi::Value IsDisposed(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "argument 0 is not a tensor");
  return Napi::Boolean::New(info.Env(), HolderOrNull(info[0]) == nullptr);
}
// Frees the holder now and detaches it from the handle, so the GC has nothing left to finalize. Disposing a
// handle twice is a no-op, as Tensor.dispose() is.
static Napi::Value Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "argument 0 is not a tensor");
  TensorHolder* h = HolderOrNull(info[0]);
  if (h == nullptr) return env.Undefined();
  void* removed = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_remove_wrap(env, info[0], &removed), Napi::Value());
  DeleteHolder(env, h);
  return env.Undefined();
}
static Napi::Value To(const Napi::CallbackInfo& info) {
  at::Tensor& t = Tens(info, 0);
  auto dtype = OptDtype(info, 1);
  at::Device dev = Missing(info, 2) ? t.device() : Dev(info, 2);
  return Wrap(info.Env(), t.to(dev, dtype.value_or(t.scalar_type())));
}
static Napi::Value Contiguous(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Tens(info, 0).contiguous()); }
static Napi::Value Clone(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Tens(info, 0).clone()); }
static Napi::Value Detach(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Tens(info, 0).detach()); }
static Napi::Value Alias(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Tens(info, 0)); }

// toBuffer(t) → ArrayBuffer with the tensor's elements in row-major order (bf16/f16 as raw 16-bit patterns).
static Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
  at::Tensor t = Tens(info, 0).detach().to(at::kCPU).contiguous();
  size_t n = static_cast<size_t>(t.numel()) * t.element_size();
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(info.Env(), n);
  if (n) std::memcpy(ab.Data(), t.data_ptr(), n);
  return ab;
}
static Napi::Value Item(const Napi::CallbackInfo& info) {
  at::Tensor& t = Tens(info, 0);
  at::Scalar s = t.item();
  if (t.scalar_type() == at::kBool) return Napi::Boolean::New(info.Env(), s.toBool());
  return Napi::Number::New(info.Env(), s.toDouble());
}
static Napi::Value Numel(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(Tens(info, 0).numel())); }
static Napi::Value IsContiguous(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), Tens(info, 0).is_contiguous()); }
static Napi::Value DataPtr(const Napi::CallbackInfo& info) {
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(Tens(info, 0).data_ptr())));
}
static Napi::Value Describe(const Napi::CallbackInfo& info) {
  std::ostringstream os;
  os << Tens(info, 0);
  return Napi::String::New(info.Env(), os.str());
}
static Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("tensors", Napi::Number::New(info.Env(), static_cast<double>(gLiveTensors.load())));
  o.Set("bytes", Napi::Number::New(info.Env(), static_cast<double>(gLiveBytes.load())));
  return o;
}

void InitTensor(Napi::Env env, Napi::Object exports) {
  NTS_EXPORT(exports, "fromBuffer", FromBuffer);
  NTS_EXPORT(exports, "zeros", Zeros);
  NTS_EXPORT(exports, "ones", Ones);
  NTS_EXPORT(exports, "empty", Empty);
  NTS_EXPORT(exports, "full", Full);
  NTS_EXPORT(exports, "arange", Arange);
  NTS_EXPORT(exports, "rand", Rand);
  NTS_EXPORT(exports, "randn", Randn);
  NTS_EXPORT(exports, "randint", Randint);
  NTS_EXPORT(exports, "normal_", Normal_);
  NTS_EXPORT(exports, "uniform_", Uniform_);
  NTS_EXPORT(exports, "zero_", Zero_);
  NTS_EXPORT(exports, "fill_", Fill_);
  NTS_EXPORT(exports, "shape", Shape);
  NTS_EXPORT(exports, "dtype", DtypeOf);
  NTS_EXPORT(exports, "device", DeviceOf);
  NTS_EXPORT(exports, "isDisposed", IsDisposed);
  NTS_EXPORT(exports, "dispose", Dispose);
  NTS_EXPORT(exports, "to", To);
  NTS_EXPORT(exports, "contiguous", Contiguous);
  NTS_EXPORT(exports, "clone", Clone);
  NTS_EXPORT(exports, "detach", Detach);
  NTS_EXPORT(exports, "alias", Alias);
  NTS_EXPORT(exports, "toBuffer", ToBuffer);
  NTS_EXPORT(exports, "item", Item);
  NTS_EXPORT(exports, "numel", Numel);
  NTS_EXPORT(exports, "isContiguous", IsContiguous);
  NTS_EXPORT(exports, "dataPtr", DataPtr);
  NTS_EXPORT(exports, "describe", Describe);
  NTS_EXPORT(exports, "memory", Memory);
}

}  // namespace nts

// c10d collectives: a TCPStore for rendezvous and a Gloo process group, driven from JavaScript. Every call that can
// block (rendezvous, collectives, teardown) runs on a libuv worker thread and resolves a Promise, so waiting for a
// slow peer never freezes the event loop. Ordering of collectives across ranks is the TypeScript layer's job.
#include "common.h"
#include "compat.h"

// The c10d headers only declare the Gloo backend when the build enabled it; our libtorch always has it.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace nts {

namespace {

struct Group {
  static constexpr uint64_t kMagic = 0x6e74732d676c6f6fULL;  // "nts-gloo"
  uint64_t magic = kMagic;
  int rank = 0;
  int size = 1;
  std::chrono::milliseconds timeout{60000};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

Group* GroupArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsExternal()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " is not a process group");
  auto* g = info[i].As<Napi::External<Group>>().Data();
  if (g == nullptr || g->magic != Group::kMagic) throw Napi::TypeError::New(info.Env(), "argument is not a process group");
  return g;
}

Group* LiveGroup(const Napi::CallbackInfo& info, size_t i) {
  Group* g = GroupArg(info, i);
  if (!g->store) throw Napi::Error::New(info.Env(), "process group used after destroy()");
  if (!g->pg) throw Napi::Error::New(info.Env(), "process group used after a failed collective aborted it");
  return g;
}

// The store outlives an aborted Gloo group: the surviving ranks use it to find out who is gone.
Group* StoreGroup(const Napi::CallbackInfo& info, size_t i) {
  Group* g = GroupArg(info, i);
  if (!g->store) throw Napi::Error::New(info.Env(), "process group used after destroy()");
  return g;
}

// Runs `work` on a worker thread; `done` turns its result into a JS value on the main thread. Exceptions from
// `work` (c10::Error from Gloo or the store included) reject the promise with their message.
class Job : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;
  Job(Napi::Env env, Work work, Done done)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)), done_(std::move(done)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const c10::Error& e) {
      SetError(e.what_without_backtrace());
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown native error in a collective");
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(done_ ? done_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
};

Napi::Value Start(Napi::Env env, Job::Work work, Job::Done done = nullptr) {
  auto* job = new Job(env, std::move(work), std::move(done));
  Napi::Promise p = job->Promise();
  job->Queue();
  return p;
}

#if NTS_TORCH_AT_LEAST(2, 4)
// A TCP socket listening on addr:port, for TCPStoreOptions::masterListenFd: the store's own server can only
// listen on the wildcard address, and a bound fd is the one way to give it a specific one.
int ListenOn(const std::string& addr, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(addr.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) throw std::runtime_error("cannot listen on " + addr + ": " + gai_strerror(rc));
  int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
      listen(fd, 2048) != 0) {
    int err = errno;
    if (fd >= 0) close(fd);
    freeaddrinfo(res);
    throw std::runtime_error("cannot listen on " + addr + ":" + std::to_string(port) + ": " + std::strerror(err) + " (errno: " + std::to_string(err) + ")");
  }
  freeaddrinfo(res);
  return fd;
}
#endif

void FinalizeGroup(Napi::Env, Group* g) {
  // Normally destroy() has already released everything. If the handle is simply forgotten, drop the references
  // here; Gloo's destructor only joins its (idle) worker threads.
  g->magic = 0;
  delete g;
}

// storeConnect({rank, worldSize, masterAddr, masterPort, timeoutMs, bindAddr?}) → Promise<group>: rank 0 starts the
// TCPStore server (on bindAddr where libtorch can, 2.4 and later; 1.13 listens on every address), the others
// connect to it. Nothing waits for the other ranks here (waitWorkers off): a stray client must
// not count as a rank, so the TypeScript layer checks the job's identity on the store before any Gloo rendezvous.
Napi::Value StoreConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "storeConnect expects an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  auto num = [&](const char* k) -> double {
    Napi::Value v = o.Get(k);
    if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("storeConnect: ") + k + " must be a number");
    return v.As<Napi::Number>().DoubleValue();
  };
  int rank = static_cast<int>(num("rank"));
  int size = static_cast<int>(num("worldSize"));
  int port = static_cast<int>(num("masterPort"));
  auto timeout = std::chrono::milliseconds(static_cast<int64_t>(num("timeoutMs")));
  if (!o.Get("masterAddr").IsString()) throw Napi::TypeError::New(env, "storeConnect: masterAddr must be a string");
  std::string addr = o.Get("masterAddr").As<Napi::String>().Utf8Value();
  std::string bindAddr = o.Get("bindAddr").IsString() ? o.Get("bindAddr").As<Napi::String>().Utf8Value() : "";
  if (size < 1 || rank < 0 || rank >= size) throw Napi::RangeError::New(env, "storeConnect: need 0 <= rank < worldSize");
  if (port < 1 || port > 65535) throw Napi::RangeError::New(env, "storeConnect: masterPort must be in 1..65535");

  auto* g = new Group();
  g->rank = rank;
  g->size = size;
  g->timeout = timeout;
  Napi::External<Group> handle = Napi::External<Group>::New(env, g, FinalizeGroup);
  auto ref = std::make_shared<Napi::Reference<Napi::External<Group>>>(Napi::Persistent(handle));
  return Start(
      env,
      [g, rank, size, port, timeout, addr, bindAddr]() {
        c10d::TCPStoreOptions so;
        so.port = static_cast<std::uint16_t>(port);
        so.isServer = rank == 0;
        so.numWorkers = static_cast<std::size_t>(size);
        so.waitWorkers = false;
        so.timeout = timeout;
#if NTS_TORCH_AT_LEAST(2, 4)
        // 2.4 made libuv the default TCPStore backend, and builds without libuv (Debian's 2.6) then throw at
        // construction: the classic backend works everywhere.
        so.useLibUV = false;
        if (rank == 0 && !bindAddr.empty()) so.masterListenFd = ListenOn(bindAddr, port);
#else
        (void)bindAddr;
#endif
        g->store = c10::make_intrusive<c10d::TCPStore>(addr, so);
      },
      [ref](Napi::Env) -> Napi::Value { return ref->Value(); });
}

// pgConnect(group, prefix, hostname) → Promise<void>: the Gloo rendezvous, with every key under `prefix` (a
// c10d::PrefixStore), so only ranks that know the run's prefix meet. Gloo binds to and advertises `hostname`.
Napi::Value PgConnect(const Napi::CallbackInfo& info) {
  Group* g = StoreGroup(info, 0);
  std::string prefix = Str(info, 1);
  std::string hostname = Str(info, 2);
  if (g->pg) throw Napi::Error::New(info.Env(), "pgConnect: the process group is already connected");
  auto store = g->store;
  int rank = g->rank, size = g->size;
  auto timeout = g->timeout;
  auto out = std::make_shared<c10::intrusive_ptr<c10d::ProcessGroupGloo>>();
  // Holding the handle keeps `g` alive (its finalizer deletes it) until the connection is done.
  auto ref = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(info[0]));
  return Start(
      info.Env(),
      [store, prefix, hostname, rank, size, timeout, out]() {
        auto prefixed = c10::make_intrusive<c10d::PrefixStore>(prefix, store);
        auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
        opts->devices.push_back(hostname.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                                 : c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
        opts->threads = 2;
        *out = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, size, opts);
      },
      [g, out, ref](Napi::Env env) -> Napi::Value {
        // The group may have been destroyed while Gloo was connecting; then the new group is simply dropped.
        if (g->magic == Group::kMagic && g->store) g->pg = *out;
        return env.Undefined();
      });
}

std::chrono::milliseconds TimeoutOf(const Group* g) { return g->timeout; }

// pgAllreduce(group, tensor, op: 'sum'|'max'|'min') → Promise<void>; in place.
Napi::Value PgAllreduce(const Napi::CallbackInfo& info) {
  Group* g = LiveGroup(info, 0);
  at::Tensor t = Tens(info, 1);
  std::string op = Missing(info, 2) ? "sum" : Str(info, 2);
  c10d::AllreduceOptions ao;
  if (op == "sum") ao.reduceOp = c10d::ReduceOp::SUM;
  else if (op == "max") ao.reduceOp = c10d::ReduceOp::MAX;
  else if (op == "min") ao.reduceOp = c10d::ReduceOp::MIN;
  else throw Napi::Error::New(info.Env(), "unknown reduce op '" + op + "' (use sum, max or min)");
  ao.timeout = TimeoutOf(g);
  auto pg = g->pg;
  return Start(info.Env(), [pg, t, ao]() {
    std::vector<at::Tensor> ts{t};
    pg->allreduce(ts, ao)->wait();
  });
}

Napi::Value PgBroadcast(const Napi::CallbackInfo& info) {
  Group* g = LiveGroup(info, 0);
  at::Tensor t = Tens(info, 1);
  int64_t root = Int(info, 2);
  if (root < 0 || root >= g->size) throw Napi::RangeError::New(info.Env(), "broadcast root out of range");
  c10d::BroadcastOptions bo;
  bo.rootRank = root;
  bo.timeout = TimeoutOf(g);
  auto pg = g->pg;
  return Start(info.Env(), [pg, t, bo]() {
    std::vector<at::Tensor> ts{t};
    pg->broadcast(ts, bo)->wait();
  });
}

Napi::Value PgBarrier(const Napi::CallbackInfo& info) {
  Group* g = LiveGroup(info, 0);
  c10d::BarrierOptions bo;
  bo.timeout = TimeoutOf(g);
  auto pg = g->pg;
  return Start(info.Env(), [pg, bo]() { pg->barrier(bo)->wait(); });
}

// pgAllgather(group, tensor) → Promise<tensor[]> (one per rank).
Napi::Value PgAllgather(const Napi::CallbackInfo& info) {
  Group* g = LiveGroup(info, 0);
  at::Tensor t = Tens(info, 1);
  auto outs = std::make_shared<std::vector<std::vector<at::Tensor>>>(1);
  for (int r = 0; r < g->size; r++) (*outs)[0].push_back(at::empty_like(t));
  c10d::AllgatherOptions ao;
  ao.timeout = TimeoutOf(g);
  auto pg = g->pg;
  return Start(
      info.Env(),
      [pg, t, outs, ao]() {
        std::vector<at::Tensor> in{t};
        pg->allgather(*outs, in, ao)->wait();
      },
      [outs](Napi::Env env) -> Napi::Value { return WrapList(env, (*outs)[0]); });
}

Napi::Value PgDestroy(const Napi::CallbackInfo& info) {
  Group* g = GroupArg(info, 0);
  auto pg = std::move(g->pg);
  auto store = std::move(g->store);
  g->pg.reset();
  g->store.reset();
  return Start(info.Env(), [pg = std::move(pg), store = std::move(store)]() mutable {
    pg.reset();
    store.reset();
  });
}

// pgAbort(group) → Promise<void>: drops the Gloo group (its threads and connections) and keeps the store. After a
// failed collective this closes our connections at once, so peers blocked on us fail now instead of at their
// timeout, and every survivor reaches the store-based diagnosis together.
Napi::Value PgAbort(const Napi::CallbackInfo& info) {
  Group* g = GroupArg(info, 0);
  auto pg = std::move(g->pg);
  g->pg.reset();
  return Start(info.Env(), [pg = std::move(pg)]() mutable { pg.reset(); });
}

std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

Napi::Value StoreSet(const Napi::CallbackInfo& info) {
  Group* g = StoreGroup(info, 0);
  auto store = g->store;
  std::string k = Str(info, 1), v = Str(info, 2);
  return Start(info.Env(), [store, k, v]() { store->set(k, Bytes(v)); });
}

// storeGet waits up to the store's timeout for the key; rejects if it never appears.
Napi::Value StoreGet(const Napi::CallbackInfo& info) {
  Group* g = StoreGroup(info, 0);
  auto store = g->store;
  std::string k = Str(info, 1);
  auto out = std::make_shared<std::string>();
  return Start(
      info.Env(), [store, k, out]() {
        auto v = store->get(k);
        out->assign(v.begin(), v.end());
      },
      [out](Napi::Env env) -> Napi::Value { return Napi::String::New(env, *out); });
}

Napi::Value StoreCheck(const Napi::CallbackInfo& info) {
  Group* g = StoreGroup(info, 0);
  auto store = g->store;
  std::vector<std::string> keys;
  if (!info[1].IsArray()) throw Napi::TypeError::New(info.Env(), "storeCheck expects an array of keys");
  Napi::Array a = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) keys.push_back(a.Get(i).ToString().Utf8Value());
  auto out = std::make_shared<bool>(false);
  return Start(
      info.Env(), [store, keys, out]() { *out = store->check(keys); },
      [out](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, *out); });
}

Napi::Value StoreAdd(const Napi::CallbackInfo& info) {
  Group* g = StoreGroup(info, 0);
  auto store = g->store;
  std::string k = Str(info, 1);
  int64_t by = Int(info, 2);
  auto out = std::make_shared<int64_t>(0);
  return Start(
      info.Env(), [store, k, by, out]() { *out = store->add(k, by); },
      [out](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(*out)); });
}

// confineListener(port, device) → how many of this process's listening TCP sockets on `port` are now bound to the
// network device `device` (SO_BINDTODEVICE). libtorch before 2.4 gives its TCPStore server neither a bind address
// nor a way to hand it a socket, so it listens on every address; for a store the ranks dial on loopback, rank 0
// confines that socket once it exists: a listening socket bound to a device only matches connections that arrive
// through it, so other machines are refused. Found by scanning /proc/self/fd, since libtorch does not expose the fd.
// Throws with the errno text when the kernel refuses (Linux before 5.7 needs CAP_NET_RAW for it).
Napi::Value ConfineListener(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t port = Int(info, 0);
  std::string device = Str(info, 1);
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) throw Napi::Error::New(env, std::string("cannot list /proc/self/fd: ") + std::strerror(errno));
  int confined = 0;
  int failure = 0;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening == 0) continue;
    sockaddr_storage local{};
    socklen_t localLen = sizeof local;
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &localLen) != 0) continue;
    int localPort = local.ss_family == AF_INET    ? ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port)
                    : local.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port)
                                                  : -1;
    if (localPort != port) continue;
    if (setsockopt(static_cast<int>(fd), SOL_SOCKET, SO_BINDTODEVICE, device.c_str(), static_cast<socklen_t>(device.size())) != 0) {
      failure = errno;
      break;
    }
    confined++;
  }
  closedir(dir);
  if (failure != 0) throw Napi::Error::New(env, "SO_BINDTODEVICE " + device + ": " + std::strerror(failure));
  return Napi::Number::New(env, confined);
}

}  // namespace

void InitDist(Napi::Env env, Napi::Object exports) {
  // true where storeConnect binds rank 0's listening socket itself (bindAddr); else see confineListener.
  exports.Set("storeBindsListener", Napi::Boolean::New(env, NTS_TORCH_AT_LEAST(2, 4)));
  NTS_EXPORT(exports, "confineListener", ConfineListener);
  NTS_EXPORT(exports, "storeConnect", StoreConnect);
  NTS_EXPORT(exports, "pgConnect", PgConnect);
  NTS_EXPORT(exports, "pgAllreduce", PgAllreduce);
  NTS_EXPORT(exports, "pgBroadcast", PgBroadcast);
  NTS_EXPORT(exports, "pgBarrier", PgBarrier);
  NTS_EXPORT(exports, "pgAbort", PgAbort);
  NTS_EXPORT(exports, "pgAllgather", PgAllgather);
  NTS_EXPORT(exports, "pgDestroy", PgDestroy);
  NTS_EXPORT(exports, "storeSet", StoreSet);
  NTS_EXPORT(exports, "storeGet", StoreGet);
  NTS_EXPORT(exports, "storeCheck", StoreCheck);
  NTS_EXPORT(exports, "storeAdd", StoreAdd);
}

}  // namespace nts

// The few libtorch calls that differ between the versions the addon builds against (1.13 and 2.x), each behind one
// inline function with the version that changed it.
#pragma once
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#define NTS_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace nts {

// 2.4 made autocast state device-generic; the CPU-specific calls are deprecated there and warn at run time in 2.6.
inline bool CpuAutocastEnabled() {
#if NTS_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(at::kCPU);
#else
  return at::autocast::is_cpu_enabled();
#endif
}
inline void SetCpuAutocastEnabled(bool on) {
#if NTS_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCPU, on);
#else
  at::autocast::set_cpu_enabled(on);
#endif
}
inline at::ScalarType CpuAutocastDtype() {
#if NTS_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(at::kCPU);
#else
  return at::autocast::get_autocast_cpu_dtype();
#endif
}
inline void SetCpuAutocastDtype(at::ScalarType t) {
#if NTS_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_dtype(at::kCPU, t);
#else
  at::autocast::set_autocast_cpu_dtype(t);
#endif
}

}  // namespace nts

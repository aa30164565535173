// Helpers shared by the CUDA kernels: error checks, the device guard, element conversion.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "mmsr/ops.h"

namespace mmsr::cuda {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("mmsr CUDA error in ") + what + ": " + cudaGetErrorString(err));
  }
}

// Launches go to the tensor's device even when the caller's current device differs; the previous
// device is restored on the way out.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

inline cudaStream_t stream_of(const CudaLaunch& launch) { return reinterpret_cast<cudaStream_t>(launch.stream); }

__device__ __forceinline__ float to_unit(uint8_t v) { return static_cast<float>(v) / 255.0f; }
__device__ __forceinline__ float to_unit(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_unit(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_unit(float v) { return v; }

template <typename T>
__device__ __forceinline__ T from_unit(float v);
template <>
__device__ __forceinline__ uint8_t from_unit<uint8_t>(float v) {
  const float r = rintf(v * 255.0f);  // half-to-even, like torch.round
  return r >= 0.0f ? (r <= 255.0f ? static_cast<uint8_t>(r) : uint8_t{255}) : uint8_t{0};
}
template <>
__device__ __forceinline__ __half from_unit<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_unit<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ float from_unit<float>(float v) { return v; }

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Calls f with a null pointer of the element type behind `dtype` (for template dispatch).
template <typename F>
void dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::UInt8: f(static_cast<uint8_t*>(nullptr)); return;
    case DType::Float16: f(static_cast<__half*>(nullptr)); return;
    case DType::BFloat16: f(static_cast<__nv_bfloat16*>(nullptr)); return;
    case DType::Float32: f(static_cast<float*>(nullptr)); return;
  }
  throw std::invalid_argument("mmsr: unknown dtype");
}

// Grid-stride helpers keep every grid dimension inside CUDA's limits.
constexpr int64_t kMaxGridY = 65535;

}  // namespace mmsr::cuda

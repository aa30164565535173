// Helpers shared by the CPU kernels: element conversion and per-CPU vector code paths.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "mmsr/common.h"

// On x86-64 the hot loops are compiled three times (AVX-512, AVX2 + FMA, baseline SSE2) and picked at load time, so
// one wheel is fast on current CPUs and still runs on old ones.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define MMSR_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MMSR_VECTOR_CLONES
#endif

// For helpers that must be inlined into a cloned caller, so they are compiled for its target.
#if defined(__GNUC__)
#define MMSR_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define MMSR_ALWAYS_INLINE inline
#endif

namespace mmsr::cpu {

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1fu) {  // inf / nan
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {  // normal
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {  // zero
    bits = sign;
  } else {  // subnormal: renormalise
    exponent = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint16_t float_to_half(float f) {  // round to nearest even, like torch's .half()
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0u);
  if (absx >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: overflow to inf
  if (absx < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    if (absx < 0x33000000u) return sign;
    const uint32_t exponent = absx >> 23;
    const uint32_t mantissa = (absx & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exponent;  // 14..24
    uint32_t result = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (result & 1u))) ++result;
    return sign | static_cast<uint16_t>(result);
  }
  uint32_t result = ((absx >> 13) - (112u << 10));
  const uint32_t rest = absx & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (result & 1u))) ++result;
  return sign | static_cast<uint16_t>(result);
}

inline float bf16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint16_t float_to_bf16(float f) {  // round to nearest even; NaN stays NaN
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

// uint8 -> v / 255, vectorised per CPU (csrc/cpu/convert.cpp).
void uint8_to_unit(const uint8_t* src, int64_t n, float* dst);
// uint8 -> v as a float (grey levels; TVAT scores uint8 images in levels, see common.h).
void uint8_to_levels(const uint8_t* src, int64_t n, float* dst);

// Converts n elements of type `dtype` starting at element `offset` of `src` to floats in [0, 1].
inline void load_unit_floats(const void* src, DType dtype, int64_t offset, int64_t n, float* dst) {
  switch (dtype) {
    case DType::UInt8:
      uint8_to_unit(static_cast<const uint8_t*>(src) + offset, n, dst);
      break;
    case DType::Float16: {
      const uint16_t* s = static_cast<const uint16_t*>(src) + offset;
      for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(s[i]);
      break;
    }
    case DType::BFloat16: {
      const uint16_t* s = static_cast<const uint16_t*>(src) + offset;
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(s[i]);
      break;
    }
    case DType::Float32:
      std::memcpy(dst, static_cast<const float*>(src) + offset, n * sizeof(float));
      break;
  }
}

// Stores n floats in [0, 1] as `dtype` (uint8: v * 255 rounded half-to-even and clamped).
inline void store_unit_floats(const float* src, DType dtype, int64_t n, void* dst, int64_t offset) {
  switch (dtype) {
    case DType::UInt8: {
      uint8_t* d = static_cast<uint8_t*>(dst) + offset;
      for (int64_t i = 0; i < n; ++i) {
        const float v = std::nearbyint(src[i] * 255.0f);
        // NaN fails both comparisons and lands on 0 instead of being undefined behaviour.
        d[i] = v >= 0.0f ? (v <= 255.0f ? static_cast<uint8_t>(v) : uint8_t{255}) : uint8_t{0};
      }
      break;
    }
    case DType::Float16: {
      uint16_t* d = static_cast<uint16_t*>(dst) + offset;
      for (int64_t i = 0; i < n; ++i) d[i] = float_to_half(src[i]);
      break;
    }
    case DType::BFloat16: {
      uint16_t* d = static_cast<uint16_t*>(dst) + offset;
      for (int64_t i = 0; i < n; ++i) d[i] = float_to_bf16(src[i]);
      break;
    }
    case DType::Float32:
      std::memcpy(static_cast<float*>(dst) + offset, src, n * sizeof(float));
      break;
  }
}

}  // namespace mmsr::cpu

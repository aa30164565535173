// Element conversions that sit on hot paths and therefore get per-CPU vector clones.
#include "mmsr/cpu_util.h"

namespace mmsr::cpu {

MMSR_VECTOR_CLONES
void uint8_to_unit(const uint8_t* __restrict src, int64_t n, float* __restrict dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]) / 255.0f;
}

MMSR_VECTOR_CLONES
void uint8_to_levels(const uint8_t* __restrict src, int64_t n, float* __restrict dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
}

}  // namespace mmsr::cpu

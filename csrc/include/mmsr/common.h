// Shared vocabulary of the mmsr kernels: element types, blends, and the tile-grid arithmetic.
// Nothing here knows about pybind11 or torch; the Python layer owns allocation and validation.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#define MMSR_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define MMSR_HOST_DEVICE inline
#endif

namespace mmsr {

// Element type of an image or tile buffer. Values are read as floats in [0, 1] (uint8 as v / 255).
enum class DType : int32_t { UInt8 = 0, Float16 = 1, BFloat16 = 2, Float32 = 3 };

// uint8 images are scored in grey levels (0..255) rather than in [0, 1]: every difference, square and
// sum below 2^24 (any VSP of up to 32 channels) is then an exact integer in float32, so a uint8 VSP is
// exactly levels / 255^2 whatever the summation order, FMA contraction or device, and the threshold
// test is exact. In [0, 1] units the same pixel's VSP is rounded differently by each order, and the
// default threshold (96 levels^2) is a value uint8 VSPs take: CPU and GPU, native and reference then
// disagreed on the pixels sitting exactly on it.
inline constexpr double kUint8LevelsSquared = 255.0 * 255.0;

// The threshold as the TVAT kernels compare it, in the units they compute in: [0, 1] units for float
// types; levels^2 for uint8, rounded up, since for an integer VSP v, v >= t <=> v >= ceil(t). (Above
// 2^24, i.e. more than 32 channels, the float conversion rounds; the test is then as exact as the
// float VSP sums themselves.) Past float's range every VSP is below it: +inf (a plain cast of such a
// double is undefined behaviour).
inline float kernel_threshold(DType dtype, double threshold) {
  const double t = dtype == DType::UInt8 ? std::ceil(threshold * kUint8LevelsSquared) : threshold;
  return t < static_cast<double>(std::numeric_limits<float>::max()) ? static_cast<float>(t)
                                                                     : std::numeric_limits<float>::infinity();
}

// How overlapping tiles are weighted when stitched.
enum class Blend : int32_t {
  Mean = 0,    // every covering tile weighs 1 (the paper's plain average)
  Linear = 1,  // weight ramps linearly from the tile edge to 1 over the overlap width
  Cosine = 2,  // raised-cosine ramp over the overlap width: smooth first derivative at both ends
};

inline int dtype_size(DType dtype) {
  switch (dtype) {
    case DType::UInt8: return 1;
    case DType::Float16:
    case DType::BFloat16: return 2;
    case DType::Float32: return 4;
  }
  throw std::invalid_argument("mmsr: unknown dtype code " + std::to_string(static_cast<int>(dtype)));
}

// Throws std::invalid_argument (Python ValueError) when a kernel precondition does not hold.
// The Python layer validates first with friendlier messages; these guard direct calls into _core.
inline void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("mmsr._core: ") + what);
}

// Tile grid along one axis of length `length`: tiles of `tile` (already clamped to length) at
// origins 0, stride, 2*stride, ... while they fit, then one tile flush with the far edge.
struct AxisGrid {
  int64_t length;  // image extent along the axis, in LR pixels
  int64_t tile;    // tile extent, min(requested tile, length)
  int64_t stride;  // tile - overlap (>= 1)
  int64_t count;   // number of tiles along the axis

  MMSR_HOST_DEVICE int64_t origin(int64_t k) const {
    const int64_t o = k * stride;
    return o < length - tile ? o : length - tile;
  }
};

// Mirrors mmsr.ops._axis_grid in Python: both must give the same count for the same inputs.
MMSR_HOST_DEVICE AxisGrid make_axis_grid(int64_t length, int64_t tile_size, int64_t overlap) {
  AxisGrid g;
  g.length = length;
  g.tile = tile_size < length ? tile_size : length;
  const int64_t ov = overlap < g.tile ? overlap : g.tile - 1;  // clamped tile keeps stride >= 1
  g.stride = g.tile - ov;
  g.count = (length <= g.tile) ? 1 : (length - g.tile + g.stride - 1) / g.stride + 1;
  return g;
}

// Weight of position u (0 <= u < length) along one tile axis, all in output pixels. Feathered
// blends ramp from the tile edge up to 1 across the overlap; mirrors mmsr.reference.blend_ramp.
MMSR_HOST_DEVICE float blend_weight(Blend blend, int64_t u, int64_t length, int64_t overlap) {
  if (blend == Blend::Mean || overlap <= 0) return 1.0f;
  const int64_t edge = u < length - 1 - u ? u : length - 1 - u;
  float ramp = (static_cast<float>(edge) + 0.5f) / static_cast<float>(overlap);
  ramp = ramp < 1.0f ? ramp : 1.0f;
  if (blend == Blend::Linear) return ramp;
  const float s = sinf(ramp * 1.57079632679489662f);
  return s * s;
}

// The tiles along one axis that cover output coordinate `pos` (in pixels scaled by `scale`):
// regular tiles first..last (possibly empty), then the flush last tile when it covers pos too.
struct Covering {
  int64_t first, last;  // regular tiles, inclusive; empty when first > last
  bool flush;           // whether the final (flush) tile covers pos
};

MMSR_HOST_DEVICE Covering covering_tiles(const AxisGrid& g, int64_t scale, int64_t pos) {
  const int64_t T = g.tile * scale, S = g.stride * scale;
  Covering c;
  c.first = pos < T ? 0 : (pos - T) / S + 1;
  const int64_t by_stride = pos / S;
  c.last = by_stride < g.count - 2 ? by_stride : g.count - 2;  // all but the last tile are regular
  c.flush = g.origin(g.count - 1) * scale <= pos;
  return c;
}

}  // namespace mmsr

// Tiling on the CPU: copies each tile row out of the image. Only bytes move, so one kernel serves
// every dtype.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "mmsr/ops.h"

namespace mmsr::cpu {

void tile(const TileParams& p) {
  require(p.B >= 0 && p.C >= 1 && p.H >= 1 && p.W >= 1, "tile: expects B >= 0 and C, H, W >= 1");
  require(p.tile_size >= 1 && p.overlap >= 0 && p.overlap < p.tile_size,
          "tile: expects tile_size >= 1 and 0 <= overlap < tile_size");
  require(p.elem_size == 1 || p.elem_size == 2 || p.elem_size == 4 || p.elem_size == 8,
          "tile: element size must be 1, 2, 4 or 8 bytes");
  const AxisGrid gy = make_axis_grid(p.H, p.tile_size, p.overlap);
  const AxisGrid gx = make_axis_grid(p.W, p.tile_size, p.overlap);
  const int64_t per_image = gy.count * gx.count;
  const int64_t planes = p.B * per_image * p.C;  // one (tile, channel) plane per work item
  const int64_t row_bytes = gx.tile * p.elem_size;
  const auto* src = static_cast<const uint8_t*>(p.x);
  auto* dst = static_cast<uint8_t*>(p.tiles);

#if defined(MMSR_WITH_OPENMP)
#pragma omp parallel for schedule(static) num_threads(std::max(1, p.num_threads))
#endif
  for (int64_t plane = 0; plane < planes; ++plane) {
    const int64_t c = plane % p.C;
    const int64_t t = plane / p.C;  // global tile index: image-major, then row-major
    const int64_t image = t / per_image, k = t % per_image;
    const int64_t y0 = gy.origin(k / gx.count), x0 = gx.origin(k % gx.count);
    const uint8_t* in = src + (((image * p.C + c) * p.H + y0) * p.W + x0) * p.elem_size;
    uint8_t* out = dst + plane * gy.tile * row_bytes;
    for (int64_t row = 0; row < gy.tile; ++row) {
      std::memcpy(out + row * row_bytes, in + row * p.W * p.elem_size, row_bytes);
    }
  }
}

}  // namespace mmsr::cpu

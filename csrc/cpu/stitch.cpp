// Stitching on the CPU: every output row gathers the rows of the tiles that cover it.
//
// Blend weights are separable, w(Y, X) = wy(Y) * wx(X), so the normaliser of an output pixel is
// the product of a row sum and a column sum; the column sums are computed once per call.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "mmsr/cpu_util.h"
#include "mmsr/ops.h"

namespace mmsr::cpu {
namespace {

MMSR_VECTOR_CLONES
void add_weighted(const float* __restrict src, const float* __restrict weight, float scale,
                  int64_t n, float* __restrict acc) {
  for (int64_t j = 0; j < n; ++j) acc[j] += scale * weight[j] * src[j];
}

}  // namespace

void stitch(const StitchParams& p) {
  require(p.B >= 0 && p.C >= 1 && p.H >= 1 && p.W >= 1, "stitch: expects B >= 0 and C, H, W >= 1");
  require(p.tile_size >= 1 && p.overlap >= 0 && p.overlap < p.tile_size,
          "stitch: expects tile_size >= 1 and 0 <= overlap < tile_size");
  require(p.scale >= 1, "stitch: scale must be >= 1");
  if (p.B == 0) return;
  const AxisGrid gy = make_axis_grid(p.H, p.tile_size, p.overlap);
  const AxisGrid gx = make_axis_grid(p.W, p.tile_size, p.overlap);
  const int64_t s = p.scale;
  const int64_t Th = gy.tile * s, Tw = gx.tile * s;  // tile extent in output pixels
  const int64_t Ho = p.H * s, Wo = p.W * s;
  const int64_t per_image = gy.count * gx.count;

  std::vector<float> wy(Th), wx(Tw), column_norm(Wo, 0.0f);
  for (int64_t u = 0; u < Th; ++u) wy[u] = blend_weight(p.blend, u, Th, (gy.tile - gy.stride) * s);
  for (int64_t u = 0; u < Tw; ++u) wx[u] = blend_weight(p.blend, u, Tw, (gx.tile - gx.stride) * s);
  for (int64_t kx = 0; kx < gx.count; ++kx) {
    const int64_t x0 = gx.origin(kx) * s;
    for (int64_t j = 0; j < Tw; ++j) column_norm[x0 + j] += wx[j];
  }

  const int64_t rows = p.B * p.C * Ho;
#if defined(MMSR_WITH_OPENMP)
#pragma omp parallel num_threads(std::max(1, p.num_threads))
#endif
  {
    std::vector<float> acc(Wo), converted(p.dtype == DType::Float32 ? 0 : Tw);
#if defined(MMSR_WITH_OPENMP)
#pragma omp for schedule(static)
#endif
    for (int64_t item = 0; item < rows; ++item) {
      const int64_t Y = item % Ho, plane = item / Ho;  // plane = image * C + c
      const int64_t c = plane % p.C, image = plane / p.C;
      std::fill(acc.begin(), acc.end(), 0.0f);
      float row_norm = 0.0f;
      auto add_tile_row = [&](int64_t ky) {
        const int64_t uy = Y - gy.origin(ky) * s;
        const float weight_y = wy[uy];
        row_norm += weight_y;
        for (int64_t kx = 0; kx < gx.count; ++kx) {
          const int64_t t = image * per_image + ky * gx.count + kx;
          const int64_t offset = ((t * p.C + c) * Th + uy) * Tw;
          const float* src;
          if (p.dtype == DType::Float32) {
            src = static_cast<const float*>(p.tiles) + offset;
          } else {
            load_unit_floats(p.tiles, p.dtype, offset, Tw, converted.data());
            src = converted.data();
          }
          add_weighted(src, wx.data(), weight_y, Tw, acc.data() + gx.origin(kx) * s);
        }
      };
      const Covering cover = covering_tiles(gy, s, Y);
      for (int64_t ky = cover.first; ky <= cover.last; ++ky) add_tile_row(ky);
      if (cover.flush) add_tile_row(gy.count - 1);
      // A true division (not a reciprocal) keeps a pixel covered by one tile bit-exact.
      for (int64_t X = 0; X < Wo; ++X) acc[X] /= row_norm * column_norm[X];
      store_unit_floats(acc.data(), p.dtype, Wo, p.out, (plane * Ho + Y) * Wo);
    }
  }
}

}  // namespace mmsr::cpu

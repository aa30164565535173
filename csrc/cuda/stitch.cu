// Stitching on CUDA: one thread per output element gathers the (at most a few) tiles covering it
// and divides by the sum of their weights. A gather needs no atomics, so it is deterministic.
#include <type_traits>

#include "cuda_util.cuh"

namespace mmsr::cuda {
namespace {

template <typename T>
__global__ void stitch_kernel(const T* __restrict__ tiles, T* __restrict__ out, int64_t C, int64_t scale,
                              AxisGrid gy, AxisGrid gx, Blend blend, int64_t rows) {
  const int64_t Th = gy.tile * scale, Tw = gx.tile * scale;
  const int64_t Ho = gy.length * scale, Wo = gx.length * scale;
  const int64_t overlap_y = (gy.tile - gy.stride) * scale, overlap_x = (gx.tile - gx.stride) * scale;
  const int64_t per_image = gy.count * gx.count;
  const int64_t X = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (X >= Wo) return;
  const Covering cx = covering_tiles(gx, scale, X);
  const int64_t last_x = gx.count - 1;

  for (int64_t item = blockIdx.y; item < rows; item += gridDim.y) {  // item = (image * C + c) * Ho + Y
    const int64_t Y = item % Ho, plane = item / Ho;
    const int64_t c = plane % C, image = plane / C;
    const Covering cy = covering_tiles(gy, scale, Y);
    float acc = 0.0f, norm = 0.0f;
    // ky runs over the regular covering tiles, then the flush tile when it covers Y.
    for (int64_t ky = cy.first; ky <= cy.last + 1; ++ky) {
      const int64_t tile_y = ky <= cy.last ? ky : (cy.flush ? gy.count - 1 : -1);
      if (tile_y < 0) continue;
      const int64_t uy = Y - gy.origin(tile_y) * scale;
      const float wy = blend_weight(blend, uy, Th, overlap_y);
      for (int64_t kx = cx.first; kx <= cx.last + 1; ++kx) {
        const int64_t tile_x = kx <= cx.last ? kx : (cx.flush ? last_x : -1);
        if (tile_x < 0) continue;
        const int64_t ux = X - gx.origin(tile_x) * scale;
        const float w = wy * blend_weight(blend, ux, Tw, overlap_x);
        const int64_t t = image * per_image + tile_y * gx.count + tile_x;
        acc += w * to_unit(tiles[((t * C + c) * Th + uy) * Tw + ux]);
        norm += w;
      }
    }
    out[(plane * Ho + Y) * Wo + X] = from_unit<T>(acc / norm);
  }
}

}  // namespace

void stitch(const StitchParams& p, const CudaLaunch& launch) {
  require(p.B >= 0 && p.C >= 1 && p.H >= 1 && p.W >= 1, "stitch: expects B >= 0 and C, H, W >= 1");
  require(p.tile_size >= 1 && p.overlap >= 0 && p.overlap < p.tile_size,
          "stitch: expects tile_size >= 1 and 0 <= overlap < tile_size");
  require(p.scale >= 1, "stitch: scale must be >= 1");
  if (p.B == 0) return;
  const AxisGrid gy = make_axis_grid(p.H, p.tile_size, p.overlap);
  const AxisGrid gx = make_axis_grid(p.W, p.tile_size, p.overlap);
  const int64_t rows = p.B * p.C * p.H * p.scale;
  constexpr int threads = 256;
  const unsigned blocks_x = static_cast<unsigned>((p.W * p.scale + threads - 1) / threads);
  const unsigned blocks_y = static_cast<unsigned>(rows < kMaxGridY ? rows : kMaxGridY);
  DeviceGuard guard(launch.device);
  const cudaStream_t stream = stream_of(launch);
  dispatch_dtype(p.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    stitch_kernel<T><<<dim3(blocks_x, blocks_y), threads, 0, stream>>>(
        static_cast<const T*>(p.tiles), static_cast<T*>(p.out), p.C, p.scale, gy, gx, p.blend, rows);
  });
  check(cudaGetLastError(), "stitch_kernel launch");
}

}  // namespace mmsr::cuda

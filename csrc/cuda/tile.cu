// Tiling on CUDA: one thread per tile element gathers it from the image. Only bytes move, so the
// kernel is instantiated per element size, not per dtype.
#include <cstdint>

#include "cuda_util.cuh"

namespace mmsr::cuda {
namespace {

template <typename Word>
__global__ void tile_kernel(const Word* __restrict__ x, Word* __restrict__ tiles, int64_t C, int64_t H, int64_t W,
                            AxisGrid gy, AxisGrid gx, int64_t planes) {
  const int64_t per_tile = gy.tile * gx.tile;
  const int64_t per_image = gy.count * gx.count;
  for (int64_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {  // plane = tile * C + c
    const int64_t c = plane % C, t = plane / C;
    const int64_t image = t / per_image, k = t % per_image;
    const int64_t y0 = gy.origin(k / gx.count), x0 = gx.origin(k % gx.count);
    const Word* in = x + ((image * C + c) * H + y0) * W + x0;
    Word* out = tiles + plane * per_tile;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < per_tile;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const int64_t row = i / gx.tile, col = i % gx.tile;
      out[i] = in[row * W + col];
    }
  }
}

template <typename Word>
void launch_tile(const TileParams& p, const AxisGrid& gy, const AxisGrid& gx, int64_t planes, cudaStream_t stream) {
  constexpr int threads = 256;
  const int64_t per_tile = gy.tile * gx.tile;
  const unsigned blocks_x = static_cast<unsigned>((per_tile + threads - 1) / threads);
  const unsigned blocks_y = static_cast<unsigned>(planes < kMaxGridY ? planes : kMaxGridY);
  tile_kernel<Word><<<dim3(blocks_x, blocks_y), threads, 0, stream>>>(
      static_cast<const Word*>(p.x), static_cast<Word*>(p.tiles), p.C, p.H, p.W, gy, gx, planes);
}

}  // namespace

void tile(const TileParams& p, const CudaLaunch& launch) {
  require(p.B >= 0 && p.C >= 1 && p.H >= 1 && p.W >= 1, "tile: expects B >= 0 and C, H, W >= 1");
  require(p.tile_size >= 1 && p.overlap >= 0 && p.overlap < p.tile_size,
          "tile: expects tile_size >= 1 and 0 <= overlap < tile_size");
  const AxisGrid gy = make_axis_grid(p.H, p.tile_size, p.overlap);
  const AxisGrid gx = make_axis_grid(p.W, p.tile_size, p.overlap);
  const int64_t planes = p.B * gy.count * gx.count * p.C;
  if (planes == 0) return;
  DeviceGuard guard(launch.device);
  const cudaStream_t stream = stream_of(launch);
  switch (p.elem_size) {
    case 1: launch_tile<uint8_t>(p, gy, gx, planes, stream); break;
    case 2: launch_tile<uint16_t>(p, gy, gx, planes, stream); break;
    case 4: launch_tile<uint32_t>(p, gy, gx, planes, stream); break;
    case 8: launch_tile<uint64_t>(p, gy, gx, planes, stream); break;
    default: require(false, "tile: element size must be 1, 2, 4 or 8 bytes");
  }
  check(cudaGetLastError(), "tile_kernel launch");
}

}  // namespace mmsr::cuda

// VSP and TVAT on CUDA.
//
// One block scores a 32x32 patch of one image: each channel's patch plus a one-pixel halo is staged
// in shared memory, and each thread walks four consecutive rows of one column keeping a 3x3 window
// in registers. The thresholded VSP sum is reduced per block into a workspace, then a second kernel
// sums each image's blocks in a fixed order, so results are deterministic (no float atomics).
#include <algorithm>
#include <type_traits>

#include "cuda_util.cuh"

namespace mmsr::cuda {
namespace {

constexpr int kPatch = 32;        // patch edge in pixels
constexpr int kRowsPerThread = 4;  // consecutive rows per thread
constexpr int kThreadsY = kPatch / kRowsPerThread;
constexpr int kStage = kPatch + 2;  // staged edge including the halo

int64_t blocks_along(int64_t n) { return (n + kPatch - 1) / kPatch; }

template <typename T, bool kWriteVsp, bool kScore>
__global__ void __launch_bounds__(kPatch* kThreadsY)
    tvat_kernel(const T* __restrict__ x, float* __restrict__ vsp, float* __restrict__ partial, int64_t C,
                int64_t H, int64_t W, float threshold) {
  __shared__ float stage[kStage][kStage + 1];  // +1 column: no bank conflicts on column reads
  __shared__ float warp_sums[kThreadsY];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t image = blockIdx.z;
  const int64_t x0 = static_cast<int64_t>(blockIdx.x) * kPatch;
  const int64_t y0 = static_cast<int64_t>(blockIdx.y) * kPatch;
  const int64_t gx = x0 + tx;
  const int64_t gy_first = y0 + ty * kRowsPerThread;

  // Which of the 8 neighbours lie inside the image, per row of this thread; fixed across channels.
  const bool has_left = gx > 0, has_right = gx + 1 < W;
  float acc[kRowsPerThread] = {};

  const T* plane = x + image * C * H * W;
  for (int64_t c = 0; c < C; ++c, plane += H * W) {
    for (int i = ty * kPatch + tx; i < kStage * kStage; i += kPatch * kThreadsY) {
      const int sy = i / kStage, sx = i % kStage;
      const int64_t py = y0 + sy - 1, px = x0 + sx - 1;
      stage[sy][sx] = (py >= 0 && py < H && px >= 0 && px < W) ? to_unit(plane[py * W + px]) : 0.0f;
    }
    __syncthreads();
    // Window rows: above, centre, below; columns: left, centre, right.
    const int sx = tx + 1;
    int sy = ty * kRowsPerThread + 1;
    float up_l = stage[sy - 1][sx - 1], up_c = stage[sy - 1][sx], up_r = stage[sy - 1][sx + 1];
    float mid_l = stage[sy][sx - 1], mid_c = stage[sy][sx], mid_r = stage[sy][sx + 1];
#pragma unroll
    for (int r = 0; r < kRowsPerThread; ++r, ++sy) {
      const float lo_l = stage[sy + 1][sx - 1], lo_c = stage[sy + 1][sx], lo_r = stage[sy + 1][sx + 1];
      const int64_t gy = gy_first + r;
      const bool has_up = gy > 0, has_down = gy + 1 < H;
      float v = 0.0f, d;
      d = mid_c - up_c;  v += has_up ? d * d : 0.0f;
      d = mid_c - lo_c;  v += has_down ? d * d : 0.0f;
      d = mid_c - mid_l; v += has_left ? d * d : 0.0f;
      d = mid_c - mid_r; v += has_right ? d * d : 0.0f;
      d = mid_c - up_l;  v += (has_up && has_left) ? d * d : 0.0f;
      d = mid_c - up_r;  v += (has_up && has_right) ? d * d : 0.0f;
      d = mid_c - lo_l;  v += (has_down && has_left) ? d * d : 0.0f;
      d = mid_c - lo_r;  v += (has_down && has_right) ? d * d : 0.0f;
      acc[r] += v;
      up_l = mid_l; up_c = mid_c; up_r = mid_r;
      mid_l = lo_l; mid_c = lo_c; mid_r = lo_r;
    }
    __syncthreads();
  }

  float kept = 0.0f;
#pragma unroll
  for (int r = 0; r < kRowsPerThread; ++r) {
    const int64_t gy = gy_first + r;
    if (gy < H && gx < W) {
      if constexpr (kWriteVsp) vsp[(image * H + gy) * W + gx] = acc[r];
      kept += acc[r] >= threshold ? acc[r] : 0.0f;
    }
  }
  if constexpr (kScore) {
    kept = warp_sum(kept);
    if (tx == 0) warp_sums[ty] = kept;
    __syncthreads();
    if (ty == 0) {
      float v = tx < kThreadsY ? warp_sums[tx] : 0.0f;
      v = warp_sum(v);
      if (tx == 0) partial[(image * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x] = v;
    }
  }
}

// One warp per image sums its blocks' partial sums in a fixed order, in double as the CPU does: a
// 4000x3000 image has ~12k block sums, enough for float's rounding to show at 1e-5.
__global__ void tvat_finish_kernel(const float* __restrict__ partial, float* __restrict__ score, int64_t blocks,
                                   double inv_pixels) {
  const int64_t image = blockIdx.x;
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < blocks; i += 32) sum += partial[image * blocks + i];
  for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, offset);
  if (threadIdx.x == 0) score[image] = static_cast<float>(sum * inv_pixels);
}

}  // namespace

int64_t tvat_workspace_floats(int64_t B, int64_t H, int64_t W) { return B * blocks_along(H) * blocks_along(W); }

void tvat(const TvatParams& p, float* workspace, const CudaLaunch& launch) {
  require(p.B >= 0 && p.C >= 1 && p.H >= 1 && p.W >= 1, "tvat: expects B >= 0 and C, H, W >= 1");
  require(p.score == nullptr || workspace != nullptr, "tvat: the score needs a workspace");
  require(blocks_along(p.H) <= kMaxGridY, "tvat: image too tall for one launch (over 2 million rows)");
  if (p.B == 0 || (p.vsp == nullptr && p.score == nullptr)) return;  // nothing asked for
  DeviceGuard guard(launch.device);
  const cudaStream_t stream = stream_of(launch);
  const int64_t blocks_x = blocks_along(p.W), blocks_y = blocks_along(p.H);
  const int64_t plane = p.C * p.H * p.W;
  // gridDim.z holds at most 65535 images, so larger batches go in several launches.
  for (int64_t first = 0; first < p.B; first += kMaxGridY) {
    const int64_t count = std::min<int64_t>(kMaxGridY, p.B - first);
    const dim3 block(kPatch, kThreadsY);
    const dim3 grid(static_cast<unsigned>(blocks_x), static_cast<unsigned>(blocks_y), static_cast<unsigned>(count));
    float* vsp = p.vsp != nullptr ? p.vsp + first * p.H * p.W : nullptr;
    float* partial = p.score != nullptr ? workspace + first * blocks_x * blocks_y : nullptr;
    dispatch_dtype(p.dtype, [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T* x = static_cast<const T*>(p.x) + first * plane;
      if (p.score != nullptr && vsp != nullptr) {
        tvat_kernel<T, true, true><<<grid, block, 0, stream>>>(x, vsp, partial, p.C, p.H, p.W, p.threshold);
      } else if (p.score != nullptr) {
        tvat_kernel<T, false, true><<<grid, block, 0, stream>>>(x, nullptr, partial, p.C, p.H, p.W, p.threshold);
      } else {
        tvat_kernel<T, true, false><<<grid, block, 0, stream>>>(x, vsp, nullptr, p.C, p.H, p.W, p.threshold);
      }
    });
    check(cudaGetLastError(), "tvat_kernel launch");
  }
  if (p.score != nullptr) {
    const double inv_pixels = 1.0 / (static_cast<double>(p.H) * static_cast<double>(p.W));
    tvat_finish_kernel<<<static_cast<unsigned>(p.B), 32, 0, stream>>>(workspace, p.score, blocks_x * blocks_y,
                                                                      inv_pixels);
    check(cudaGetLastError(), "tvat_finish_kernel launch");
  }
}

}  // namespace mmsr::cuda

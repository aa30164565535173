// VSP and TVAT on CUDA.
//
// The work is cut into warp tasks, each one image's band of rows times a strip of columns. Within a
// warp, every lane owns kPix consecutive pixels of one row (one vector load where alignment allows)
// and walks kRows rows down with a three-row window in registers; the left and right neighbours of
// its pixels come from the adjacent lanes by shuffle, and the lanes at a strip's edges load the one
// halo column themselves. No shared memory and no block barriers: each warp streams on its own.
// Narrow images use segments of 8 or 16 lanes, stacked vertically in the warp, so that lanes are not
// left idle past the right edge of 64-pixel tiles.
//
// Channels are the outer loop, so any C works with a fixed register budget: each channel's band is
// loaded (kRows + 2 rows, all loads issued before use) and its squared differences are added to
// per-pixel accumulators (uint8 in grey levels, exactly: see value_of). Each warp writes one partial
// sum of thresholded VSP; a second kernel sums each image's partials in a fixed order in double, so
// results are deterministic (no float atomics).
#include <algorithm>
#include <climits>
#include <type_traits>

#include "cuda_util.cuh"

namespace mmsr::cuda {
namespace {

constexpr int kPix = 4;    // consecutive pixels of one row per lane
constexpr int kRows = 4;   // rows per lane: a segment's band height
constexpr int kWarps = 4;  // warps (independent tasks) per block
constexpr int kBlock = 32 * kWarps;
// Resident blocks asked of ptxas: 6 x 128 threads caps the 32-bit path at 80 registers without
// spills (24 warps per SM); the rare 64-bit path needs more registers for its offsets.
template <typename Idx>
constexpr int kMinBlocks = std::is_same_v<Idx, int32_t> ? 6 : 4;
constexpr unsigned kFullMask = 0xffffffffu;

// 32-bit offsets inside one channel plane are enough when even the rows and columns a task touches
// past the image's far edges (under 4 * kRows + 1 rows, 32 * kPix + 2 columns) stay below 2^31.
bool needs_wide_index(int64_t H, int64_t W) {
  return (H + 4 * kRows + 1) * (W + 32 * kPix + 2) >= static_cast<int64_t>(INT32_MAX);
}

// Lanes per row segment: the fewest whose pixels span the width (a warp holds 32 / lanes segments).
// Huge planes always take full-warp rows so that the 64-bit path needs only one instantiation.
int lanes_per_row(int64_t H, int64_t W) {
  if (needs_wide_index(H, W)) return 32;
  return W <= 8 * kPix ? 8 : (W <= 16 * kPix ? 16 : 32);
}

// Tasks of one image: bands of (32 / lanes) * kRows rows times strips of lanes * kPix columns.
struct Layout {
  int lanes;
  int64_t strips, tasks;
};

Layout layout_of(int64_t H, int64_t W) {
  Layout l;
  l.lanes = lanes_per_row(H, W);
  const int64_t band_rows = (32 / l.lanes) * kRows, strip_cols = static_cast<int64_t>(l.lanes) * kPix;
  l.strips = (W + strip_cols - 1) / strip_cols;
  l.tasks = l.strips * ((H + band_rows - 1) / band_rows);
  return l;
}

// A pixel as the kernel computes with it: uint8 as its grey level (0..255), where every VSP is an
// exact integer whatever the FMA contraction or summation order (common.h); float types in [0, 1].
__device__ __forceinline__ float value_of(uint8_t v) { return static_cast<float>(v); }
template <typename T>
__device__ __forceinline__ float value_of(T v) {
  return to_unit(v);
}

// kPix elements of T as one aligned load: 16 bytes of float, 8 of half types, 4 of bytes.
template <typename T>
struct alignas(sizeof(T) * kPix) PixVec {
  T e[kPix];
};

// Pixels xs .. xs + kPix - 1 of one row as floats (zero outside the image). kVec: the row start and
// W are multiples of kPix elements and the base is aligned, so the lane's pixels are all in or out.
template <typename T, bool kVec, typename Idx>
__device__ __forceinline__ void load_pixels(const T* __restrict__ row, bool row_ok, Idx xs, Idx W,
                                            float (&out)[kPix]) {
  if constexpr (kVec) {
    PixVec<T> v{};
    if (row_ok && xs < W) v = *reinterpret_cast<const PixVec<T>*>(row + xs);
#pragma unroll
    for (int k = 0; k < kPix; ++k) out[k] = value_of(v.e[k]);
  } else {
#pragma unroll
    for (int k = 0; k < kPix; ++k) out[k] = (row_ok && xs + k < W) ? value_of(row[xs + k]) : 0.0f;
  }
}

// Adds one channel's squared differences to the accumulators of a lane's kRows x kPix pixels.
// win[i] is row y0 - 1 + i as [left neighbour, kPix own pixels, right neighbour]. Neighbours outside
// the image must contribute nothing; the mask of neighbour (dy, dx) is row_w[dy] * col_w[dx], so
// each neighbour row's three terms are summed first and weighted once by a 0/1 float. Float weights
// instead of branches or per-term predicates keep the code branch-free and light on registers.
// Column weights are needed only where they can be 0: pixel 0's left (wl), and the right of the
// last pixel, or of every pixel without kVec (wr).
template <bool kVec>
__device__ __forceinline__ void add_channel(float (&acc)[kRows][kPix], const float (&win)[kRows + 2][kPix + 2],
                                            const bool (&has_up)[kRows], const bool (&has_down)[kRows], bool has_left,
                                            const bool (&has_right)[kPix]) {
  // Terms of neighbours outside the image are dropped by selects, never multiplied by 0: an inf
  // pixel at the border would turn (inf - 0) * 0 into NaN, where the definition (and the CPU
  // kernel) give inf.
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int k = 0; k < kPix; ++k) {
      const float m = win[r + 1][k + 1];
      // Difference to the left / right column, 0 where that column may lie outside.
      const auto dl = [&](const float* row) { return k == 0 ? (has_left ? m - row[k] : 0.0f) : m - row[k]; };
      const auto dr = [&](const float* row) {
        return (kVec && k + 1 < kPix) ? m - row[k + 2] : (has_right[k] ? m - row[k + 2] : 0.0f);
      };
      const auto row_terms = [&](const float* row) {  // the three neighbours in an adjacent row
        const float a = dl(row), b = m - row[k + 1], c = dr(row);
        return fmaf(c, c, fmaf(b, b, a * a));
      };
      const float ml = dl(win[r + 1]), mr = dr(win[r + 1]);
      float s = fmaf(ml, ml, acc[r][k]);
      s = fmaf(mr, mr, s);
      if (has_up[r]) s += row_terms(win[r]);
      if (has_down[r]) s += row_terms(win[r + 2]);
      acc[r][k] = s;
    }
  }
}

// One warp task. Idx is the index type inside a channel plane (int32 unless the plane is huge).
template <typename T, int kLanes, typename Idx, bool kVec>
__global__ void __launch_bounds__(kBlock, kMinBlocks<Idx>)
    tvat_kernel(const T* __restrict__ x, float* __restrict__ vsp, float* __restrict__ partial, int64_t tasks,
                int64_t tasks_per_image, int64_t strips, int64_t C, Idx H, Idx W, float threshold) {
  constexpr int kSegs = 32 / kLanes;
  const int64_t task = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (task >= tasks) return;  // the whole warp leaves together, so every shuffle sees all 32 lanes
  const int lane = threadIdx.x & 31, sl = lane % kLanes;
  const int64_t image = task / tasks_per_image, rest = task - image * tasks_per_image;
  const int64_t band = rest / strips;
  const Idx x0 = static_cast<Idx>(rest - band * strips) * (kLanes * kPix);
  const Idx band_y0 = static_cast<Idx>(band) * (kSegs * kRows);
  const Idx y0 = band_y0 + (lane / kLanes) * kRows;  // first row of this lane's segment
  const Idx xs = x0 + sl * kPix;                      // first pixel of this lane
  // The segment's edge lanes read the column just outside the strip: left for lane 0, right for the last.
  const bool left_lane = sl == 0, right_lane = sl == kLanes - 1;
  const Idx hx = left_lane ? x0 - 1 : x0 + kLanes * kPix;
  const bool halo_ok = (left_lane || right_lane) && hx >= 0 && hx < W;
  // Which neighbours that may lie outside the image are inside, fixed across channels. Only pixel 0
  // can lack a left neighbour; with kVec a lane's pixels are all in or all out, so only the last one
  // can lack a right neighbour. Rows past the bottom (y >= H) are computed but never stored.
  const bool has_left = xs > 0;
  bool has_right[kPix], has_up[kRows], has_down[kRows];
#pragma unroll
  for (int k = 0; k < kPix; ++k) has_right[k] = xs + k + 1 < W;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    has_up[r] = y0 + r > 0;
    has_down[r] = y0 + r + 1 < H;
  }

  float acc[kRows][kPix] = {};
  const int64_t plane_size = static_cast<int64_t>(H) * W;
  const T* plane = x + image * C * plane_size;
#pragma unroll 1
  for (int64_t c = 0; c < C; ++c, plane += plane_size) {
    // Rows y0 - 1 .. y0 + kRows; all loads are issued before any result is used, so that a warp
    // keeps its whole band in flight.
    float win[kRows + 2][kPix + 2];
    float halo[kRows + 2];
#pragma unroll
    for (int i = 0; i < kRows + 2; ++i) {
      const Idx y = y0 - 1 + i;
      const bool row_ok = y >= 0 && y < H;
      const T* row = plane + (row_ok ? y : 0) * W;
      float px[kPix];
      load_pixels<T, kVec>(row, row_ok, xs, W, px);
#pragma unroll
      for (int k = 0; k < kPix; ++k) win[i][k + 1] = px[k];
      T h{};  // zero; loaded under a predicate and converted unconditionally, so no branch
      if (row_ok && halo_ok) h = row[hx];
      halo[i] = value_of(h);
    }
#pragma unroll
    for (int i = 0; i < kRows + 2; ++i) {
      const float from_left = __shfl_up_sync(kFullMask, win[i][kPix], 1, kLanes);
      const float from_right = __shfl_down_sync(kFullMask, win[i][1], 1, kLanes);
      win[i][0] = left_lane ? halo[i] : from_left;
      win[i][kPix + 1] = right_lane ? halo[i] : from_right;
    }
    add_channel<kVec>(acc, win, has_up, has_down, has_left, has_right);
  }

  // Store VSP (uint8: exact levels^2 -> [0, 1] units, correctly rounded) and sum the thresholded
  // values of this lane's pixels inside the image (uint8: in levels^2, scaled by the finish kernel).
  constexpr bool kLevels = std::is_same_v<T, uint8_t>;
  const auto unit_vsp = [](float v) { return kLevels ? v / static_cast<float>(kUint8LevelsSquared) : v; };
  float kept = 0.0f;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const Idx y = y0 + r;
    if (y >= H || xs >= W) continue;
    float* out = vsp != nullptr ? vsp + (image * H + y) * static_cast<int64_t>(W) + xs : nullptr;
    if (kVec && out != nullptr) {
      PixVec<float> v;
#pragma unroll
      for (int k = 0; k < kPix; ++k) v.e[k] = unit_vsp(acc[r][k]);
      *reinterpret_cast<PixVec<float>*>(out) = v;
    }
#pragma unroll
    for (int k = 0; k < kPix; ++k) {
      if (!kVec && xs + k >= W) break;
      if (!kVec && out != nullptr) out[k] = unit_vsp(acc[r][k]);
      // VSP * [VSP >= threshold] as IEEE arithmetic has it: a NaN VSP is kept (NaN * 0 is NaN).
      kept += acc[r][k] < threshold ? 0.0f : acc[r][k];
    }
  }
  if (partial != nullptr) {
    kept = warp_sum(kept);
    if (lane == 0) partial[task] = kept;
  }
}

// Sums each image's task partials in a fixed order, in double as the CPU does: a 4000x3000 image has
// ~12k partials, enough for float's rounding to show at 1e-5. With few partials per image a warp
// serves one image; with many, the whole block does, so a large image is not summed by 32 threads
// one dependent load at a time.
constexpr int kFinishThreads = 256;
constexpr int kFinishWarps = kFinishThreads / 32;

__device__ __forceinline__ double warp_sum_double(double v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(kFullMask, v, offset);
  return v;
}

template <bool kBlockPerImage>
__global__ void __launch_bounds__(kFinishThreads)
    tvat_finish_kernel(const float* __restrict__ partial, float* __restrict__ score, int64_t B, int64_t per_image,
                       double inv_pixels) {
  __shared__ double warp_sums[kFinishWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if constexpr (kBlockPerImage) {
    const int64_t image = blockIdx.x;
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < per_image; i += kFinishThreads) sum += partial[image * per_image + i];
    sum = warp_sum_double(sum);
    if (lane == 0) warp_sums[warp] = sum;
    __syncthreads();
    if (warp == 0) {
      sum = lane < kFinishWarps ? warp_sums[lane] : 0.0;
      sum = warp_sum_double(sum);
      if (lane == 0) score[image] = static_cast<float>(sum * inv_pixels);
    }
  } else {
    const int64_t image = static_cast<int64_t>(blockIdx.x) * kFinishWarps + warp;
    if (image >= B) return;
    double sum = 0.0;
    for (int64_t i = lane; i < per_image; i += 32) sum += partial[image * per_image + i];
    sum = warp_sum_double(sum);
    if (lane == 0) score[image] = static_cast<float>(sum * inv_pixels);
  }
}

template <typename T, int kLanes, typename Idx>
void launch_tvat(const TvatParams& p, bool vec, const Layout& l, float* partial, cudaStream_t stream) {
  const int64_t tasks = p.B * l.tasks;
  const dim3 grid(static_cast<unsigned>((tasks + kWarps - 1) / kWarps)), block(kBlock);
  const T* x = static_cast<const T*>(p.x);
  const Idx H = static_cast<Idx>(p.H), W = static_cast<Idx>(p.W);
  const float threshold = kernel_threshold(p.dtype, p.threshold);  // levels^2 for uint8
  if (vec) {
    tvat_kernel<T, kLanes, Idx, true><<<grid, block, 0, stream>>>(x, p.vsp, partial, tasks, l.tasks, l.strips,
                                                                  p.C, H, W, threshold);
  } else {
    tvat_kernel<T, kLanes, Idx, false><<<grid, block, 0, stream>>>(x, p.vsp, partial, tasks, l.tasks, l.strips,
                                                                   p.C, H, W, threshold);
  }
}

}  // namespace

int64_t tvat_workspace_floats(int64_t B, int64_t H, int64_t W) { return B * layout_of(H, W).tasks; }

void tvat(const TvatParams& p, float* workspace, const CudaLaunch& launch) {
  require(p.B >= 0 && p.C >= 1 && p.H >= 1 && p.W >= 1, "tvat: expects B >= 0 and C, H, W >= 1");
  require(p.score == nullptr || workspace != nullptr, "tvat: the score needs a workspace");
  if (p.B == 0 || (p.vsp == nullptr && p.score == nullptr)) return;  // nothing asked for
  const Layout l = layout_of(p.H, p.W);
  require((p.B * l.tasks + kWarps - 1) / kWarps <= INT32_MAX, "tvat: batch too large for one launch");
  DeviceGuard guard(launch.device);
  const cudaStream_t stream = stream_of(launch);
  float* partial = p.score != nullptr ? workspace : nullptr;
  const bool wide = needs_wide_index(p.H, p.W);

  dispatch_dtype(p.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    // Vector loads need every row start aligned to kPix elements, and so do the float4 VSP stores.
    const auto aligned = [](const void* ptr, size_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; };
    const bool vec = p.W % kPix == 0 && aligned(p.x, sizeof(T) * kPix) &&
                     (p.vsp == nullptr || aligned(p.vsp, sizeof(float) * kPix));
    if (wide) {
      launch_tvat<T, 32, int64_t>(p, vec, l, partial, stream);
    } else if (l.lanes == 8) {
      launch_tvat<T, 8, int32_t>(p, vec, l, partial, stream);
    } else if (l.lanes == 16) {
      launch_tvat<T, 16, int32_t>(p, vec, l, partial, stream);
    } else {
      launch_tvat<T, 32, int32_t>(p, vec, l, partial, stream);
    }
  });
  check(cudaGetLastError(), "tvat_kernel launch");

  if (p.score != nullptr) {
    // uint8 partials are in levels^2 (see value_of).
    const double inv_pixels = 1.0 / (static_cast<double>(p.H) * static_cast<double>(p.W) *
                                     (p.dtype == DType::UInt8 ? kUint8LevelsSquared : 1.0));
    if (l.tasks > kFinishThreads) {
      tvat_finish_kernel<true><<<static_cast<unsigned>(p.B), kFinishThreads, 0, stream>>>(workspace, p.score, p.B,
                                                                                          l.tasks, inv_pixels);
    } else {
      const unsigned blocks = static_cast<unsigned>((p.B + kFinishWarps - 1) / kFinishWarps);
      tvat_finish_kernel<false><<<blocks, kFinishThreads, 0, stream>>>(workspace, p.score, p.B, l.tasks, inv_pixels);
    }
    check(cudaGetLastError(), "tvat_finish_kernel launch");
  }
}

}  // namespace mmsr::cuda

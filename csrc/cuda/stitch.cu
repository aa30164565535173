// Stitching on CUDA: every output element gathers the (few) tiles covering it and divides by the sum
// of their weights. A gather needs no atomics, so it is deterministic.
//
// Layout of the work. A block owns kThreads * kColumns output columns (thread i takes columns
// i, i + kThreads, ..., so every warp load and store stays coalesced) and walks bands of kRows
// consecutive output rows of the flattened (image, channel, Y) row space. Everything that depends
// only on X (which tiles cover it along x, where in those tiles, with what weight) is computed once
// per thread; everything that depends only on the row (tiles along y, their weight, the row offset)
// once per row and shared by the thread's kColumns columns. The inner loop is then loads and FMAs:
// no divisions, no sinf. Index math runs in 32 bits whenever every offset fits (64-bit integer
// division is a long software routine on the GPU), with a 64-bit instantiation for huge buffers.
// The previous one-thread-per-element kernel redid the 64-bit divisions, covering_tiles() and
// blend_weight() for every element and was integer-bound.
//
// Per element the sum runs over the covering tiles in the order of the original one-thread-per-
// element kernel: tiles along y (regular ascending, then the flush tile) outer, tiles along x
// inner, acc += w * v and norm += w with w = wy * wx. The mean blend therefore stays bit-identical
// to the CPU kernel, and the feathered blends agree with it to float rounding.
#include <climits>
#include <cstdint>
#include <type_traits>

#include "cuda_util.cuh"

namespace mmsr::cuda {
namespace {

constexpr int kThreads = 128;  // threads per block
constexpr int kColumns = 4;    // output columns per thread, kThreads apart
constexpr int kRows = 8;       // consecutive output rows per band: the per-column set-up amortises over them

// Register budget, as blocks per SM: ptxas left to itself caps these kernels at 64 registers and
// spills in the row loop. 7 blocks (<= 72 registers) fit the 32-bit kernels without spills and keep
// 28 warps per SM, each with up to 2 * kColumns loads in flight; the 64-bit kernels need ~110.
template <typename I>
constexpr int kMinBlocks = sizeof(I) == 4 ? 7 : 4;

// One axis of the tile grid in output pixels (LR pixels times scale), in index type I.
template <typename I>
struct OutAxis {
  I extent;   // image extent along the axis
  I tile;     // tile extent
  I stride;   // distance between the origins of regular tiles
  I flush;    // origin of the last tile, flush with the far edge
  I count;    // tiles along the axis
  I overlap;  // feather width handed to blend_weight

  // min(k * stride, flush) equals AxisGrid::origin(k) * scale, as scale > 0.
  __device__ __forceinline__ I origin(I k) const {
    const I o = k * stride;
    return o < flush ? o : flush;
  }
};

// The tiles covering one position, in gather order: `regular` regular tiles from `first` up, then
// the flush tile when `has_flush`. Mirrors covering_tiles() in mmsr/common.h.
template <typename I>
struct Cover {
  I first, regular;
  bool has_flush;

  __device__ __forceinline__ I size() const { return regular + (has_flush ? 1 : 0); }
  // Index of the e-th covering tile (0 <= e < size()).
  __device__ __forceinline__ I tile(I e, I last_tile) const { return e < regular ? first + e : last_tile; }
};

template <typename I>
__device__ __forceinline__ Cover<I> cover(const OutAxis<I>& a, I pos) {
  const I first = pos < a.tile ? 0 : (pos - a.tile) / a.stride + 1;
  const I by_stride = pos / a.stride;
  const I last = by_stride < a.count - 2 ? by_stride : a.count - 2;  // all but the last tile are regular
  return {first, last >= first ? last - first + 1 : 0, a.flush <= pos};
}

// blend_weight() from mmsr/common.h, known to be 1 at compile time for the mean blend.
template <bool kFeathered, typename I>
__device__ __forceinline__ float weight(Blend blend, I u, I length, I overlap) {
  return kFeathered ? blend_weight(blend, u, length, overlap) : 1.0f;
}

template <typename I>
struct Layout {
  OutAxis<I> y, x;
  I C;
  I rows;         // output rows, B * C * Ho
  I image_tiles;  // tiles per image, count_y * count_x
  I tile_elems;   // elements of one tile, C * Th * Tw
  I plane_elems;  // elements of one channel of a tile, Th * Tw
  Blend blend;
};

// kFeathered = false is the mean blend: every weight is exactly 1, so the kernel skips the weight
// registers and the sinf code, which frees registers for the loads.
template <typename T, typename I, bool kFeathered>
__global__ void __launch_bounds__(kThreads, kMinBlocks<I>) stitch_kernel(const T* __restrict__ tiles,
                                                                       T* __restrict__ out, const Layout<I> g) {
  const I x0 = static_cast<I>(blockIdx.x) * (kThreads * kColumns) + static_cast<I>(threadIdx.x);

  // Per-column set-up, once per thread. With overlap <= stride (the usual layout) at most two
  // tiles cover a column along x; their offsets (tile_x * tile_elems + ux) and weights live in
  // registers. Columns covered by more tiles take the general loop below.
  int fast_n[kColumns];  // covering tiles cached for column k: 0, 1 or 2 (0 when outside or slow)
  I col_off[kColumns][2];
  float col_w[kColumns][2];
  unsigned inside = 0, slow = 0;  // bit k: column k lies inside the image / needs the general loop
#pragma unroll
  for (int k = 0; k < kColumns; ++k) {
    const I X = x0 + k * kThreads;
    fast_n[k] = 0;
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      col_off[k][j] = 0;
      col_w[k][j] = 0.0f;
    }
    if (X >= g.x.extent) continue;
    inside |= 1u << k;
    const Cover<I> cx = cover(g.x, X);
    const I n = cx.size();
    if (n > 2) {
      slow |= 1u << k;
      continue;
    }
    fast_n[k] = static_cast<int>(n);
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      if (j >= n) break;
      const I tile_x = cx.tile(j, g.x.count - 1);
      const I ux = X - g.x.origin(tile_x);
      col_off[k][j] = tile_x * g.tile_elems + ux;
      col_w[k][j] = weight<kFeathered>(g.blend, ux, g.x.tile, g.x.overlap);
    }
  }

  const I bands = (g.rows + (kRows - 1)) / kRows;
  for (I band = blockIdx.y; band < bands; band += gridDim.y) {
    // row = (image * C + c) * Ho + Y. Divide once per band; later rows step (Y, c, image) along.
    const I first_row = band * kRows;
    const I end_row = first_row + kRows < g.rows ? first_row + kRows : g.rows;
    const I first_plane = first_row / g.y.extent;
    I Y = first_row - first_plane * g.y.extent;
    I image = first_plane / g.C;
    I c = first_plane - image * g.C;

    for (I row = first_row; row < end_row; ++row) {
      const Cover<I> cy = cover(g.y, Y);
      const I ny = cy.size();
      const I plane_off = image * g.image_tiles * g.tile_elems + c * g.plane_elems;  // image's tile 0, channel c
      float acc[kColumns], norm[kColumns];
#pragma unroll
      for (int k = 0; k < kColumns; ++k) acc[k] = norm[k] = 0.0f;

      for (I e = 0; e < ny; ++e) {
        const I tile_y = cy.tile(e, g.y.count - 1);
        const I uy = Y - g.y.origin(tile_y);
        const float wy = weight<kFeathered>(g.blend, uy, g.y.tile, g.y.overlap);
        // Row uy of channel c of tile (tile_y, 0); the column offsets add tile_x and ux.
        const I row_off = plane_off + tile_y * g.x.count * g.tile_elems + uy * g.x.tile;

        // All loads of this tile row first, so that up to 2 * kColumns are in flight at once.
        float v[kColumns][2];
#pragma unroll
        for (int k = 0; k < kColumns; ++k)
#pragma unroll
          for (int j = 0; j < 2; ++j) v[k][j] = j < fast_n[k] ? to_unit(tiles[row_off + col_off[k][j]]) : 0.0f;
#pragma unroll
        for (int k = 0; k < kColumns; ++k)
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            if (j < fast_n[k]) {
              const float w = wy * col_w[k][j];
              acc[k] += w * v[k][j];
              norm[k] += w;
            }
          }

        if (slow != 0) {  // overlap > stride: a column may lie in three or more tiles along x
#pragma unroll
          for (int k = 0; k < kColumns; ++k) {
            if (!((slow >> k) & 1u)) continue;
            const I X = x0 + k * kThreads;
            const Cover<I> cx = cover(g.x, X);
            const I nx = cx.size();
            for (I j = 0; j < nx; ++j) {
              const I tile_x = cx.tile(j, g.x.count - 1);
              const I ux = X - g.x.origin(tile_x);
              const float w = wy * weight<kFeathered>(g.blend, ux, g.x.tile, g.x.overlap);
              acc[k] += w * to_unit(tiles[row_off + tile_x * g.tile_elems + ux]);
              norm[k] += w;
            }
          }
        }
      }

      const I out_row = row * g.x.extent;
#pragma unroll
      for (int k = 0; k < kColumns; ++k) {
        if ((inside >> k) & 1u) out[out_row + x0 + k * kThreads] = from_unit<T>(acc[k] / norm[k]);
      }

      if (++Y == g.y.extent) {
        Y = 0;
        if (++c == g.C) {
          c = 0;
          ++image;
        }
      }
    }
  }
}

template <typename I>
OutAxis<I> out_axis(const AxisGrid& a, int64_t scale) {
  return {static_cast<I>(a.length * scale), static_cast<I>(a.tile * scale), static_cast<I>(a.stride * scale),
          static_cast<I>((a.length - a.tile) * scale), static_cast<I>(a.count),
          static_cast<I>((a.tile - a.stride) * scale)};
}

template <typename I>
Layout<I> make_layout(const StitchParams& p, const AxisGrid& gy, const AxisGrid& gx) {
  const int64_t Th = gy.tile * p.scale, Tw = gx.tile * p.scale;
  return {out_axis<I>(gy, p.scale),
          out_axis<I>(gx, p.scale),
          static_cast<I>(p.C),
          static_cast<I>(p.B * p.C * p.H * p.scale),
          static_cast<I>(gy.count * gx.count),
          static_cast<I>(p.C * Th * Tw),
          static_cast<I>(Th * Tw),
          p.blend};
}

template <typename T, typename I>
void launch_kernel(const T* tiles, T* out, const Layout<I>& g, dim3 grid, cudaStream_t stream) {
  if (g.blend == Blend::Mean) {
    stitch_kernel<T, I, false><<<grid, kThreads, 0, stream>>>(tiles, out, g);
  } else {
    stitch_kernel<T, I, true><<<grid, kThreads, 0, stream>>>(tiles, out, g);
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
  const int64_t Wo = p.W * p.scale, rows = p.B * p.C * p.H * p.scale;
  const int64_t tile_total = p.B * gy.count * gx.count * p.C * (gy.tile * p.scale) * (gx.tile * p.scale);
  const int64_t out_total = rows * Wo;
  // 32-bit indices when every offset fits, with headroom for the few values computed past the
  // end (a block's columns beyond Wo, a band's end row, the grid-stride band counter).
  const bool narrow = (tile_total > out_total ? tile_total : out_total) <= INT32_MAX - (int64_t{1} << 24);

  constexpr int64_t columns_per_block = kThreads * kColumns;
  const int64_t bands = (rows + kRows - 1) / kRows;
  const unsigned blocks_x = static_cast<unsigned>((Wo + columns_per_block - 1) / columns_per_block);
  const unsigned blocks_y = static_cast<unsigned>(bands < kMaxGridY ? bands : kMaxGridY);
  DeviceGuard guard(launch.device);
  const cudaStream_t stream = stream_of(launch);
  dispatch_dtype(p.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* tiles = static_cast<const T*>(p.tiles);
    T* out = static_cast<T*>(p.out);
    const dim3 grid(blocks_x, blocks_y);
    if (narrow) {
      launch_kernel(tiles, out, make_layout<int32_t>(p, gy, gx), grid, stream);
    } else {
      launch_kernel(tiles, out, make_layout<int64_t>(p, gy, gx), grid, stream);
    }
  });
  check(cudaGetLastError(), "stitch_kernel launch");
}

}  // namespace mmsr::cuda

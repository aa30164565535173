// Entry points of the mmsr kernels. Each takes one plain struct of pointers and sizes; the caller
// owns every buffer. Tensors are contiguous row-major; shapes are given in the comments.
#pragma once

#include <cstdint>
#include <vector>

#include "mmsr/common.h"

namespace mmsr {

struct TvatParams {
  const void* x;     // [B, C, H, W] image batch, element type `dtype`
  float* vsp;        // [B, H, W] VSP per pixel, or nullptr when not wanted
  float* score;      // [B] TVAT per image, or nullptr when not wanted
  int64_t B, C, H, W;
  DType dtype;       // uint8 is read as value / 255
  double threshold;  // VSP below this does not count towards TVAT ([0, 1] units; see kernel_threshold)
  int num_threads;   // CPU only: OpenMP threads (the caller passes torch's setting)
};

struct TileParams {
  const void* x;      // [B, C, H, W] image batch
  void* tiles;        // [B * ny * nx, C, th, tw] tiles, image-major then row-major
  int64_t B, C, H, W;
  int64_t elem_size;  // bytes per element: tiling only moves bytes
  int64_t tile_size;  // requested tile edge (clamped per axis to the image)
  int64_t overlap;    // overlap between neighbouring tiles, < tile_size
  int num_threads;    // CPU only
};

struct StitchParams {
  const void* tiles;  // [B * ny * nx, C, th * scale, tw * scale] tiles, as cut by tile()
  void* out;          // [B, C, H * scale, W * scale] stitched image
  int64_t B, C, H, W; // the LR image the grid was cut from
  int64_t tile_size;  // requested tile edge in LR pixels
  int64_t overlap;    // overlap in LR pixels
  int64_t scale;      // SR factor between tiles and the grid (1 = no upscaling)
  DType dtype;        // element type of tiles and out (uint8 output is rounded)
  Blend blend;
  int num_threads;    // CPU only
};

struct ClassifyParams {
  const float* scores;             // [N] scores
  int64_t* classes;                // [N] class index per score
  int64_t N;
  std::vector<float> boundaries;   // ascending; class k holds boundaries[k-1] <= s < boundaries[k]
  int num_threads;                 // CPU only
};

// Where a CUDA kernel runs: the caller's device and stream (a cudaStream_t as an integer).
struct CudaLaunch {
  int device;
  uintptr_t stream;
};

namespace cpu {
void tvat(const TvatParams& p);
void tile(const TileParams& p);
void stitch(const StitchParams& p);
void classify(const ClassifyParams& p);
}  // namespace cpu

#if defined(MMSR_WITH_CUDA)
namespace cuda {
// Scratch floats the CUDA tvat needs for its deterministic two-pass reduction.
int64_t tvat_workspace_floats(int64_t B, int64_t H, int64_t W);
void tvat(const TvatParams& p, float* workspace, const CudaLaunch& launch);
void tile(const TileParams& p, const CudaLaunch& launch);
void stitch(const StitchParams& p, const CudaLaunch& launch);
void classify(const ClassifyParams& p, const CudaLaunch& launch);
}  // namespace cuda
#endif

}  // namespace mmsr

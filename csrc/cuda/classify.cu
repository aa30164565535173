// Texture classes on CUDA: boundaries travel by value in the launch, so no device copy is needed.
#include <algorithm>

#include "cuda_util.cuh"

namespace mmsr::cuda {
namespace {

constexpr int kMaxBoundaries = 255;

struct Boundaries {
  float values[kMaxBoundaries];
  int count;
};

__global__ void classify_kernel(const float* __restrict__ scores, int64_t* __restrict__ classes, int64_t n,
                                Boundaries b) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float s = scores[i];
    int64_t k = 0;
    // Counts boundaries <= s, like std::upper_bound on the CPU; NaN counts them all (last class).
    for (int j = 0; j < b.count; ++j) k += !(s < b.values[j]);
    classes[i] = k;
  }
}

}  // namespace

void classify(const ClassifyParams& p, const CudaLaunch& launch) {
  require(p.boundaries.size() <= static_cast<size_t>(kMaxBoundaries), "classify: at most 255 boundaries");
  require(std::is_sorted(p.boundaries.begin(), p.boundaries.end()), "classify: boundaries must be ascending");
  if (p.N == 0) return;
  Boundaries b{};
  b.count = static_cast<int>(p.boundaries.size());
  for (int j = 0; j < b.count; ++j) b.values[j] = p.boundaries[j];
  DeviceGuard guard(launch.device);
  constexpr int threads = 256;
  const int64_t wanted = (p.N + threads - 1) / threads;
  const unsigned blocks = static_cast<unsigned>(wanted < 65535 ? wanted : 65535);
  classify_kernel<<<blocks, threads, 0, stream_of(launch)>>>(p.scores, p.classes, p.N, b);
  check(cudaGetLastError(), "classify_kernel launch");
}

}  // namespace mmsr::cuda

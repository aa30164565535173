// Texture classes on the CPU: class k holds boundaries[k-1] <= score < boundaries[k].
#include <algorithm>
#include <cstdint>

#include "mmsr/ops.h"

namespace mmsr::cpu {

void classify(const ClassifyParams& p) {
  require(std::is_sorted(p.boundaries.begin(), p.boundaries.end()), "classify: boundaries must be ascending");
  const float* b = p.boundaries.data();
  const int64_t K = static_cast<int64_t>(p.boundaries.size());
#if defined(MMSR_WITH_OPENMP)
#pragma omp parallel for schedule(static) num_threads(std::max(1, p.num_threads)) if (p.N > 65536)
#endif
  for (int64_t i = 0; i < p.N; ++i) {
    // upper_bound counts the boundaries <= score. NaN compares false everywhere and
    // lands in the last class, as torch.bucketize puts it.
    p.classes[i] = std::upper_bound(b, b + K, p.scores[i]) - b;
  }
}

}  // namespace mmsr::cpu

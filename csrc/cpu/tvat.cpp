// VSP and TVAT on the CPU.
//
// Every neighbour pair (p, q) contributes the same squared difference to VSP(p) and VSP(q), so each
// row computes four pair directions once (right, down, down-right, down-left) and every pixel sums
// the four pairs it starts plus the four that end on it, half of them kept from the row above.
// Rows are split into chunks so that one large image keeps every thread busy.
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "mmsr/cpu_util.h"
#include "mmsr/ops.h"

namespace mmsr::cpu {
namespace {

// Sums over channels the squared differences of the pairs starting at each pixel of row y: `a`
// holds row y of every channel, `b` row y + 1 (nullptr on the last row). Outputs are offset by
// one (index x + 1 belongs to pixel x) so that their zero padding makes the neighbour sums in
// finish_row branch-free; pairs that would leave the image are never written and stay zero.
template <int kChannels>  // 0: channel count known only at run time
inline __attribute__((always_inline)) void row_pairs_impl(const float* const* a, const float* const* b,
                                                          int64_t C, int64_t W, float* __restrict right,
                                                          float* __restrict down, float* __restrict down_right,
                                                          float* __restrict down_left) {
  const int64_t channels = kChannels > 0 ? kChannels : C;
#pragma omp simd
  for (int64_t x = 0; x < W - 1; ++x) {
    float sum = 0.0f;
    for (int64_t c = 0; c < channels; ++c) {
      const float d = a[c][x] - a[c][x + 1];
      sum += d * d;
    }
    right[x + 1] = sum;
  }
  if (b == nullptr) return;
#pragma omp simd
  for (int64_t x = 0; x < W; ++x) {
    float sum = 0.0f;
    for (int64_t c = 0; c < channels; ++c) {
      const float d = a[c][x] - b[c][x];
      sum += d * d;
    }
    down[x + 1] = sum;
  }
#pragma omp simd
  for (int64_t x = 0; x < W - 1; ++x) {
    float sum = 0.0f;
    for (int64_t c = 0; c < channels; ++c) {
      const float d = a[c][x] - b[c][x + 1];
      sum += d * d;
    }
    down_right[x + 1] = sum;
  }
#pragma omp simd
  for (int64_t x = 1; x < W; ++x) {
    float sum = 0.0f;
    for (int64_t c = 0; c < channels; ++c) {
      const float d = a[c][x] - b[c][x - 1];
      sum += d * d;
    }
    down_left[x + 1] = sum;
  }
}

MMSR_VECTOR_CLONES
void row_pairs_rgb(const float* const* a, const float* const* b, int64_t W, float* right, float* down,
                   float* down_right, float* down_left) {
  row_pairs_impl<3>(a, b, 3, W, right, down, down_right, down_left);
}

MMSR_VECTOR_CLONES
void row_pairs_any(const float* const* a, const float* const* b, int64_t C, int64_t W, float* right, float* down,
                   float* down_right, float* down_left) {
  row_pairs_impl<0>(a, b, C, W, right, down, down_right, down_left);
}

void row_pairs(const float* const* a, const float* const* b, int64_t C, int64_t W, float* right, float* down,
               float* down_right, float* down_left) {
  if (C == 3) {
    row_pairs_rgb(a, b, W, right, down, down_right, down_left);
  } else {
    row_pairs_any(a, b, C, W, right, down, down_right, down_left);
  }
}

// Finishes one row: VSP per pixel from the eight pair sums, optionally stored; returns the sum of
// the VSP values at or above the threshold.
MMSR_VECTOR_CLONES
float finish_row(const float* __restrict right, const float* __restrict down,
                 const float* __restrict down_right, const float* __restrict down_left,
                 const float* __restrict up, const float* __restrict up_left,
                 const float* __restrict up_right, int64_t W, float threshold, float* __restrict vsp_row) {
  // up_left[x] holds the (y-1, x-1)-(y, x) pair; up_right[x + 2] the (y-1, x+1)-(y, x) pair.
  float kept = 0.0f;
  if (vsp_row != nullptr) {
#pragma omp simd reduction(+ : kept)
    for (int64_t x = 0; x < W; ++x) {
      const float v = right[x + 1] + right[x] + down[x + 1] + up[x + 1] + down_right[x + 1] + up_left[x] +
                      down_left[x + 1] + up_right[x + 2];
      vsp_row[x] = v;
      kept += v >= threshold ? v : 0.0f;
    }
    return kept;
  }
#pragma omp simd reduction(+ : kept)
  for (int64_t x = 0; x < W; ++x) {
    const float v = right[x + 1] + right[x] + down[x + 1] + up[x + 1] + down_right[x + 1] + up_left[x] +
                    down_left[x + 1] + up_right[x + 2];
    kept += v >= threshold ? v : 0.0f;
  }
  return kept;
}

// Rows of one image in float, converted once per row; float32 input is read in place.
class RowReader {
 public:
  RowReader(const TvatParams& p, int64_t image)
      : p_(p), base_(image * p.C * p.H * p.W), buffers_(p.dtype == DType::Float32 ? 0 : 2 * p.C * p.W) {}

  // Pointers to row y of every channel; valid until the next call with a different slot.
  void load(int64_t y, int slot, const float** rows) {
    for (int64_t c = 0; c < p_.C; ++c) {
      const int64_t offset = base_ + (c * p_.H + y) * p_.W;
      if (p_.dtype == DType::Float32) {
        rows[c] = static_cast<const float*>(p_.x) + offset;
      } else {
        float* dst = buffers_.data() + (slot * p_.C + c) * p_.W;
        load_unit_floats(p_.x, p_.dtype, offset, p_.W, dst);
        rows[c] = dst;
      }
    }
  }

 private:
  const TvatParams& p_;
  int64_t base_;
  std::vector<float> buffers_;
};

// VSP rows [y0, y1) of one image; returns the thresholded sum in double.
double tvat_chunk(const TvatParams& p, int64_t image, int64_t y0, int64_t y1) {
  const int64_t W = p.W, padded = W + 2;
  std::vector<float> scratch(7 * padded);
  float* right = scratch.data();
  float* down = right + padded;
  float* down_right = down + padded;
  float* down_left = down_right + padded;
  float* up = down_left + padded;
  float* up_left = up + padded;
  float* up_right = up_left + padded;
  std::vector<const float*> rows(2 * p.C);
  const float** cur = rows.data();
  const float** next = rows.data() + p.C;
  RowReader reader(p, image);
  int slot = 0;

  if (y0 > 0) {  // the pairs between rows y0-1 and y0 belong to this chunk's first row too
    reader.load(y0 - 1, slot, cur);
    reader.load(y0, 1 - slot, next);
    row_pairs(cur, next, p.C, W, right, up, up_left, up_right);
    std::swap(cur, next);
    slot = 1 - slot;
  } else {
    reader.load(0, slot, cur);
  }

  double total = 0.0;
  for (int64_t y = y0; y < y1; ++y) {
    const bool has_next = y + 1 < p.H;
    if (has_next) {
      reader.load(y + 1, 1 - slot, next);
    } else {  // the last row has no downward pairs
      for (float* pairs : {down, down_right, down_left}) std::fill(pairs, pairs + padded, 0.0f);
    }
    row_pairs(cur, has_next ? next : nullptr, p.C, W, right, down, down_right, down_left);
    float* vsp_row = p.vsp != nullptr ? p.vsp + (image * p.H + y) * W : nullptr;
    total += finish_row(right, down, down_right, down_left, up, up_left, up_right, W, p.threshold, vsp_row);
    // This row's downward pairs are the next row's upward ones.
    std::swap(down, up);
    std::swap(down_right, up_left);
    std::swap(down_left, up_right);
    std::swap(cur, next);
    slot = 1 - slot;
  }
  return total;
}

}  // namespace

void tvat(const TvatParams& p) {
  require(p.x != nullptr || p.B * p.C * p.H * p.W == 0, "tvat: x is null");
  require(p.B >= 0 && p.C >= 1 && p.H >= 1 && p.W >= 1, "tvat: expects B >= 0 and C, H, W >= 1");
  if (p.B == 0) return;
  const int threads = std::max(1, p.num_threads);
  // Enough chunks per image that a single large image still feeds every thread, but no chunk
  // shorter than 16 rows, where recomputing its first row's upward pairs starts to cost.
  const int64_t wanted = (4 * threads + p.B - 1) / p.B;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(wanted, p.H / 16));
  const int64_t rows_per_chunk = (p.H + chunks - 1) / chunks;
  const int64_t items = p.B * chunks;
  std::vector<double> partial(items, 0.0);

#if defined(MMSR_WITH_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
  for (int64_t item = 0; item < items; ++item) {
    const int64_t image = item / chunks, chunk = item % chunks;
    const int64_t y0 = chunk * rows_per_chunk, y1 = std::min(p.H, y0 + rows_per_chunk);
    if (y0 < y1) partial[item] = tvat_chunk(p, image, y0, y1);
  }

  if (p.score == nullptr) return;
  const double pixels = static_cast<double>(p.H) * static_cast<double>(p.W);
  for (int64_t image = 0; image < p.B; ++image) {  // fixed order: the result is deterministic
    double sum = 0.0;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) sum += partial[image * chunks + chunk];
    p.score[image] = static_cast<float>(sum / pixels);
  }
}

}  // namespace mmsr::cpu

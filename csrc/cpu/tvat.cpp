// VSP and TVAT on the CPU.
//
// Every neighbour pair (p, q) contributes the same squared difference to VSP(p) and VSP(q). Each
// row is one pass over its pixels: a pixel computes its pairs within the row (left, right) and to
// the row below (down, down-left, down-right), keeps the three downward ones for the next row, and
// adds the three upward ones the row above kept for it. One pass loads each input row once per use
// and writes three short arrays, where five passes over per-direction arrays were bound by loads
// and stores. Rows are split into chunks so that one large image keeps every thread busy.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "mmsr/cpu_util.h"
#include "mmsr/ops.h"

namespace mmsr::cpu {
namespace {

// The downward pair sums one row leaves for the next, laid out so that the next row reads them at
// its own pixel index with no edge cases: for pixel x of the next row,
//   up[x + 1]       the pair with (y, x)          (written as down at index x + 1)
//   up_left[x + 1]  the pair with (y, x - 1)      (written as down-right of x - 1 at index x + 1)
//   up_right[x + 1] the pair with (y, x + 1)      (written as down-left of x + 1 at index x + 1)
// Entries no pixel writes (0 and W + 1, and 1 of up_left, W of up_right) stay zero.
struct PairRows {
  float* down;
  float* down_right;
  float* down_left;
};

// `value` where `keep`, else +0.0, by masking its bits. A conditional expression vectorises too,
// but GCC 12 then made 64-pixel rows 1.5x slower; multiplying by 0 or 1 would turn a non-finite
// value from outside the row into NaN.
MMSR_ALWAYS_INLINE float keep_if(bool keep, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  bits &= 0u - static_cast<uint32_t>(keep);
  std::memcpy(&value, &bits, sizeof bits);
  return value;
}

// One row: `a` holds row y of every channel, `b` row y + 1 (unused unless kHasNext). Reads one float
// beyond either end of each row (RowReader guarantees it is readable); the pairs that would leave the
// image are masked to zero. With kFinish, returns the sum of this row's VSP values at or above the
// threshold (and with kStore also stores them in vsp_row); without, only leaves the downward pairs
// (of the row above a chunk's first row). Every choice is a template argument: a branch in the loop
// body would keep it from being vectorised.
template <int kChannels, bool kHasNext, bool kFinish, bool kStore>  // kChannels 0: known only at run time
MMSR_ALWAYS_INLINE float row_impl(const float* const* __restrict a, const float* const* __restrict b, int64_t C, int64_t W,
                                  const float* __restrict up, const float* __restrict up_left,
                                  const float* __restrict up_right, float* __restrict down,
                                  float* __restrict down_right, float* __restrict down_left, float threshold,
                                  float* __restrict vsp_row) {
  // With the channel count known, the row pointers are copied into locals: the vectoriser does not
  // hoist loads of a[c] out of the loop by itself, and then gives up on it.
  constexpr int kLocal = kChannels > 0 ? kChannels : 1;
  const float* ar[kLocal];
  const float* br[kLocal];
  if (kChannels > 0) {
    for (int c = 0; c < kChannels; ++c) {
      ar[c] = a[c];
      br[c] = kHasNext ? b[c] : nullptr;
    }
  }
  const int64_t channels = kChannels > 0 ? kChannels : C;
  float kept = 0.0f;
#pragma omp simd reduction(+ : kept)
  for (int64_t x = 0; x < W; ++x) {
    float left = 0.0f, right = 0.0f, d = 0.0f, dr = 0.0f, dl = 0.0f;
    for (int64_t c = 0; c < channels; ++c) {
      const float* ac = kChannels > 0 ? ar[c] : a[c];
      const float centre = ac[x];
      if (kFinish) {
        const float l = ac[x - 1] - centre, r = centre - ac[x + 1];
        left += l * l;
        right += r * r;
      }
      if (kHasNext) {
        const float* bc = kChannels > 0 ? br[c] : b[c];
        const float v = centre - bc[x], vr = centre - bc[x + 1], vl = centre - bc[x - 1];
        d += v * v;
        dr += vr * vr;
        dl += vl * vl;
      }
    }
    const bool inner_left = x > 0, inner_right = x < W - 1;
    dr = keep_if(inner_right, dr);
    dl = keep_if(inner_left, dl);
    if (kHasNext) {
      down[x + 1] = d;
      down_right[x + 2] = dr;
      down_left[x] = dl;
    }
    if (kFinish) {
      const float v = keep_if(inner_right, right) + keep_if(inner_left, left) + d + up[x + 1] + dr +
                      up_left[x + 1] + dl + up_right[x + 1];
      if (kStore) vsp_row[x] = v;
      // VSP * [VSP >= threshold] as IEEE arithmetic has it: a NaN VSP is kept (NaN * 0 is NaN).
      kept += keep_if(!(v < threshold), v);
    }
  }
  return kept;
}

using RowFn = float (*)(const float* const*, const float* const*, int64_t, int64_t, const PairRows&, const PairRows&,
                        float, float*);

// One function per variant, each compiled for every vector target (the clone is picked per call).
// Channel counts 1 to 4 (grey, grey + alpha, RGB, RGBA) get their channel loop unrolled; the vectoriser
// gives up on the run-time count (kChannels 0), which serves any other C.
#define MMSR_TVAT_ROW(NAME, CH, NEXT, FINISH, STORE)                                                     \
  MMSR_VECTOR_CLONES float NAME(const float* const* a, const float* const* b, int64_t C, int64_t W,     \
                                const PairRows& up, const PairRows& out, float threshold, float* vsp) {  \
    return row_impl<CH, NEXT, FINISH, STORE>(a, b, C, W, up.down, up.down_right, up.down_left, out.down,   \
                                             out.down_right, out.down_left, threshold, vsp);             \
  }
#define MMSR_TVAT_ROWS(SUFFIX, CH)                          \
  MMSR_TVAT_ROW(row_##SUFFIX, CH, true, true, false)          \
  MMSR_TVAT_ROW(row_##SUFFIX##_vsp, CH, true, true, true)     \
  MMSR_TVAT_ROW(row_##SUFFIX##_last, CH, false, true, false)  \
  MMSR_TVAT_ROW(row_##SUFFIX##_last_vsp, CH, false, true, true) \
  MMSR_TVAT_ROW(row_##SUFFIX##_pairs, CH, true, false, false)
MMSR_TVAT_ROWS(c1, 1)
MMSR_TVAT_ROWS(c2, 2)
MMSR_TVAT_ROWS(c3, 3)
MMSR_TVAT_ROWS(c4, 4)
MMSR_TVAT_ROWS(any, 0)
#undef MMSR_TVAT_ROWS
#undef MMSR_TVAT_ROW

// The row functions one chunk calls: a row with a row below it, the image's last row, and the
// pairs-only pass over the row above a chunk.
struct RowFns {
  RowFn row, last, pairs;
};

#define MMSR_TVAT_FNS(SUFFIX)                                                                   \
  (store_vsp ? RowFns{row_##SUFFIX##_vsp, row_##SUFFIX##_last_vsp, row_##SUFFIX##_pairs}         \
             : RowFns{row_##SUFFIX, row_##SUFFIX##_last, row_##SUFFIX##_pairs})

RowFns row_fns(int64_t channels, bool store_vsp) {
  switch (channels) {
    case 1: return MMSR_TVAT_FNS(c1);
    case 2: return MMSR_TVAT_FNS(c2);
    case 3: return MMSR_TVAT_FNS(c3);
    case 4: return MMSR_TVAT_FNS(c4);
    default: return MMSR_TVAT_FNS(any);
  }
}
#undef MMSR_TVAT_FNS

// Rows of one image in float, with one readable float just before and just after each row (see
// row_pairs_impl). float32 rows are read in place, where the neighbours are the adjacent rows'
// elements, except the very first and very last row of the whole tensor, which are copied into a
// padded buffer; other dtypes are converted into padded buffers, uint8 as grey levels (0..255).
class RowReader {
 public:
  RowReader(const TvatParams& p, int64_t image)
      : p_(p), base_(image * p.C * p.H * p.W), stride_(p.W + 2), buffers_(2 * p.C * stride_, 0.0f),
        last_(p.B * p.C * p.H * p.W - p.W), ahead_(prefetch_rows(p)) {}

  // Pointers to row y of every channel; valid until the next call with a different slot.
  void load(int64_t y, int slot, const float** rows) {
    for (int64_t c = 0; c < p_.C; ++c) {
      const int64_t offset = base_ + (c * p_.H + y) * p_.W;
      if (y + ahead_ < p_.H) prefetch(offset + ahead_ * p_.W);
      if (p_.dtype == DType::Float32 && offset != 0 && offset != last_) {
        rows[c] = static_cast<const float*>(p_.x) + offset;
      } else {
        float* dst = buffers_.data() + (slot * p_.C + c) * stride_ + 1;
        if (p_.dtype == DType::UInt8) {  // grey levels, where every VSP is exact (common.h)
          uint8_to_levels(static_cast<const uint8_t*>(p_.x) + offset, p_.W, dst);
        } else {
          load_unit_floats(p_.x, p_.dtype, offset, p_.W, dst);
        }
        rows[c] = dst;
      }
    }
  }

 private:
  const TvatParams& p_;
  int64_t base_;
  int64_t stride_;
  std::vector<float> buffers_;
  int64_t last_;  // offset of the tensor's last row
  int64_t ahead_;

  // Rows of one channel are fetched about 4 KB before they are read: the hardware prefetcher starts
  // late on each of the C short streams of a small tile (measured on 64x64 tiles: 2.7 -> 2.2 ms per
  // 1024; 1 KB and 16 KB ahead were slower).
  static int64_t prefetch_rows(const TvatParams& p) {
    constexpr int64_t kAheadBytes = 4096;
    const int64_t row_bytes = p.W * dtype_size(p.dtype);
    return std::max<int64_t>(1, (kAheadBytes + row_bytes - 1) / row_bytes);
  }
  void prefetch(int64_t offset) const {
    const char* base = static_cast<const char*>(p_.x) + offset * dtype_size(p_.dtype);
    const int64_t bytes = p_.W * dtype_size(p_.dtype);
    for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(base + i);
  }
};

// VSP rows [y0, y1) of one image; returns the thresholded sum in double (in levels^2 for uint8).
double tvat_chunk(const TvatParams& p, int64_t image, int64_t y0, int64_t y1) {
  const int64_t W = p.W, padded = W + 2;
  const float threshold = kernel_threshold(p.dtype, p.threshold);  // levels^2 for uint8
  const bool levels = p.dtype == DType::UInt8;
  const RowFns fn = row_fns(p.C, p.vsp != nullptr);
  std::vector<float> scratch(6 * padded, 0.0f);
  PairRows up{scratch.data(), scratch.data() + padded, scratch.data() + 2 * padded};
  PairRows down{scratch.data() + 3 * padded, scratch.data() + 4 * padded, scratch.data() + 5 * padded};
  std::vector<const float*> rows(2 * p.C);
  const float** cur = rows.data();
  const float** next = rows.data() + p.C;
  RowReader reader(p, image);
  int slot = 0;

  if (y0 > 0) {  // the pairs between rows y0-1 and y0 belong to this chunk's first row too
    reader.load(y0 - 1, slot, cur);
    reader.load(y0, 1 - slot, next);
    fn.pairs(cur, next, p.C, W, down, up, threshold, nullptr);  // leaves its pairs in `up`
    std::swap(cur, next);
    slot = 1 - slot;
  } else {
    reader.load(0, slot, cur);
  }

  double total = 0.0;
  for (int64_t y = y0; y < y1; ++y) {
    const bool has_next = y + 1 < p.H;
    float* vsp_row = p.vsp != nullptr ? p.vsp + (image * p.H + y) * W : nullptr;
    if (has_next) {
      reader.load(y + 1, 1 - slot, next);
      total += fn.row(cur, next, p.C, W, up, down, threshold, vsp_row);
    } else {
      total += fn.last(cur, nullptr, p.C, W, up, down, threshold, vsp_row);
    }
    if (levels && vsp_row != nullptr) {  // exact levels^2 -> [0, 1] units, correctly rounded
      for (int64_t x = 0; x < W; ++x) vsp_row[x] = vsp_row[x] / static_cast<float>(kUint8LevelsSquared);
    }
    std::swap(up, down);  // this row's downward pairs are the next row's upward ones
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

  // Each thread takes runs of consecutive items, so that it streams through contiguous memory (many
  // small tiles one at a time, alternating between threads, left the hardware prefetcher behind).
  [[maybe_unused]] const int64_t grain = std::max<int64_t>(1, items / (8 * threads));

#if defined(MMSR_WITH_OPENMP)
#pragma omp parallel for schedule(dynamic, grain) num_threads(threads)
#endif
  for (int64_t item = 0; item < items; ++item) {
    const int64_t image = item / chunks, chunk = item % chunks;
    const int64_t y0 = chunk * rows_per_chunk, y1 = std::min(p.H, y0 + rows_per_chunk);
    if (y0 < y1) partial[item] = tvat_chunk(p, image, y0, y1);
  }

  if (p.score == nullptr) return;
  // uint8 sums are in levels^2 (see tvat_chunk).
  const double divisor = static_cast<double>(p.H) * static_cast<double>(p.W) *
                         (p.dtype == DType::UInt8 ? kUint8LevelsSquared : 1.0);
  for (int64_t image = 0; image < p.B; ++image) {  // fixed order: the result is deterministic
    double sum = 0.0;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) sum += partial[image * chunks + chunk];
    p.score[image] = static_cast<float>(sum / divisor);
  }
}

}  // namespace mmsr::cpu

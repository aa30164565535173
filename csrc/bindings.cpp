// The only file that knows pybind11: exposes the kernels of mmsr/ops.h as mmsr._core.
//
// Buffers cross the boundary as integer addresses (tensor.data_ptr()) because the core does not
// link libtorch; mmsr/_ops.py owns allocation, contiguity and validation. Every entry point
// releases the GIL while it computes.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <vector>

#include "mmsr/ops.h"

#if defined(MMSR_WITH_OPENMP)
#include <omp.h>
#endif

namespace py = pybind11;
using mmsr::Blend;
using mmsr::DType;

namespace {

template <typename T>
T* as_ptr(uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

DType as_dtype(int code) {
  mmsr::require(code >= 0 && code <= 3, "dtype code must be 0 (uint8), 1 (float16), 2 (bfloat16) or 3 (float32)");
  return static_cast<DType>(code);
}

Blend as_blend(int code) {
  mmsr::require(code >= 0 && code <= 2, "blend code must be 0 (mean), 1 (linear) or 2 (cosine)");
  return static_cast<Blend>(code);
}

mmsr::TvatParams tvat_params(uintptr_t x, uintptr_t vsp, uintptr_t score, int64_t B, int64_t C, int64_t H,
                             int64_t W, int dtype, double threshold, int threads) {
  return {as_ptr<const void>(x), as_ptr<float>(vsp), as_ptr<float>(score), B, C, H, W, as_dtype(dtype),
          threshold, threads};
}

mmsr::TileParams tile_params(uintptr_t x, uintptr_t tiles, int64_t B, int64_t C, int64_t H, int64_t W,
                             int64_t elem_size, int64_t tile_size, int64_t overlap, int threads) {
  return {as_ptr<const void>(x), as_ptr<void>(tiles), B, C, H, W, elem_size, tile_size, overlap, threads};
}

mmsr::StitchParams stitch_params(uintptr_t tiles, uintptr_t out, int64_t B, int64_t C, int64_t H, int64_t W,
                                 int64_t tile_size, int64_t overlap, int64_t scale, int dtype, int blend,
                                 int threads) {
  return {as_ptr<const void>(tiles), as_ptr<void>(out), B, C, H, W, tile_size, overlap, scale,
          as_dtype(dtype), as_blend(blend), threads};
}

py::dict build_info() {
  py::dict info;
  info["version"] = MMSR_VERSION;
#if defined(MMSR_WITH_CUDA)
  info["cuda"] = true;
  info["cuda_archs"] = MMSR_CUDA_ARCHS;
#else
  info["cuda"] = false;
  info["cuda_archs"] = "";
#endif
#if defined(MMSR_WITH_OPENMP)
  info["openmp"] = true;
  info["openmp_max_threads"] = omp_get_max_threads();
#else
  info["openmp"] = false;
  info["openmp_max_threads"] = 1;
#endif
  return info;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "mmsr native kernels (CPU always, CUDA when compiled in). Use mmsr.ops, not this module.";
  m.def("build_info", &build_info, "How this module was compiled.");
  const auto release = py::call_guard<py::gil_scoped_release>();

  m.def(
      "tvat_cpu",
      [](uintptr_t x, uintptr_t vsp, uintptr_t score, int64_t B, int64_t C, int64_t H, int64_t W, int dtype,
         double threshold, int threads) {
        mmsr::cpu::tvat(tvat_params(x, vsp, score, B, C, H, W, dtype, threshold, threads));
      },
      py::arg("x"), py::arg("vsp"), py::arg("score"), py::arg("B"), py::arg("C"), py::arg("H"), py::arg("W"),
      py::arg("dtype"), py::arg("threshold"), py::arg("threads"), release);
  m.def(
      "tile_cpu",
      [](uintptr_t x, uintptr_t tiles, int64_t B, int64_t C, int64_t H, int64_t W, int64_t elem_size,
         int64_t tile_size, int64_t overlap, int threads) {
        mmsr::cpu::tile(tile_params(x, tiles, B, C, H, W, elem_size, tile_size, overlap, threads));
      },
      py::arg("x"), py::arg("tiles"), py::arg("B"), py::arg("C"), py::arg("H"), py::arg("W"),
      py::arg("elem_size"), py::arg("tile_size"), py::arg("overlap"), py::arg("threads"), release);
  m.def(
      "stitch_cpu",
      [](uintptr_t tiles, uintptr_t out, int64_t B, int64_t C, int64_t H, int64_t W, int64_t tile_size,
         int64_t overlap, int64_t scale, int dtype, int blend, int threads) {
        mmsr::cpu::stitch(stitch_params(tiles, out, B, C, H, W, tile_size, overlap, scale, dtype, blend, threads));
      },
      py::arg("tiles"), py::arg("out"), py::arg("B"), py::arg("C"), py::arg("H"), py::arg("W"),
      py::arg("tile_size"), py::arg("overlap"), py::arg("scale"), py::arg("dtype"), py::arg("blend"),
      py::arg("threads"), release);
  m.def(
      "classify_cpu",
      [](uintptr_t scores, uintptr_t classes, int64_t N, std::vector<float> boundaries, int threads) {
        mmsr::cpu::classify({as_ptr<const float>(scores), as_ptr<int64_t>(classes), N, std::move(boundaries), threads});
      },
      py::arg("scores"), py::arg("classes"), py::arg("N"), py::arg("boundaries"), py::arg("threads"), release);

#if defined(MMSR_WITH_CUDA)
  m.def("tvat_workspace_floats", &mmsr::cuda::tvat_workspace_floats, py::arg("B"), py::arg("H"), py::arg("W"));
  m.def(
      "tvat_cuda",
      [](uintptr_t x, uintptr_t vsp, uintptr_t score, int64_t B, int64_t C, int64_t H, int64_t W, int dtype,
         double threshold, uintptr_t workspace, int device, uintptr_t stream) {
        mmsr::cuda::tvat(tvat_params(x, vsp, score, B, C, H, W, dtype, threshold, 1), as_ptr<float>(workspace),
                         {device, stream});
      },
      py::arg("x"), py::arg("vsp"), py::arg("score"), py::arg("B"), py::arg("C"), py::arg("H"), py::arg("W"),
      py::arg("dtype"), py::arg("threshold"), py::arg("workspace"), py::arg("device"), py::arg("stream"), release);
  m.def(
      "tile_cuda",
      [](uintptr_t x, uintptr_t tiles, int64_t B, int64_t C, int64_t H, int64_t W, int64_t elem_size,
         int64_t tile_size, int64_t overlap, int device, uintptr_t stream) {
        mmsr::cuda::tile(tile_params(x, tiles, B, C, H, W, elem_size, tile_size, overlap, 1), {device, stream});
      },
      py::arg("x"), py::arg("tiles"), py::arg("B"), py::arg("C"), py::arg("H"), py::arg("W"),
      py::arg("elem_size"), py::arg("tile_size"), py::arg("overlap"), py::arg("device"), py::arg("stream"), release);
  m.def(
      "stitch_cuda",
      [](uintptr_t tiles, uintptr_t out, int64_t B, int64_t C, int64_t H, int64_t W, int64_t tile_size,
         int64_t overlap, int64_t scale, int dtype, int blend, int device, uintptr_t stream) {
        mmsr::cuda::stitch(stitch_params(tiles, out, B, C, H, W, tile_size, overlap, scale, dtype, blend, 1),
                           {device, stream});
      },
      py::arg("tiles"), py::arg("out"), py::arg("B"), py::arg("C"), py::arg("H"), py::arg("W"),
      py::arg("tile_size"), py::arg("overlap"), py::arg("scale"), py::arg("dtype"), py::arg("blend"),
      py::arg("device"), py::arg("stream"), release);
  m.def(
      "classify_cuda",
      [](uintptr_t scores, uintptr_t classes, int64_t N, std::vector<float> boundaries, int device, uintptr_t stream) {
        mmsr::cuda::classify({as_ptr<const float>(scores), as_ptr<int64_t>(classes), N, std::move(boundaries), 1},
                             {device, stream});
      },
      py::arg("scores"), py::arg("classes"), py::arg("N"), py::arg("boundaries"), py::arg("device"),
      py::arg("stream"), release);
#endif
}

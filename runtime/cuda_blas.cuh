// cuBLAS, opened on first use. Linking it would map libcublas and libcublasLt (about 150 MB of
// resident memory, measured) into every process at start-up, CPU runs included; the CUDA ops
// instead dlopen it when a device is first used. For runtime/*.cu only.
#pragma once
#include <cublas_v2.h>

namespace dsg {

// The cuBLAS entry points DSG calls.
struct CublasApi {
  cublasStatus_t (*create)(cublasHandle_t* handle);
  cublasStatus_t (*sgemm)(cublasHandle_t handle, cublasOperation_t trans_a, cublasOperation_t trans_b, int m, int n,
                          int k, const float* alpha, const float* a, int lda, const float* b, int ldb,
                          const float* beta, float* c, int ldc);
  const char* (*status_string)(cublasStatus_t status);
};

// Loads cuBLAS once, from the first of: $DSG_CUBLAS_LIB (a libcublas.so file or a folder holding
// one), the loader's search (LD_LIBRARY_PATH, ld.so.cache), /usr/local/cuda/lib64 and
// /usr/local/cuda/targets/*/lib; libcublas.so.<header major> first, then 13 or 12. Logs the file
// it loaded; throws dsg::Error listing every place tried when none loads or a symbol is missing.
// (PyTorch's nvidia-cublas is found by the scripts, which run python3 and set DSG_CUBLAS_LIB.)
const CublasApi& cublas_api();

}  // namespace dsg

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

// Loads libcublas.so.<major> (through the usual library search: LD_LIBRARY_PATH, the rpath, the
// system) once; throws dsg::Error naming the library and the loader's message when it or one of
// its symbols is missing.
const CublasApi& cublas_api();

}  // namespace dsg

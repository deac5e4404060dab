#include "runtime/cuda_blas.cuh"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "runtime/error.hpp"

namespace dsg {
namespace {

template <class Fn>
void resolve(void* library, const char* symbol, const std::string& name, Fn*& out) {
  out = reinterpret_cast<Fn*>(dlsym(library, symbol));
  if (!out) throw Error(name + " has no symbol " + symbol, "install a cuBLAS matching CUDA " + std::to_string(CUBLAS_VER_MAJOR));
}

CublasApi load() {
  const std::string name = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  void* library = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    const char* why = dlerror();
    throw Error("cannot load " + name + ": " + (why ? why : "unknown error"),
                "put the CUDA toolkit's (or PyTorch's nvidia-cublas) library directory on LD_LIBRARY_PATH");
  }
  CublasApi api{};
  resolve(library, "cublasCreate_v2", name, api.create);
  resolve(library, "cublasSgemm_v2", name, api.sgemm);
  resolve(library, "cublasGetStatusString", name, api.status_string);
  return api;  // the library stays loaded for the life of the process
}

}  // namespace

const CublasApi& cublas_api() {
  static std::once_flag once;
  static CublasApi api{};
  std::call_once(once, [] { api = load(); });
  return api;
}

}  // namespace dsg

#include "runtime/cuda_blas.cuh"

#include <dlfcn.h>
#include <glob.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/log.hpp"

namespace dsg {
namespace {

template <class Fn>
void resolve(void* library, const char* symbol, const std::string& name, Fn*& out) {
  out = reinterpret_cast<Fn*>(dlsym(library, symbol));
  if (!out) throw Error(name + " has no symbol " + symbol, "install a cuBLAS matching CUDA " + std::to_string(CUBLAS_VER_MAJOR));
}

// The file names tried in a folder: the major version of the headers first, then the other one
// whose entry points DSG uses unchanged (cuBLAS 12 and 13 share them).
std::vector<std::string> sonames() {
  std::vector<std::string> names{"libcublas.so." + std::to_string(CUBLAS_VER_MAJOR)};
  for (int major : {13, 12})
    if (major != CUBLAS_VER_MAJOR) names.push_back("libcublas.so." + std::to_string(major));
  return names;
}

// The candidates, in order:
//   1. $DSG_CUBLAS_LIB: a library file, or a folder holding libcublas.so.<major>
//      (scripts/gpu_check.sh and gpu_bench.sh set it to PyTorch's nvidia-cublas when found);
//   2. the loader's own search (LD_LIBRARY_PATH, ld.so.cache, the system folders);
//   3. /usr/local/cuda/lib64;
//   4. /usr/local/cuda/targets/*/lib.
std::vector<std::string> candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("DSG_CUBLAS_LIB"); env && *env) {
    std::string v(env);
    if (v.find(".so") != std::string::npos) out.push_back(v);
    else for (const auto& name : sonames()) out.push_back(v + "/" + name);
  }
  for (const auto& name : sonames()) out.push_back(name);
  for (const auto& name : sonames()) out.push_back("/usr/local/cuda/lib64/" + name);
  glob_t g{};
  if (glob("/usr/local/cuda/targets/*/lib", 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i)
      for (const auto& name : sonames()) out.push_back(std::string(g.gl_pathv[i]) + "/" + name);
  }
  globfree(&g);
  return out;
}

CublasApi load() {
  std::string tried;
  void* library = nullptr;
  std::string chosen;
  for (const auto& candidate : candidates()) {
    // A file given by path: load its libcublasLt from the same folder first, so that the loader
    // finds that dependency by its soname even when the folder is on no search path.
    if (auto slash = candidate.rfind('/'); slash != std::string::npos) {
      std::string lt = candidate;
      if (auto at = lt.find("libcublas.so", slash); at != std::string::npos) {
        lt.replace(at, 12, "libcublasLt.so");
        dlopen(lt.c_str(), RTLD_NOW | RTLD_GLOBAL);  // absent or unloadable: the next dlopen says so
      }
    }
    library = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library) {
      chosen = candidate;
      break;
    }
    const char* why = dlerror();
    tried += "\n  " + candidate + ": " + (why ? why : "not found");
  }
  if (!library) {
    throw Error("cannot load cuBLAS; tried:" + tried,
                "set DSG_CUBLAS_LIB to a libcublas.so file (PyTorch's nvidia-cublas has one), or put the CUDA "
                "toolkit's library folder on LD_LIBRARY_PATH");
  }
  CublasApi api{};
  resolve(library, "cublasCreate_v2", chosen, api.create);
  resolve(library, "cublasSgemm_v2", chosen, api.sgemm);
  resolve(library, "cublasGetStatusString", chosen, api.status_string);
  // The file the loader really mapped (a bare name resolves through the search path).
  std::string where = chosen;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(api.sgemm), &info) && info.dli_fname) where = info.dli_fname;
  // The version, through cublasGetProperty (it needs no handle).
  using GetProperty = cublasStatus_t(libraryPropertyType, int*);
  auto* get_property = reinterpret_cast<GetProperty*>(dlsym(library, "cublasGetProperty"));
  std::string version_text;
  if (get_property) {
    int major = 0, minor = 0, patch = 0;
    if (get_property(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
        get_property(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
        get_property(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
      version_text = " (cuBLAS " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch) + ")";
  }
  log_info("cuBLAS loaded from " + where + version_text);
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

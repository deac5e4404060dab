// BLAS kernel selection for DSG's tools. Debian's OpenBLAS 0.3.21 does not know recent AVX-512
// CPUs (AMD Zen 4/5, newer Intel) and falls back to its AVX2 ("Haswell") kernels; its SkylakeX
// kernels measured 25-30% faster on LeNet's GEMMs there. OpenBLAS reads OPENBLAS_CORETYPE only
// when it is loaded, so the tool sets the variable and re-executes itself once, first thing.
//   DSG_BLAS_CORETYPE=auto     (default) SkylakeX on CPUs with AVX-512 F/BW/DQ/VL, replacing any
//                              inherited OPENBLAS_CORETYPE; otherwise leave OpenBLAS alone
//   DSG_BLAS_CORETYPE=inherit  keep the environment's OPENBLAS_CORETYPE (or OpenBLAS's own choice)
//   DSG_BLAS_CORETYPE=NAME     use OpenBLAS core type NAME
#pragma once
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace dsg::apps {

inline void select_fast_blas_kernels(char** argv) {
  if (std::getenv("DSG_BLAS_SELECTED")) return;  // already re-executed
  const char* mode = std::getenv("DSG_BLAS_CORETYPE");
  std::string want = mode ? mode : "auto";
  if (want == "inherit") return;
  if (want == "auto") {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
      return;
    want = "SkylakeX";
  }
  const char* current = std::getenv("OPENBLAS_CORETYPE");
  if (current && want == current) return;
  if (current) ::setenv("DSG_BLAS_INHERITED", current, 1);
  ::setenv("OPENBLAS_CORETYPE", want.c_str(), 1);
  ::setenv("DSG_BLAS_SELECTED", "1", 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: continue with the kernels loaded
}

// One line for the start-up log: which kernels run and why.
inline std::string blas_kernel_note() {
  const char* core = std::getenv("OPENBLAS_CORETYPE");
  const char* inherited = std::getenv("DSG_BLAS_INHERITED");
  std::string s = std::string("BLAS kernels ") + (core ? core : "OpenBLAS default");
  if (inherited) s += std::string(" (replacing inherited OPENBLAS_CORETYPE=") + inherited + "; DSG_BLAS_CORETYPE=inherit keeps it)";
  return s;
}

}  // namespace dsg::apps

// Loading solver configs written by a test and the error a config raises when its solver and
// sparsity schedule are set up (shared by the sparsity and quantization tests).
#pragma once
#include <fstream>
#include <string>

#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/solver.hpp"
#include "sparsity/controller.hpp"
#include "support/sparse_configs.hpp"

namespace dsg::test {

// Writes `text` to DIR/solver.prototxt and loads it.
inline LoadedConfig load_config(const TempDir& dir, const std::string& text) {
  std::string path = dir.file("solver.prototxt");
  std::ofstream(path) << text;
  return load_solver_config(path);
}

inline Context cpu_ctx(uint64_t seed) {
  Context ctx;
  ctx.seed = seed;
  return ctx;
}

// The message of the dsg::Error raised while loading the config or resolving its schedule ("" if none).
inline std::string setup_error(const TempDir& dir, const std::string& text) {
  try {
    LoadedConfig c = load_config(dir, text);
    Solver s(c.solver, c.net_locations, cpu_ctx(7), dir.file("err"));
    install_sparsity(s);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace dsg::test

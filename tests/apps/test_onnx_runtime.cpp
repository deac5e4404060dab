// dsgcompress --format onnx checked by onnxruntime (tests/apps/onnx_runtime_compare.py): the
// --shared-weights export (UINT8 codes) gives the float export's outputs and is smaller; with
// --onnx-normalize the graph takes raw pixels and gives the outputs of the transformed input.
// onnxruntime comes from PyPI: installed into the build directory when /usr/bin/python3 lacks it;
// the test is skipped, with a message, when that fails (no network).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "support/learnable_dataset.hpp"
#include "support/run_tool.hpp"
#include "support/sparse_configs.hpp"

using dsg::test::run_tool;
using dsg::test::TempDir;
namespace fs = std::filesystem;

namespace {

// "PYTHONPATH=... " for a /usr/bin/python3 that imports onnxruntime, or "" with `*ok` false.
std::string onnxruntime_env(bool* ok) {
  const std::string target = std::string(DSG_BINARY_DIR) + "/python-onnxruntime";
  const std::string env = "PYTHONPATH=" + target + " ";
  const std::string probe = env + "/usr/bin/python3 -c 'import numpy, onnxruntime' >/dev/null 2>&1";
  *ok = std::system(probe.c_str()) == 0;
  if (!*ok) {
    // onnxruntime and flatbuffers only (numpy is Debian's python3-numpy): a private directory,
    // so the system's packages stay as they are.
    const std::string install = "/usr/bin/python3 -m pip install --quiet --disable-pip-version-check --no-deps --target " +
                                target + " onnxruntime flatbuffers >/dev/null 2>&1";
    *ok = std::system(install.c_str()) == 0 && std::system(probe.c_str()) == 0;
  }
  return env;
}

std::string run_compare(const std::string& env, const std::string& args, int* status) {
  const std::string cmd = env + "/usr/bin/python3 " + std::string(DSG_SOURCE_DIR) + "/tests/apps/onnx_runtime_compare.py " +
                          args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), pipe)) out.append(buf, n);
  const int st = pclose(pipe);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

}  // namespace

TEST_CASE("ONNX shared weights (UINT8 codes) and input normalization run in onnxruntime", "[apps][onnx][onnxruntime]") {
#ifndef DSG_WITH_ONNX
  WARN("this build has no ONNX export (apt-get install libonnx-dev); skipped");
#else
  TempDir dir;
  dsg::test::write_learnable_idx(dir, 128, 50);
  // Prune ip1 to 85% at 10, k-means ip1 (4 bits) and ip2 (3 bits) at 30, 60 iterations.
  std::string text = dsg::test::tiny_mlp_solver(
      dir.path().string(), 60,
      dsg::test::schedule("phase { mode: PRUNE start_iter: 10 } phase { mode: QUANTIZE start_iter: 30 lr_mult: 0.1 }"));
  text = dsg::test::with_sparsity(text, "ip1", "policy: \"magnitude\" target_sparsity: 0.85");
  text = dsg::test::with_quant(text, "ip1", "bits: 4");
  text = dsg::test::with_quant(text, "ip2", "bits: 3");
  std::ofstream(dir.file("q.prototxt")) << text;
  auto trained = run_tool("dsgtrain", dir.file("q.prototxt") + " --threads 1 --seed 2 --output " + dir.file("q"));
  INFO(trained.output);
  REQUIRE(trained.status == 0);
  const std::string model = dir.file("q/q_iter_60.dsgmodel"), dsgz = dir.file("q.dsgz");
  REQUIRE(run_tool("dsgcompress", model + " -o " + dsgz).status == 0);

  const std::string plain = dir.file("plain.onnx"), shared = dir.file("shared.onnx"), raw = dir.file("raw.onnx");
  for (const std::string& args : {dsgz + " -o " + plain, dsgz + " --shared-weights -o " + shared,
                                  model + " --shared-weights --onnx-normalize -o " + raw}) {
    auto r = run_tool("dsgcompress", args);
    INFO(r.output);
    REQUIRE(r.status == 0);
  }
  // ip1 (144 x 32) and ip2 (32 x 4) as one byte per weight instead of four.
  INFO("float export " << fs::file_size(plain) << " bytes, shared weights " << fs::file_size(shared) << " bytes");
  CHECK(fs::file_size(shared) * 3 < fs::file_size(plain));
  if (std::system("/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1") == 0) {
    // Every weight matrix is a UINT8 initializer in the shared export; none in the float export.
    const std::string count = "/usr/bin/python3 -c 'import onnx,sys; m=onnx.load(sys.argv[1]); "
                              "sys.exit(sum(t.data_type == onnx.TensorProto.UINT8 for t in m.graph.initializer))' ";
    CHECK(WEXITSTATUS(std::system((count + shared).c_str())) == 2);
    CHECK(WEXITSTATUS(std::system((count + plain).c_str())) == 0);
  }

  bool ok = false;
  const std::string env = onnxruntime_env(&ok);
  if (!ok) {
    WARN("onnxruntime is not importable by /usr/bin/python3 and pip could not install it; the outputs were not run");
    return;
  }
  int status = 0;
  std::string out = run_compare(env, plain + " " + shared + " --scale 0.00390625 --tolerance 1e-6", &status);
  INFO(out);
  CHECK(status == 0);
  CHECK_THAT(out, Catch::Contains("max_abs_diff"));
  // The raw-pixel graph against the float export fed (x - mean) * scale (no mean in this config).
  out = run_compare(env, plain + " " + raw + " --raw-other --scale 0.00390625 --tolerance 1e-5", &status);
  INFO(out);
  CHECK(status == 0);
  // The comparison can fail: the float export fed raw pixels differs.
  out = run_compare(env, plain + " " + raw + " --scale 0.00390625 --tolerance 1e-5", &status);
  INFO(out);
  CHECK(status == 1);
#endif
}

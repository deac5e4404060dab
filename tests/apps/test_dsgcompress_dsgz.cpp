// The compression pipeline as a user runs it: dsgtrain (prune -> quantize) -> dsgcompress -o
// MODEL.dsgz -> dsgeval MODEL.dsgz. Checks the per-blob table, the bit-identical round trip
// (dsgcompress --decode), that dsgeval's decoded and compressed-kernel runs give the snapshot's
// accuracy, the JSON cost section, ONNX export, and one-line errors for corrupt files.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include "runtime/model_file.hpp"
#include "support/run_tool.hpp"
#include "support/sparse_configs.hpp"

using dsg::test::last_line;
using dsg::test::run_tool;
using dsg::test::TempDir;
namespace fs = std::filesystem;

namespace {

// Trains the tiny MLP: prune ip1 to 85% at iteration 20, k-means ip1 (4 bits) and ip2 (3 bits) at
// 50, 80 iterations. Returns the final snapshot.
std::string train_quantized(const TempDir& dir) {
  std::string text = dsg::test::tiny_mlp_solver(
      dir.path().string(), 80,
      dsg::test::schedule("phase { mode: PRUNE start_iter: 20 } phase { mode: QUANTIZE start_iter: 50 lr_mult: 0.1 }"));
  text = dsg::test::with_sparsity(text, "ip1", "policy: \"magnitude\" target_sparsity: 0.85");
  text = dsg::test::with_quant(text, "ip1", "bits: 4");
  text = dsg::test::with_quant(text, "ip2", "bits: 3");
  std::ofstream(dir.file("q.prototxt")) << text;
  auto r = run_tool("dsgtrain", dir.file("q.prototxt") + " --threads 1 --seed 2 --output " + dir.file("q"));
  INFO(r.output);
  REQUIRE(r.status == 0);
  std::string model = dir.file("q/q_iter_80.dsgmodel");
  REQUIRE(fs::exists(model));
  return model;
}

// The number following `"key": ` after `anchor` in a JSON text.
double json_number(const std::string& json, const std::string& anchor, const std::string& key) {
  size_t at = json.find(anchor);
  REQUIRE(at != std::string::npos);
  std::smatch m;
  std::string rest = json.substr(at);
  REQUIRE(std::regex_search(rest, m, std::regex("\"" + key + "\": ([-0-9.eE+]+)")));
  return std::stod(m[1]);
}

}  // namespace

TEST_CASE("dsgcompress -> .dsgz -> dsgeval reproduces the quantized model", "[apps][dsgcompress][dsgz]") {
  TempDir dir;
  dsg::test::write_learnable_idx(dir);
  const std::string model = train_quantized(dir);
  const std::string dsgz = dir.file("tiny.dsgz");

  auto c = run_tool("dsgcompress", model + " -o " + dsgz, false);
  INFO(c.output);
  REQUIRE(c.status == 0);
  CHECK_THAT(c.output, Catch::Contains("| ip1/0 | codebook | 4608 |"));
  CHECK_THAT(c.output, Catch::Contains("| ip2/0 | codebook | 128 |"));
  CHECK_THAT(c.output, Catch::Contains("round trip: all 4 blobs decode bit-identical"));
  CHECK(fs::file_size(dsgz) * 5 < fs::file_size(model) / 2);

  // --decode gives back exactly the snapshot's weights.
  auto d = run_tool("dsgcompress", dsgz + " --decode -o " + dir.file("decoded.dsgmodel"));
  REQUIRE(d.status == 0);
  dsg::ModelFile a = dsg::read_model_file(model), b = dsg::read_model_file(dir.file("decoded.dsgmodel"));
  REQUIRE(a.param_size() == b.param_size());
  for (int i = 0; i < a.param_size(); ++i) {
    REQUIRE(a.param(i).blob().data_size() == b.param(i).blob().data_size());
    CHECK(std::memcmp(a.param(i).blob().data().data(), b.param(i).blob().data().data(),
                      sizeof(float) * size_t(a.param(i).blob().data_size())) == 0);
  }

  // dsgeval: the snapshot, the decoded .dsgz and the compressed-kernel run agree.
  auto e0 = run_tool("dsgeval", model + " --threads 1 --json " + dir.file("snap.json"), false);
  auto e1 = run_tool("dsgeval", dsgz + " --threads 1 --json " + dir.file("dsgz.json"), false);
  INFO(e1.output);
  REQUIRE(e0.status == 0);
  REQUIRE(e1.status == 0);
  CHECK_THAT(e1.output, Catch::Contains("EIE-style kernel on the compressed form"));
  CHECK_THAT(e1.output, Catch::Contains("| ip1 | eie-codebook |"));
  CHECK_THAT(e1.output, Catch::Contains("## Cost per sample (EIE 45 nm energy table)"));
  std::ifstream j0(dir.file("snap.json")), j1(dir.file("dsgz.json"));
  std::string snap((std::istreambuf_iterator<char>(j0)), {}), json((std::istreambuf_iterator<char>(j1)), {});
  const double top1 = json_number(snap, "\"classes\"", "top1");
  CHECK(json_number(json, "\"decoded_run\"", "top1") == top1);
  CHECK(json_number(json, "\"compressed_run\"", "top1") == top1);
  CHECK(top1 > 0.9);
  // Cost: the compressed model issues fewer MACs and memory references than the dense one.
  const double dense_macs = json_number(json, "\"total\": {\"dense\"", "macs");
  const double sparse_macs = json_number(json, "\"compressed\": {\"macs\"", "macs");
  CHECK(sparse_macs > 0);
  CHECK(sparse_macs < dense_macs);
}

TEST_CASE("dsgcompress and dsgeval reject corrupt and truncated .dsgz files in one line", "[apps][dsgz][errors]") {
  TempDir dir;
  dsg::test::write_learnable_idx(dir, 128, 50);
  const std::string model = train_quantized(dir);
  const std::string dsgz = dir.file("tiny.dsgz");
  REQUIRE(run_tool("dsgcompress", model + " -o " + dsgz).status == 0);
  std::ifstream in(dsgz, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::string flipped = bytes;
  flipped[bytes.size() / 2] = char(flipped[bytes.size() / 2] ^ 0x10);
  std::ofstream(dir.file("flipped.dsgz"), std::ios::binary) << flipped;
  std::ofstream(dir.file("cut.dsgz"), std::ios::binary) << bytes.substr(0, bytes.size() * 2 / 3);
  for (const char* name : {"flipped.dsgz", "cut.dsgz"}) {
    for (const char* tool : {"dsgeval", "dsgcompress"}) {
      std::string args = dir.file(name) + (std::string(tool) == "dsgcompress" ? " --decode -o " + dir.file("x.dsgmodel") : "");
      auto r = run_tool(tool, args);
      INFO(r.output);
      CHECK(r.status == 1);
      CHECK_THAT(last_line(r.output), Catch::StartsWith(std::string(tool) + ": error: ") && Catch::Contains("corrupt"));
    }
  }
  CHECK_FALSE(fs::exists(dir.file("x.dsgmodel")));
}

TEST_CASE("dsgcompress --format onnx exports the decoded model, optionally with shared weights", "[apps][dsgz][onnx]") {
  TempDir dir;
  dsg::test::write_learnable_idx(dir, 128, 50);
  const std::string model = train_quantized(dir);
  const std::string dsgz = dir.file("tiny.dsgz");
  REQUIRE(run_tool("dsgcompress", model + " -o " + dsgz).status == 0);
#ifdef DSG_WITH_ONNX
  for (const std::string& args : {dsgz + " --format onnx -o " + dir.file("a.onnx"),
                                  dsgz + " --format onnx --shared-weights -o " + dir.file("b.onnx"),
                                  model + " --format onnx --shared-weights -o " + dir.file("c.onnx")}) {
    auto r = run_tool("dsgcompress", args);
    INFO(r.output);
    CHECK(r.status == 0);
  }
  CHECK(fs::exists(dir.file("a.onnx")));
  if (std::system("/usr/bin/python3 -c 'import onnx' 2>/dev/null") == 0) {
    for (const char* f : {"a.onnx", "b.onnx", "c.onnx"}) {
      std::string cmd = "/usr/bin/python3 -c \"import onnx,sys; m=onnx.load(sys.argv[1]); "
                        "onnx.checker.check_model(m, full_check=True); "
                        "sys.exit(0 if (sum(n.op_type == 'Gather' for n in m.graph.node) > 0) == sys.argv[2].startswith('shared') else 3)\" " +
                        dir.file(f) + (std::string(f) == "a.onnx" ? " plain" : " shared");
      CHECK(std::system(cmd.c_str()) == 0);
    }
  } else {
    WARN("python3-onnx is not installed; the ONNX files were not checked by onnx.checker");
  }
#else
  auto r = run_tool("dsgcompress", dsgz + " --format onnx -o " + dir.file("a.onnx"));
  CHECK(r.status == 1);
  CHECK_THAT(last_line(r.output), Catch::Contains("built without ONNX support"));
#endif
}

// Pretrained weights (dsgtrain --weights, the solver's weights:): a Caffe .caffemodel written with
// protobuf, DSG snapshots into other configs, .dsgz and DSG-exported ONNX re-imports, the report
// and the errors (runtime/pretrained.hpp, compress/pretrained_file.hpp, apps/onnx_import.hpp).
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>

#include "apps/pretrained.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/model_file.hpp"
#include "runtime/net.hpp"
#include "support/learnable_dataset.hpp"
#include "support/run_tool.hpp"

using namespace dsg;
using dsg::test::last_line;
using dsg::test::TempDir;
namespace fs = std::filesystem;

namespace {

const char* kMlp = R"(
  name: "mlp"
  layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 3 dim: 6 } } }
  layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h" inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "constant" value: 0.1 } } }
  layer { name: "relu1" type: "ReLU" bottom: "h" top: "h" }
  layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "y" inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 } } }
)";

NetParameter mlp() {
  NetParameter p;
  parse_text_proto(kMlp, "mlp", &p);
  return p;
}

void fill(Tensor& t, float scale, float offset) {
  float* d = t.mutable_data();
  for (int64_t i = 0; i < t.count(); ++i) d[i] = offset + scale * float((i * 37) % 11) - scale * 5;
}

std::vector<float> forward(Net& net) {
  fill(net.blob("x"), 0.1f, 0.0f);
  net.forward(Context{});
  const Tensor& y = net.blob("y");
  return {y.data(), y.data() + y.count()};
}

std::string write_bytes(const TempDir& dir, const std::string& name, const std::string& bytes) {
  std::ofstream(dir.file(name), std::ios::binary) << bytes;
  return dir.file(name);
}

test::ToolRun dsgtrain(const std::string& args) { return test::run_tool("dsgtrain", args + " --threads 1"); }

// The first "Test net output #0: accuracy = X" of a dsgtrain log.
std::string first_accuracy(const std::string& log) {
  std::smatch m;
  if (!std::regex_search(log, m, std::regex("Test net output #0: accuracy = ([0-9.]+)"))) return "none";
  return m[1];
}
// A config that tests before training (the accuracy of the weights it starts from).
std::string tested_first(const std::string& config) {
  return std::regex_replace(config, std::regex("test_initialization: false"), "test_initialization: true");
}
std::string last_accuracy(const std::string& log) {
  std::string last = "none";
  std::regex re("Test net output #0: accuracy = ([0-9.]+)");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator(); ++it) last = (*it)[1];
  return last;
}

void check_same_blobs(const PretrainedWeights& a, const PretrainedWeights& b) {
  REQUIRE(a.layers.size() == b.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l) {
    INFO(a.layers[l].name);
    REQUIRE(a.layers[l].name == b.layers[l].name);
    REQUIRE(a.layers[l].blobs.size() == b.layers[l].blobs.size());
    for (size_t i = 0; i < a.layers[l].blobs.size(); ++i) {
      const auto& x = a.layers[l].blobs[i].data();
      const auto& y = b.layers[l].blobs[i].data();
      REQUIRE(x.size() == y.size());
      for (int k = 0; k < x.size(); ++k) REQUIRE(x[k] == y[k]);
    }
  }
}

}  // namespace

TEST_CASE("a .caffemodel written with protobuf loads by layer name and reproduces the outputs", "[apps][pretrained]") {
  TempDir dir;
  std::mt19937_64 rng_a(1), rng_b(2);
  Net by_hand(mlp(), TEST, rng_a);
  Net loaded(mlp(), TEST, rng_b);
  Layer& a1 = *by_hand.layer_by_name("ip1");
  Layer& a2 = *by_hand.layer_by_name("ip2");
  fill(*a1.blobs()[0], 0.05f, 0.01f);
  fill(*a1.blobs()[1], 0.2f, 0.0f);
  fill(*a2.blobs()[0], -0.07f, 0.02f);
  fill(*a2.blobs()[1], 0.3f, -0.1f);

  // Caffe's NetParameter: ip1 with the new-style shape, ip2's weights in the legacy 4-d fields
  // (1 x 1 x 4 x 5), a layer without blobs and one the net does not have.
  NetParameter caffe;
  caffe.set_name("mlp");
  LayerParameter* l1 = caffe.add_layer();
  l1->set_name("ip1");
  l1->set_type("InnerProduct");
  a1.blobs()[0]->to_proto(l1->add_blobs());
  a1.blobs()[1]->to_proto(l1->add_blobs());
  LayerParameter* relu = caffe.add_layer();
  relu->set_name("relu1");
  relu->set_type("ReLU");
  LayerParameter* l2 = caffe.add_layer();
  l2->set_name("ip2");
  BlobProto* w2 = l2->add_blobs();
  a2.blobs()[0]->to_proto(w2);
  w2->clear_shape();
  w2->set_num(1);
  w2->set_channels(1);
  w2->set_height(4);
  w2->set_width(5);
  a2.blobs()[1]->to_proto(l2->add_blobs());
  LayerParameter* ghost = caffe.add_layer();
  ghost->set_name("conv_from_elsewhere");
  ghost->add_blobs()->add_data(1.0f);
  const std::string path = write_bytes(dir, "mlp.caffemodel", caffe.SerializeAsString());

  const PretrainedWeights w = apps::read_weights_file(path);
  CHECK(w.format == "caffemodel");
  PretrainedReport report = copy_pretrained(loaded, w);
  CHECK(report.copied == std::vector<std::string>{"ip1", "ip2"});
  CHECK(report.not_in_net == std::vector<std::string>{"conv_from_elsewhere"});
  CHECK(report.not_in_file.empty());
  CHECK(forward(loaded) == forward(by_hand));
  CHECK_THAT(report.lines()[0], Catch::Equals("2 layer(s) copied: ip1, ip2"));
  CHECK_THAT(report.lines()[1], Catch::Contains("skipped (not in the net): conv_from_elsewhere"));

  // A file without ip2: ip2 keeps its initialisation and is reported.
  caffe.mutable_layer()->DeleteSubrange(2, 2);
  Net partial(mlp(), TEST, rng_b);
  const std::vector<float> before = {partial.layer_by_name("ip2")->blobs()[0]->data(),
                                     partial.layer_by_name("ip2")->blobs()[0]->data() + 20};
  report =
      copy_pretrained(partial, apps::read_weights_file(write_bytes(dir, "part.caffemodel", caffe.SerializeAsString())));
  CHECK(report.not_in_file == std::vector<std::string>{"ip2"});
  CHECK(std::vector<float>(partial.layer_by_name("ip2")->blobs()[0]->data(),
                           partial.layer_by_name("ip2")->blobs()[0]->data() + 20) == before);
  CHECK_THAT(report.lines().back(), Catch::Contains("not in the file (keep their initialisation): ip2"));

  // A shape mismatch names the layer and both shapes, and writes nothing.
  caffe.mutable_layer(0)->mutable_blobs(0)->mutable_shape()->set_dim(0, 7);
  const std::string bad = write_bytes(dir, "bad.caffemodel", caffe.SerializeAsString());
  try {
    copy_pretrained(partial, apps::read_weights_file(bad));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("layer 'ip1'") && Catch::Contains("shape mismatch") &&
                             Catch::Contains("(7 x 6)") && Catch::Contains("(5 x 6)"));
  }
  // A different number of blobs (ip1 without its bias) is an error too.
  caffe.mutable_layer(0)->mutable_blobs()->RemoveLast();
  CHECK_THROWS_WITH(
      copy_pretrained(partial, apps::read_weights_file(write_bytes(dir, "nb.caffemodel", caffe.SerializeAsString()))),
      Catch::Contains("the file has 1 blob(s), the net's layer 2"));
}

TEST_CASE("missing, corrupt, V1 and empty weights files are clear errors", "[apps][pretrained][errors]") {
  TempDir dir;
  CHECK_THROWS_WITH(apps::read_weights_file(dir.file("nope.caffemodel")), Catch::Contains("cannot open weights file"));
  CHECK_THROWS_WITH(apps::read_weights_file(write_bytes(dir, "empty", "")), Catch::Contains("is empty"));
  CHECK_THROWS_WITH(
      apps::read_weights_file(write_bytes(dir, "junk.caffemodel", std::string("\xff\xff\xff\xff garbage", 12))),
      Catch::Contains("is not a weights file"));
  // Caffe's V1 format: NetParameter field 2 (`layers`), a V1LayerParameter with a name.
  CHECK_THROWS_WITH(apps::read_weights_file(write_bytes(dir, "v1.caffemodel", std::string("\x12\x05\x22\x03ip1", 7))),
                    Catch::Contains("V1 format"));
  // Caffe's double_data blobs (BlobProto field 8): layer "ip1" with one blob holding 1.0 as a double.
  const std::string dbl = std::string("\x00\x00\x00\x00\x00\x00\xf0\x3f", 8);
  const std::string blob = std::string("\x42\x08", 2) + dbl;                                    // field 8, 8 bytes
  const std::string layer = std::string("\x0a\x03ip1", 5) + "\x3a" + char(blob.size()) + blob;  // name, blobs
  CHECK_THROWS_WITH(apps::read_weights_file(
                        write_bytes(dir, "double.caffemodel", std::string("\xa2\x06", 2) + char(layer.size()) + layer)),
                    Catch::Contains("double_data"));
  // A NetParameter with layers but no blobs (a net definition, not trained weights).
  NetParameter def = mlp();
  CHECK_THROWS_WITH(apps::read_weights_file(write_bytes(dir, "def.caffemodel", def.SerializeAsString())),
                    Catch::Contains("holds no layer with weights"));
  // A truncated .dsgmodel.
  ModelFile m;
  ParamBlob* p = m.add_param();
  p->set_layer("ip1");
  p->mutable_blob()->add_data(1.0f);
  write_model_file(dir.file("m.dsgmodel"), m);
  std::ifstream in(dir.file("m.dsgmodel"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK_THROWS_WITH(apps::read_weights_file(write_bytes(dir, "cut.dsgmodel", bytes.substr(0, bytes.size() - 3))),
                    Catch::Contains("truncated"));
}

TEST_CASE("dsgtrain --weights starts other configs from a snapshot, a .dsgz and a DSG-exported ONNX",
          "[apps][pretrained]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  const std::string data = dir.path().string();
  std::ofstream(dir.file("dense.prototxt")) << test::tiny_mlp_solver(data, 64);
  auto dense = dsgtrain(dir.file("dense.prototxt") + " --seed 3 --output " + dir.file("dense"));
  INFO(dense.output);
  REQUIRE(dense.status == 0);
  const std::string snapshot = dir.file("dense/dense_iter_64.dsgmodel");
  const std::string accuracy = last_accuracy(dense.output);
  REQUIRE(accuracy != "none");

  // Another config (Dropout added, tested before training): the first test reproduces the snapshot's.
  std::ofstream(dir.file("other.prototxt")) << tested_first(test::tiny_mlp_solver(data, 4, "", /*dropout=*/true));
  auto other =
      dsgtrain(dir.file("other.prototxt") + " --seed 5 --output " + dir.file("other") + " --weights " + snapshot);
  INFO(other.output);
  REQUIRE(other.status == 0);
  CHECK_THAT(other.output, Catch::Contains("Copying weights from " + snapshot + " (dsgmodel)") &&
                               Catch::Contains("2 layer(s) copied: ip1, ip2"));
  CHECK(first_accuracy(other.output) == accuracy);

  // A pruning config starts from the dense weights (a --resume of them is refused).
  const std::string prune_cfg = std::regex_replace(
      test::tiny_mlp_solver(data, 32, "schedule { phase { name: \"prune\" start_epoch: 0 mode: PRUNE } }\n"),
      std::regex("num_output: 32 weight_filler \\{ type: \"xavier\" \\} \\}"),
      "num_output: 32 weight_filler { type: \"xavier\" } }\n   sparsity_param { policy: \"magnitude\" target_sparsity: "
      "0.5 }");
  REQUIRE(prune_cfg.find("sparsity_param") != std::string::npos);
  std::ofstream(dir.file("prune.prototxt")) << prune_cfg;
  auto prune = dsgtrain(dir.file("prune.prototxt") + " --output " + dir.file("prune") + " --weights " + snapshot);
  INFO(prune.output);
  REQUIRE(prune.status == 0);
  CHECK_THAT(prune.output, Catch::Contains("2 layer(s) copied: ip1, ip2"));
  CHECK(std::stod(last_accuracy(prune.output)) > 0.5);
  auto both = dsgtrain(dir.file("prune.prototxt") + " --output " + dir.file("p2") + " --weights " + snapshot +
                       " --resume " + snapshot);
  CHECK(both.status != 0);
  CHECK_THAT(both.output, Catch::Contains("--weights") && Catch::Contains("--resume"));

  // The solver's weights: field, relative to the solver file.
  fs::create_directories(dir.file("cfg"));
  fs::copy_file(snapshot, dir.file("cfg/start.dsgmodel"));
  std::ofstream(dir.file("cfg/field.prototxt"))
      << tested_first(test::tiny_mlp_solver(data, 4, "weights: \"start.dsgmodel\"\n"));
  auto field = dsgtrain(dir.file("cfg/field.prototxt") + " --output " + dir.file("field"));
  INFO(field.output);
  REQUIRE(field.status == 0);
  CHECK_THAT(field.output, Catch::Contains("Copying weights from " + dir.file("cfg/start.dsgmodel")));
  CHECK(first_accuracy(field.output) == accuracy);

  // A .dsgz decodes to the snapshot's exact weights.
  auto z = test::run_tool("dsgcompress", snapshot + " -o " + dir.file("dense.dsgz"));
  INFO(z.output);
  REQUIRE(z.status == 0);
  const PretrainedWeights from_snapshot = apps::read_weights_file(snapshot);
  const PretrainedWeights from_dsgz = apps::read_weights_file(dir.file("dense.dsgz"));
  CHECK(from_dsgz.format == "dsgz");
  check_same_blobs(from_snapshot, from_dsgz);
  // --weights overrides the solver's weights: (the field config, started from the .dsgz).
  auto zrun =
      dsgtrain(dir.file("cfg/field.prototxt") + " --output " + dir.file("z") + " --weights " + dir.file("dense.dsgz"));
  INFO(zrun.output);
  REQUIRE(zrun.status == 0);
  CHECK_THAT(zrun.output, Catch::Contains("(dsgz)") && !Catch::Contains("start.dsgmodel"));
  CHECK(first_accuracy(zrun.output) == accuracy);

  // The shape mismatch, a missing and a corrupt file through the tool: one line, non-zero exit.
  std::ofstream(dir.file("wide.prototxt"))
      << std::regex_replace(test::tiny_mlp_solver(data, 4), std::regex("num_output: 32"), "num_output: 16");
  auto wide = dsgtrain(dir.file("wide.prototxt") + " --output " + dir.file("wide") + " --weights " + snapshot);
  CHECK(wide.status == 1);
  CHECK_THAT(last_line(wide.output), Catch::Contains("layer 'ip1'") && Catch::Contains("the file has (32 x 144)") &&
                                         Catch::Contains("the net (16 x 144)"));
  auto missing =
      dsgtrain(dir.file("dense.prototxt") + " --output " + dir.file("m") + " --weights " + dir.file("no.dsgmodel"));
  CHECK(missing.status == 1);
  CHECK_THAT(last_line(missing.output), Catch::Contains("cannot open weights file"));
  std::ofstream(dir.file("corrupt.caffemodel")) << "\xff\xfe this is not a model";
  auto corrupt = dsgtrain(dir.file("dense.prototxt") + " --output " + dir.file("c") + " --weights " +
                          dir.file("corrupt.caffemodel"));
  CHECK(corrupt.status == 1);
  CHECK_THAT(last_line(corrupt.output), Catch::Contains("is not a weights file"));

#ifdef DSG_WITH_ONNX
  // dsgcompress --format onnx, re-imported: the same blobs and the same first test.
  auto onnx = test::run_tool("dsgcompress", snapshot + " --format onnx -o " + dir.file("dense.onnx"));
  INFO(onnx.output);
  REQUIRE(onnx.status == 0);
  const PretrainedWeights from_onnx = apps::read_weights_file(dir.file("dense.onnx"));
  CHECK(from_onnx.format == "onnx");
  check_same_blobs(from_snapshot, from_onnx);
  auto orun = dsgtrain(dir.file("other.prototxt") + " --seed 5 --output " + dir.file("o") + " --weights " +
                       dir.file("dense.onnx"));
  INFO(orun.output);
  REQUIRE(orun.status == 0);
  CHECK_THAT(orun.output, Catch::Contains("(onnx)") && Catch::Contains("2 layer(s) copied: ip1, ip2"));
  CHECK(first_accuracy(orun.output) == accuracy);
#endif
}

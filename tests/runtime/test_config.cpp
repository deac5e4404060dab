#include <catch2/catch.hpp>

#include <fstream>

#include "datasets/synthetic_data.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"

using namespace dsg;
using test::TempDir;

static std::string write(const TempDir& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir.file(name)) << text;
  return dir.file(name);
}

static std::string error_of(const std::string& path) {
  try {
    load_solver_config(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

static const char* kNet =
    "name: \"n\"\n"
    "layer { name: \"in\" type: \"Input\" top: \"x\" input_param { shape { dim: 2 dim: 3 } } }\n"
    "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"x\" top: \"y\" inner_product_param { num_output: 2 } }\n";

TEST_CASE("solver config loads a net file relative to itself", "[config]") {
  TempDir dir;
  write(dir, "net.prototxt", kNet);
  auto path = write(dir, "solver.prototxt", "net: \"net.prototxt\"\nbase_lr: 0.1\nmax_iter: 10\n");
  LoadedConfig c = load_solver_config(path);
  CHECK(c.solver.net_param().layer_size() == 2);
  CHECK(c.solver.base_lr() == Approx(0.1));
  CHECK_FALSE(c.solver.has_net());
  REQUIRE(c.net_locations.layer.size() == 2);
  CHECK(c.net_locations.layer[1] == dir.file("net.prototxt") + ":3:1");
}

TEST_CASE("malformed prototxt names file:line:col", "[config][errors]") {
  TempDir dir;
  auto path = write(dir, "s.prototxt", "base_lr: 0.1\nmax_iter: 10\nnet_param {\n  layer { name: \"a\" \n");
  CHECK_THAT(error_of(path), Catch::Contains(path + ":5:1"));
  path = write(dir, "s2.prototxt", "base_lr: 0.1\nmax_iter: ten\n");
  CHECK_THAT(error_of(path), Catch::Contains(path + ":2:11"));
}

TEST_CASE("unknown field is an error with its location", "[config][errors]") {
  TempDir dir;
  auto path = write(dir, "s.prototxt", "base_lr: 0.1\n  learning_rate: 3\n");
  std::string e = error_of(path);
  CHECK_THAT(e, Catch::Contains(path + ":2:"));
  CHECK_THAT(e, Catch::Contains("learning_rate"));
}

TEST_CASE("unknown layer type lists the known types and points at the type field", "[config][errors]") {
  TempDir dir;
  write(dir, "net.prototxt", "name: \"n\"\nlayer {\n  name: \"c\"\n  type: \"Convolutoin\"\n}\n");
  auto path = write(dir, "s.prototxt", "net: \"net.prototxt\"\nbase_lr: 0.1\n");
  std::string e = error_of(path);
  CHECK_THAT(e, Catch::Contains(dir.file("net.prototxt") + ":4:3"));
  CHECK_THAT(e, Catch::Contains("Convolutoin"));
  CHECK_THAT(e, Catch::Contains("Convolution, "));
  CHECK_THAT(e, Catch::Contains("InnerProduct"));
}

TEST_CASE("bad values are errors with their location", "[config][errors]") {
  TempDir dir;
  std::string net = std::string("net_param {\n") + kNet + "}\n";
  CHECK_THAT(error_of(write(dir, "a.prototxt", net + "base_lr: -0.1\n")), Catch::Contains("a.prototxt:6:1: base_lr must be"));
  CHECK_THAT(error_of(write(dir, "b.prototxt", net + "base_lr: 0.1\nlr_policy: \"warp\"\n")),
             Catch::Contains("b.prototxt:7:1: unknown lr_policy \"warp\""));
  CHECK_THAT(error_of(write(dir, "c.prototxt", net + "base_lr: 0.1\nmomentum: 1.5\n")), Catch::Contains("c.prototxt:7:1"));
  CHECK_THAT(error_of(write(dir, "d.prototxt", net + "base_lr: 0.1\ntype: \"RMSProp\"\n")),
             Catch::Contains("known: Adam, Nesterov, SGD"));
  CHECK_THAT(error_of(write(dir, "e.prototxt", net + "base_lr: 0.1\nlr_policy: \"step\"\ngamma: 0.1\n")),
             Catch::Contains("needs stepsize"));
  CHECK_THAT(error_of(write(dir, "f.prototxt", net + "base_lr: 0.1\nregularization_type: \"L3\"\n")),
             Catch::Contains("f.prototxt:7:1"));
  CHECK_THAT(error_of(write(dir, "g.prototxt", net + "base_lr: 0.1\ntest_interval: 10\n")),
             Catch::Contains("test_iter"));
}

TEST_CASE("a net file given as the solver config says what to do", "[config][errors]") {
  TempDir dir;
  auto path = write(dir, "net.prototxt", kNet);
  CHECK_THAT(error_of(path), Catch::Contains("net definition"));
}

TEST_CASE("missing net file and missing config are errors", "[config][errors]") {
  TempDir dir;
  auto path = write(dir, "s.prototxt", "net: \"nope.prototxt\"\nbase_lr: 0.1\n");
  CHECK_THAT(error_of(path), Catch::Contains("s.prototxt:1:1") && Catch::Contains("nope.prototxt"));
  CHECK_THAT(error_of(dir.file("absent.prototxt")), Catch::Contains("cannot open config file"));
}

TEST_CASE("an unknown sparsity policy is an error with its location", "[config][errors]") {
  TempDir dir;
  auto path = write(dir, "s.prototxt",
                    "net_param { layer { name: \"a\" type: \"ReLU\" bottom: \"x\" top: \"x\" "
                    "sparsity_param { policy: \"bogus\" } } }\nbase_lr: 0.1\n");
  CHECK_THAT(error_of(path), Catch::Contains("s.prototxt:1:13") && Catch::Contains("unknown sparsity policy 'bogus'"));
}

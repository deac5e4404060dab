// Runs the dsgtrain binary as a user would: exit codes, one-line errors, outputs.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "support/learnable_dataset.hpp"
#include "support/run_tool.hpp"

using dsg::test::TempDir;
namespace fs = std::filesystem;

using dsg::test::last_line;

static dsg::test::ToolRun run_dsgtrain(const std::string& args) { return dsg::test::run_tool("dsgtrain", args); }

static std::string write(const TempDir& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir.file(name)) << text;
  return dir.file(name);
}

TEST_CASE("dsgtrain trains, writes metrics.jsonl and snapshots", "[apps][dsgtrain]") {
  TempDir dir;
  dsg::test::write_learnable_idx(dir);
  auto cfg = write(dir, "tiny.prototxt", dsg::test::tiny_mlp_solver(dir.path().string(), 64));
  auto r = run_dsgtrain(cfg + " --threads 1 --seed 3 --output " + dir.file("out"));
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Catch::Contains("Test net output #0: accuracy = "));
  CHECK(fs::exists(dir.file("out/tiny_iter_64.dsgmodel")));
  std::ifstream metrics(dir.file("out/metrics.jsonl"));
  std::string line;
  REQUIRE(std::getline(metrics, line));
  CHECK_THAT(line, Catch::Contains("\"iteration\": 64") && Catch::Contains("\"accuracy\": ") &&
                       Catch::Contains("\"train_loss\": ") && Catch::Contains("\"images_per_sec\": "));

  // --epochs converts to iterations (512 samples / 16 per batch = 32 per epoch); --resume continues.
  auto r2 = run_dsgtrain(cfg + " --threads 1 --seed 3 --epochs 3 --output " + dir.file("out") + " --resume " +
                         dir.file("out/tiny_iter_64.dsgmodel"));
  INFO(r2.output);
  REQUIRE(r2.status == 0);
  CHECK_THAT(r2.output, Catch::Contains("Resumed from") && Catch::Contains("at iteration 64"));
  CHECK(fs::exists(dir.file("out/tiny_iter_96.dsgmodel")));
}

TEST_CASE("dsgtrain --data reads the same file names from another directory", "[apps][dsgtrain]") {
  TempDir dir, data;
  dsg::test::write_learnable_idx(data);
  // The config points at a directory without the files; --data redirects it.
  auto cfg = write(dir, "tiny.prototxt", dsg::test::tiny_mlp_solver("/nonexistent/dir", 8));
  auto missing = run_dsgtrain(cfg + " --threads 1 --output " + dir.file("o1"));
  CHECK(missing.status != 0);
  CHECK_THAT(last_line(missing.output), Catch::Contains("/nonexistent/dir/train-images-idx3-ubyte") &&
                                            Catch::Contains("dataset-fashion-mnist"));
  auto ok = run_dsgtrain(cfg + " --threads 1 --output " + dir.file("o2") + " --data " + data.path().string());
  INFO(ok.output);
  CHECK(ok.status == 0);
}

TEST_CASE("dsgtrain errors are one line with a non-zero exit", "[apps][dsgtrain][errors]") {
  TempDir dir;
  dsg::test::write_learnable_idx(dir);
  auto check_error = [&](const std::string& args, const std::string& expected) {
    auto r = run_dsgtrain(args);
    INFO(r.output);
    CHECK(r.status == 1);
    CHECK_THAT(last_line(r.output), Catch::StartsWith("dsgtrain: error: ") && Catch::Contains(expected));
  };
  check_error(dir.file("absent.prototxt"), "cannot open config file");
  check_error(write(dir, "bad.prototxt", "base_lr: 0.1\nnet_param { layer { name: \"a\" type: \"ReLU\" bottom: }\n"),
              "bad.prototxt:2:");
  std::string good = dsg::test::tiny_mlp_solver(dir.path().string(), 4);
  std::string unknown = good;
  unknown.replace(unknown.find("\"ReLU\""), 6, "\"ReLu\"");
  check_error(write(dir, "unknown.prototxt", unknown), "unknown layer type 'ReLu'");
  check_error(write(dir, "good.prototxt", good) + " --device cuda", "--device cuda");
  check_error(dir.file("good.prototxt") + " --resume " + write(dir, "junk.dsgmodel", "garbage"), "not a DSG model file");
  // Mislabelled data: a labels file with fewer entries than images.
  TempDir bad;
  dsg::test::write_learnable_idx(bad);
  std::vector<uint8_t> few{1, 2, 3};
  dsg::test::write_bytes(bad.file("train-labels-idx1-ubyte"), dsg::test::idx_labels(few));
  check_error(dir.file("good.prototxt") + " --data " + bad.path().string(), "train-labels-idx1-ubyte");
  auto usage = run_dsgtrain("");
  CHECK(usage.status != 0);
}

TEST_CASE("dsgtrain stops a diverging run and keeps the last good snapshot", "[apps][dsgtrain][nan]") {
  TempDir dir;
  dsg::test::write_learnable_idx(dir);
  std::string text = dsg::test::tiny_mlp_solver(dir.path().string(), 400, "snapshot: 2\n");
  text.replace(text.find("base_lr: 0.05"), 13, "base_lr: 1e6");
  auto r = run_dsgtrain(write(dir, "nan.prototxt", text) + " --threads 1 --output " + dir.file("out"));
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK_THAT(last_line(r.output), Catch::Contains("diverged") && Catch::Contains("last good snapshot is " + dir.file("out/nan_iter_")));
}

TEST_CASE("dsgtrain --device host-device-code runs the device code path or names what lacks it", "[apps][dsgtrain]") {
  TempDir dir;
  dsg::test::write_learnable_idx(dir);
  auto cfg = write(dir, "tiny.prototxt", dsg::test::tiny_mlp_solver(dir.path().string(), 8));
  auto r = run_dsgtrain(cfg + " --threads 1 --seed 3 --device host-device-code --check-transfers --output " +
                        dir.file("out"));
  INFO(r.output);
  CHECK_THAT(r.output, Catch::Contains("(device code on the host), transfer check on"));
  if (r.status == 0) {
    CHECK(fs::exists(dir.file("out/tiny_iter_8.dsgmodel")));
  } else {
    // Refused before training: the layer and the device are named.
    CHECK(r.status == 1);
    CHECK_THAT(last_line(r.output), Catch::Contains("implementation for device cuda (device code on the host)") &&
                                        Catch::Contains("layer '"));
    CHECK_THAT(r.output, !Catch::Contains("Solving tiny"));
  }
  // Without a TEST net, the TRAIN net's layers (Data, InnerProduct, ReLU, SoftmaxWithLoss) claim
  // device code: the whole run goes through it, under the transfer check (or a layer is named).
  std::string train_only = dsg::test::tiny_mlp_solver(dir.path().string(), 8);
  const std::string test_iter = "test_iter: 4\n test_interval: 8\n";
  REQUIRE(train_only.find(test_iter) != std::string::npos);
  train_only.replace(train_only.find(test_iter), test_iter.size(), "");
  auto cfg2 = write(dir, "train_only.prototxt", train_only);
  auto dev = run_dsgtrain(cfg2 + " --threads 1 --seed 3 --device host-device-code --check-transfers --output " +
                          dir.file("dev"));
  INFO(dev.output);
  if (dev.status == 0) CHECK(fs::exists(dir.file("dev/train_only_iter_8.dsgmodel")));
  else CHECK_THAT(last_line(dev.output), Catch::Contains("layer '"));
  // The same run on the CPU with the transfer check trains (the check has nothing to see there).
  auto cpu = run_dsgtrain(cfg + " --threads 1 --seed 3 --check-transfers --output " + dir.file("cpu"));
  INFO(cpu.output);
  CHECK(cpu.status == 0);
  // dsgeval takes the same device option.
  auto ev = dsg::test::run_tool("dsgeval", dir.file("cpu/tiny_iter_8.dsgmodel") + " --threads 1 --device host-device-code");
  INFO(ev.output);
  if (ev.status != 0)
    CHECK_THAT(last_line(ev.output), Catch::Contains("implementation for device cuda (device code on the host)"));
  auto bad = dsg::test::run_tool("dsgeval", dir.file("cpu/tiny_iter_8.dsgmodel") + " --device tpu");
  CHECK(bad.status != 0);
  CHECK_THAT(bad.output, Catch::Contains("unknown device 'tpu'"));
}

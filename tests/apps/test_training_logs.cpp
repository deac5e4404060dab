// dsgtrain's logs as other tools read them (issue #15): Caffe's two log parsers
// (tests/apps/scripts/caffe_log_check.py re-implements parse_log.sh and parse_log.py), the
// metrics.jsonl rows per display and per test, and TensorBoard event files read back by
// TensorBoard's own reader (tests/apps/scripts/tensorboard_check.py).
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "apps/tensorboard_events.hpp"
#include "apps/training_outputs.hpp"
#include "support/sparse_configs.hpp"

using dsg::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void replace(std::string& text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  text.replace(at, from.size(), to);
}

// 48 iterations of the tiny MLP: display every 4, a test every 16 (and at 0), a step lr, ip1
// pruned at 8 and both layers quantized at 24, so every kind of row and scalar changes.
std::string logging_solver(const TempDir& dir) {
  using namespace dsg::test;
  std::string text = tiny_mlp_solver(dir.path().string(), 48,
                                     schedule("phase { mode: PRUNE start_iter: 8 } "
                                              "phase { mode: QUANTIZE start_iter: 24 lr_mult: 0.5 }"));
  replace(text, "display: 0", "display: 4");
  replace(text, "lr_policy: \"fixed\"", "lr_policy: \"step\" gamma: 0.5 stepsize: 20");
  replace(text, "test_interval: 48", "test_interval: 16");
  replace(text, "test_initialization: false", "test_initialization: true");
  text = with_sparsity(text, "ip1", "policy: \"magnitude\" target_sparsity: 0.75");
  text = with_quant(text, "ip1", "bits: 3");
  text = with_quant(text, "ip2", "bits: 4");
  std::ofstream(dir.file("logs.prototxt")) << text;
  return dir.file("logs.prototxt");
}

// Runs `command` through the shell; its exit status, and stdout and stderr in *output.
int shell(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe);
  char buf[4096];
  output->clear();
  while (size_t n = fread(buf, 1, sizeof(buf), pipe)) output->append(buf, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int run_python(const std::string& script_and_args, std::string* output) {
  return shell("/usr/bin/python3 " + std::string(DSG_SOURCE_DIR) + "/tests/apps/scripts/" + script_and_args, output);
}

struct Run {
  std::string log, metrics;
};

// dsgtrain's log (stderr) goes to DIR/train.log, as a user would keep it for the parsers.
Run train(const TempDir& dir, const std::string& extra = "") {
  dsg::test::write_learnable_idx(dir);
  std::string out;
  const int status = shell("(" + std::string(DSG_BINARY_DIR) + "/dsgtrain " + logging_solver(dir) +
                               " --threads 1 --seed 5 --output " + dir.file("out") + extra + " 2> " +
                               dir.file("train.log") + ")",
                           &out);
  INFO(out + read_all(dir.file("train.log")));
  REQUIRE(status == 0);
  REQUIRE_THAT(read_all(dir.file("train.log")), Catch::Contains("] Solving "));
  return {dir.file("train.log"), dir.file("out/metrics.jsonl")};
}

}  // namespace

TEST_CASE("CRC-32C and TFRecord framing follow TensorFlow's record format", "[apps][tensorboard]") {
  using namespace dsg::apps;
  CHECK(crc32c("123456789", 9) == 0xE3069283u);  // the CRC-32C check value
  CHECK(crc32c("", 0) == 0u);
  const uint32_t c = crc32c("abc", 3);
  CHECK(masked_crc32c("abc", 3) == uint32_t(((c >> 15) | (c << 17)) + 0xa282ead8u));
  const std::string rec = tfrecord("hello");
  REQUIRE(rec.size() == 8 + 4 + 5 + 4);
  CHECK(rec.substr(0, 8) == std::string("\x05\0\0\0\0\0\0\0", 8));
  const uint32_t len_crc = masked_crc32c(rec.data(), 8);
  CHECK(rec.substr(8, 4) == std::string(reinterpret_cast<const char*>(&len_crc), 4));  // little-endian host
  CHECK(rec.substr(12, 5) == "hello");
  const uint32_t data_crc = masked_crc32c("hello", 5);
  CHECK(rec.substr(17, 4) == std::string(reinterpret_cast<const char*>(&data_crc), 4));
}

TEST_CASE("metrics.jsonl rows: train per display with per-layer sparsity and bits, test per test", "[apps][metrics]") {
  dsg::DisplayReport d{12, 0.375, 0.5f, 0.025f, 1000, {{"loss", 0.4f}}, {{"ip1", 0.75, 32}, {"ip2", -1, 4}}};
  CHECK(dsg::apps::metrics_row(d) ==
        "{\"kind\": \"train\", \"iteration\": 12, \"epoch\": 0.375, \"loss\": 0.5, \"lr\": 0.025, "
        "\"images_per_sec\": 1000, \"layers\": {\"ip1\": {\"sparsity\": 0.75, \"bits\": 32}, \"ip2\": {\"bits\": 4}}}");
  dsg::TestReport t{};
  t.iter = 16;
  t.epoch = 0.5;
  t.loss = 0.25f;
  t.train_loss = NAN;
  t.outputs = {{"accuracy", 0.75f}};
  CHECK(dsg::apps::metrics_row(t) == "{\"kind\": \"test\", \"iteration\": 16, \"epoch\": 0.5, \"train_loss\": null, "
                                     "\"test_loss\": 0.25, \"accuracy\": 0.75, \"images_per_sec\": 0}");
}

TEST_CASE("Caffe's parse_log.sh and parse_log.py build the right tables from a dsgtrain log", "[apps][caffe_log]") {
  TempDir dir;
  const Run run = train(dir);
  const std::string metrics = read_all(run.metrics);
  INFO(metrics);
  CHECK_THAT(metrics, Catch::Contains("{\"kind\": \"train\", \"iteration\": 0,") &&
                          Catch::Contains("{\"kind\": \"test\", \"iteration\": 48,") &&
                          Catch::Contains("\"layers\": {\"ip1\": {\"sparsity\": 0.75, \"bits\": 3}, \"ip2\": {\"bits\": 4}}"));
  std::string out;
  const int status = run_python("caffe_log_check.py " + run.log + " " + run.metrics, &out);
  INFO(out);
  CHECK(status == 0);

  // The check fails on a log where another line starts "Iteration N," after the first test: that
  // is how parse_log.sh miscounts tests.
  std::string log = read_all(run.log);
  const size_t first_test = log.find("Test net output #1");
  REQUIRE(first_test != std::string::npos);
  const size_t line_start = log.rfind('\n', first_test) + 1;
  const std::string prefix = log.substr(line_start, log.find("dsg] ", line_start) + 5 - line_start);  // "I1208 ... dsg] "
  log.insert(log.find('\n', first_test) + 1, prefix + "Iteration 16, train net cost: training MACs 1 -> 1 (1.00x)\n");
  std::ofstream(dir.file("bad.log")) << log;
  const int bad = run_python("caffe_log_check.py " + dir.file("bad.log") + " " + run.metrics, &out);
  INFO(out);
  CHECK(bad == 1);
  CHECK_THAT(out, Catch::Contains("FAIL: parse_log.sh test table") &&
                      Catch::Contains("FAIL: every line holding 'Iteration ' has one of Caffe's forms"));

  // And on Caffe 1.0's own display line, whose timing parse_log.sh reads as the loss (BVLC/caffe#5422).
  const std::string timed = std::regex_replace(read_all(run.log), std::regex(R"(\] Iteration (\d+), loss)"),
                                               "] Iteration $1 (12.3 iter/s, 0.325s/4 iters), loss");
  std::ofstream(dir.file("timed.log")) << timed;
  const int old_format = run_python("caffe_log_check.py " + dir.file("timed.log") + " " + run.metrics, &out);
  INFO(out);
  CHECK(old_format == 1);
  CHECK_THAT(out, Catch::Contains("FAIL: parse_log.sh train table") && Catch::Contains("0.325s/4"));
}

TEST_CASE("dsgtrain --tensorboard events read back by TensorBoard's own reader", "[apps][tensorboard]") {
  TempDir dir;
  const Run run = train(dir, " --tensorboard " + dir.file("tb"));
  bool found = false;
  for (const auto& entry : fs::directory_iterator(dir.file("tb")))
    found = found || entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0;
  CHECK(found);
  // ip1: 144 inputs x 32 outputs and 32 biases; ip2: 32 x 4 and 4.
  std::string out;
  const int status = run_python("tensorboard_check.py " + dir.file("tb") + " " + run.metrics + " " +
                                    std::string(DSG_BINARY_DIR) + "/tensorboard_venv ip1/0=4608 ip1/1=32 ip2/0=128 ip2/1=4",
                                &out);
  INFO(out);
  if (status == 77) {
    WARN("skipped: TensorBoard could not be installed: " + out);
    return;
  }
  CHECK(status == 0);
}

// Runs the dsgeval binary as a user would on models trained by the dsgtrain binary: the accuracy
// matches dsgtrain's test, per-layer counts, valid JSON, sensitivity CSV / SVG / suggestions, and
// one-line errors.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "runtime/model_file.hpp"
#include "support/run_tool.hpp"
#include "support/learnable_dataset.hpp"

using dsg::test::TempDir;
namespace fs = std::filesystem;

namespace {

using Run = dsg::test::ToolRun;
Run run_binary(const std::string& name, const std::string& args, bool with_stderr = true) {
  return dsg::test::run_tool(name, args, with_stderr);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The number after the last occurrence of `key` in `text` (NaN when absent).
double number_after(const std::string& text, const std::string& key) {
  auto pos = text.rfind(key);
  if (pos == std::string::npos) return NAN;
  return std::strtod(text.c_str() + pos + key.size(), nullptr);
}

// Cells of the Markdown table row starting with "| name |".
std::vector<std::string> row_cells(const std::string& text, const std::string& name) {
  std::vector<std::string> cells;
  auto pos = text.find("\n| " + name + " |");
  if (pos == std::string::npos) return cells;
  std::string line = text.substr(pos + 1, text.find('\n', pos + 1) - pos - 1);
  std::stringstream ss(line);
  std::string cell;
  std::getline(ss, cell, '|');
  while (std::getline(ss, cell, '|')) {
    auto b = cell.find_first_not_of(' '), e = cell.find_last_not_of(' ');
    cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
  }
  return cells;
}

// A strict recursive-descent JSON validator (RFC 8259 values, no trailing garbage).
struct JsonChecker {
  const std::string& s;
  size_t i = 0;
  void ws() { while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i; }
  bool lit(const char* w) {
    size_t n = std::strlen(w);
    if (s.compare(i, n, w) != 0) return false;
    i += n;
    return true;
  }
  bool str() {
    if (s[i] != '"') return false;
    for (++i; i < s.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c == '"') return ++i, true;
      if (c < 0x20) return false;
      if (c == '\\' && ++i < s.size() && !std::strchr("\"\\/bfnrtu", s[i])) return false;
    }
    return false;
  }
  bool number() {
    size_t start = i;
    if (s[i] == '-') ++i;
    if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || std::strchr(".eE+-", s[i]))) ++i;
    char* end = nullptr;
    std::strtod(s.c_str() + start, &end);
    return end == s.c_str() + i;
  }
  bool value() {
    ws();
    if (i >= s.size()) return false;
    bool ok;
    if (s[i] == '{' || s[i] == '[') {
      char close = s[i] == '{' ? '}' : ']';
      bool object = s[i] == '{';
      ++i;
      ws();
      if (i < s.size() && s[i] == close) return ++i, true;
      for (;;) {
        if (object) {
          ws();
          if (!str()) return false;
          ws();
          if (i >= s.size() || s[i++] != ':') return false;
        }
        if (!value()) return false;
        ws();
        if (i < s.size() && s[i] == ',') { ++i; continue; }
        if (i < s.size() && s[i] == close) return ++i, true;
        return false;
      }
    }
    if (s[i] == '"') ok = str();
    else if (s[i] == 't') ok = lit("true");
    else if (s[i] == 'f') ok = lit("false");
    else if (s[i] == 'n') ok = lit("null");
    else ok = number();
    ws();
    return ok;
  }
  bool valid() { return value() && (ws(), i == s.size()); }
};

bool valid_json(const std::string& text) { return JsonChecker{text}.valid(); }

// Trains the tiny MLP for 8 iterations with a test and a snapshot every 4; returns dsgtrain's
// output. Snapshots: out/tiny_iter_4.dsgmodel (undertrained) and out/tiny_iter_8.dsgmodel.
std::string train_tiny(const TempDir& dir) {
  dsg::test::write_learnable_idx(dir);
  std::string text = dsg::test::tiny_mlp_solver(dir.path().string(), 8, "snapshot: 4\n");
  text.replace(text.find("test_interval: 8"), 16, "test_interval: 4");
  std::ofstream(dir.file("tiny.prototxt")) << text;
  auto r = run_binary("dsgtrain", dir.file("tiny.prototxt") + " --threads 1 --output " + dir.file("out"));
  INFO(r.output);
  REQUIRE(r.status == 0);
  return r.output;
}

// dsgtrain's test accuracies in order.
std::vector<double> trained_accuracies(const std::string& log) {
  std::vector<double> acc;
  const std::string key = "Test net output #0: accuracy = ";
  for (auto pos = log.find(key); pos != std::string::npos; pos = log.find(key, pos + 1))
    acc.push_back(std::strtod(log.c_str() + pos + key.size(), nullptr));
  return acc;
}

}  // namespace

TEST_CASE("dsgeval reproduces dsgtrain's test accuracy and reports layers and JSON", "[apps][dsgeval]") {
  TempDir dir;
  auto acc = trained_accuracies(train_tiny(dir));
  REQUIRE(acc.size() == 2);
  const char* models[] = {"out/tiny_iter_4.dsgmodel", "out/tiny_iter_8.dsgmodel"};
  for (int m = 0; m < 2; ++m) {
    auto r = run_binary("dsgeval", dir.file(models[m]) + " --threads 1 --json " + dir.file("r.json"), false);
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK(number_after(r.output, "| top-1 accuracy | ") == Approx(acc[size_t(m)]).margin(1e-4));
    CHECK_THAT(r.output, Catch::Contains("| top-5 accuracy (k = 4 classes) | 1.000000 |") &&
                             Catch::Contains("| mean loss | ") && Catch::Contains("| images/s | ") &&
                             Catch::Contains("## Confusion matrix") && Catch::Contains("| true \\ predicted | 0 | 1 | 2 | 3 |") &&
                             Catch::Contains("sparse bytes = non-zero parameters x 5"));
    // Per-class rows add up to the 200 test samples.
    int64_t total = 0;
    for (int c = 0; c < 4; ++c) total += std::stoll(row_cells(r.output, std::to_string(c)).at(1));
    CHECK(total == 200);
    // | layer | type | shape | params | weights | non-zero weights | sparsity % | dense B | sparse B | dense MACs | sparse MACs | mode |
    auto ip1 = row_cells(r.output, "ip1"), ip2 = row_cells(r.output, "ip2"), sum = row_cells(r.output, "total");
    REQUIRE(ip1.size() == 12);
    REQUIRE(ip2.size() == 12);
    REQUIRE(sum.size() == 12);
    CHECK(ip1[1] == "InnerProduct");
    CHECK(ip1[3] == std::to_string(144 * 32 + 32));
    CHECK(ip1[4] == std::to_string(144 * 32));
    CHECK(ip2[4] == std::to_string(32 * 4));
    CHECK(ip1[7] == std::to_string((144 * 32 + 32) * 4));
    CHECK(ip1[9] == std::to_string(144 * 32));
    CHECK(ip1[11] == "dense");
    CHECK(sum[4] == std::to_string(144 * 32 + 32 * 4));

    std::string json = read_all(dir.file("r.json"));
    CHECK(valid_json(json));
    CHECK(number_after(json, "\"top1\": ") == Approx(acc[size_t(m)]).margin(1e-4));
    CHECK_THAT(json, Catch::Contains("\"name\": \"ip1\"") && Catch::Contains("\"weights\": 4608") &&
                         Catch::Contains("\"confusion\": [[") && Catch::Contains("\"per_class\": ["));
    if (fs::exists("/usr/bin/python3"))
      CHECK(std::system(("/usr/bin/python3 -m json.tool " + dir.file("r.json") + " > /dev/null").c_str()) == 0);
  }
  CHECK_FALSE(valid_json("{\"a\": 1,}"));
  CHECK_FALSE(valid_json("{\"a\": nan}"));

  // --batches limits the evaluation.
  auto two = run_binary("dsgeval", dir.file(models[1]) + " --threads 1 --batches 2", false);
  REQUIRE(two.status == 0);
  CHECK_THAT(two.output, Catch::Contains("Test set: 100 samples (2 batches of 50; the set holds 200)"));
}

TEST_CASE("dsgeval reports the sparsity and structured mode of a pruned model", "[apps][dsgeval]") {
  TempDir dir;
  train_tiny(dir);
  // Prune filters 0..7 of ip1 (weights and biases) and record them as a FILTER policy's mask.
  dsg::ModelFile model = dsg::read_model_file(dir.file("out/tiny_iter_8.dsgmodel"));
  int64_t nonzero_params = 0;  // of ip1, weights and biases (a dead unit's bias may be 0)
  for (auto& pb : *model.mutable_param()) {
    if (pb.layer() != "ip1") continue;
    auto* data = pb.mutable_blob()->mutable_data();
    int per = pb.index() == 0 ? 144 : 1;
    for (int i = 0; i < 8 * per; ++i) data->Set(i, 0.0f);
    for (float v : *data) nonzero_params += v != 0.0f;
  }
  for (auto& layer : *model.mutable_net()->mutable_layer()) {
    if (layer.name() != "ip1") continue;
    auto* sp = layer.mutable_sparsity_param();
    sp->set_policy("magnitude");
    sp->set_granularity(dsg::SparsityParameter::FILTER);
    sp->set_target_sparsity(0.25f);
  }
  dsg::PolicyState* state = model.add_policy();
  state->set_layer("ip1");
  state->set_policy("magnitude");
  state->set_active(true);
  state->set_fired(1);
  state->set_current_target(0.25f);
  std::string bits(32 * 144 / 8, '\xff');
  for (int i = 0; i < 8 * 144; ++i) bits[size_t(i / 8)] = char(uint8_t(bits[size_t(i / 8)]) & ~(1u << (i % 8)));
  state->add_mask(bits);
  dsg::write_model_file(dir.file("pruned.dsgmodel"), model);

  auto r = run_binary("dsgeval", dir.file("pruned.dsgmodel") + " --threads 1 --json " + dir.file("p.json"), false);
  INFO(r.output);
  REQUIRE(r.status == 0);
  auto ip1 = row_cells(r.output, "ip1");
  REQUIRE(ip1.size() == 12);
  CHECK(ip1[5] == std::to_string(24 * 144));  // non-zero weights
  CHECK(ip1[6] == "25.00");                   // sparsity %
  CHECK(ip1[8] == std::to_string(nonzero_params * 5));
  CHECK(ip1[9] == std::to_string(32 * 144));
  CHECK(ip1[10] == std::to_string(24 * 144));
  CHECK(ip1[11] == "structured: 24/32 filters");
  CHECK(row_cells(r.output, "ip2").at(11) == "dense, 24 inputs active");  // ip1 prunes 8 of 32 filters
  std::string json = read_all(dir.file("p.json"));
  CHECK(valid_json(json));
  CHECK_THAT(json, Catch::Contains("\"mode\": \"structured: 24/32 filters\""));
}

TEST_CASE("dsgeval --sensitivity writes CSV and SVG files and suggested sparsity_param lines", "[apps][dsgeval]") {
  TempDir dir;
  train_tiny(dir);
  const std::string model = dir.file("out/tiny_iter_8.dsgmodel");
  auto dense = run_binary("dsgeval", model + " --threads 1", false);
  REQUIRE(dense.status == 0);
  const double base = number_after(dense.output, "| top-1 accuracy | ");

  auto r = run_binary("dsgeval", model + " --threads 1 --sensitivity --csv " + dir.file("s.csv"));
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Catch::Contains("dsgeval: sensitivity layer 1/2 ip1, sparsity 0.1:") &&
                           Catch::Contains("dsgeval: sensitivity layer 2/2 ip2, sparsity 0.98:"));
  std::ifstream csv(dir.file("s.csv"));
  std::string line;
  REQUIRE(std::getline(csv, line));
  CHECK(line == "layer,granularity,sparsity,accuracy,accuracy_drop");
  std::map<std::pair<std::string, std::string>, double> acc;
  int rows = 0;
  while (std::getline(csv, line)) {
    ++rows;
    std::stringstream ss(line);
    std::string layer, gran, level, a, drop;
    std::getline(ss, layer, ',');
    std::getline(ss, gran, ',');
    std::getline(ss, level, ',');
    std::getline(ss, a, ',');
    std::getline(ss, drop, ',');
    CHECK(gran == "element");
    acc[{layer, level}] = std::stod(a);
    CHECK(std::stod(drop) == Approx(base - std::stod(a)).margin(2e-6));
  }
  CHECK(rows == 2 * 11);
  CHECK(acc.at({"ip1", "0.1"}) == Approx(base).margin(0.02));
  CHECK(acc.at({"ip1", "0.98"}) < base - 0.05);
  CHECK_THAT(r.output, Catch::Contains("Plot: python3 scripts/plot.py sensitivity " + dir.file("s.csv")));
  CHECK_THAT(r.output, Catch::Contains("## Suggested sparsity (largest tested level with a top-1 drop <= 0.5 points)"));
  for (const char* layer : {"ip1", "ip2"}) {
    std::string prefix = std::string("\nlayer \"") + layer + "\": sparsity_param { policy: \"magnitude\" target_sparsity: ";
    std::string none = std::string("\n# layer \"") + layer + "\": no tested sparsity";
    CHECK((r.output.find(prefix) != std::string::npos || r.output.find(none) != std::string::npos));
  }
  // ip1 at 0.1 stays within the default 0.5 points when its accuracy equals the dense one.
  if (acc.at({"ip1", "0.1"}) == base) CHECK_THAT(r.output, Catch::Contains("\nlayer \"ip1\": sparsity_param {"));

  // Filter granularity, chosen levels, default output paths next to the model.
  auto f = run_binary("dsgeval", model + " --threads 1 --sensitivity --granularity filter --levels 0.5,0.25 --max-loss 100");
  INFO(f.output);
  REQUIRE(f.status == 0);
  std::string fcsv = read_all(dir.file("out/sensitivity.csv"));
  CHECK_THAT(fcsv, Catch::Contains("ip1,filter,0.25,") && Catch::Contains("ip2,filter,0.5,"));
  CHECK(std::count(fcsv.begin(), fcsv.end(), '\n') == 1 + 2 * 2);
  CHECK_FALSE(fs::exists(dir.file("out/sensitivity.svg")));  // plots come from scripts/plot.py
  CHECK_THAT(f.output, Catch::Contains("layer \"ip1\": sparsity_param { policy: \"magnitude\" granularity: FILTER "
                                       "target_sparsity: 0.5 }"));
}

TEST_CASE("dsgeval errors are one line with exit status 1", "[apps][dsgeval][errors]") {
  TempDir dir;
  train_tiny(dir);
  auto check_error = [&](const std::string& args, const std::string& expected) {
    auto r = run_binary("dsgeval", args);
    INFO(r.output);
    CHECK(r.status == 1);
    auto end = r.output.find_last_not_of('\n');
    std::string text = end == std::string::npos ? "" : r.output.substr(0, end + 1);
    CHECK(text.find('\n') == std::string::npos);  // exactly one line
    CHECK_THAT(text, Catch::StartsWith("dsgeval: error: ") && Catch::Contains(expected));
  };
  check_error(dir.file("absent.dsgmodel"), "cannot open model file");
  std::mt19937 rng(5);
  std::string junk(4096, '\0');
  for (char& c : junk) c = char(rng());
  std::ofstream(dir.file("random.dsgmodel"), std::ios::binary) << junk;
  check_error(dir.file("random.dsgmodel"), "not a DSG model file");
  std::string bytes = read_all(dir.file("out/tiny_iter_8.dsgmodel"));
  std::ofstream(dir.file("truncated.dsgmodel"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  check_error(dir.file("truncated.dsgmodel"), "truncated");
  std::string flipped = bytes;
  flipped[flipped.size() - 10] = char(flipped[flipped.size() - 10] ^ 0x55);
  std::ofstream(dir.file("flipped.dsgmodel"), std::ios::binary) << flipped;
  check_error(dir.file("flipped.dsgmodel"), "corrupt");
  TempDir empty;
  check_error(dir.file("out/tiny_iter_8.dsgmodel") + " --data " + empty.path().string(),
              (empty.path() / "t10k-images-idx3-ubyte").string());
  check_error(dir.file("out/tiny_iter_8.dsgmodel") + " --sensitivity --levels 0.5,1.5", "--levels: 1.5");
  check_error(dir.file("out/tiny_iter_8.dsgmodel") + " --sensitivity --csv /nonexistent/dir/s.csv",
              "--csv: cannot write '/nonexistent/dir/s.csv'");
  auto usage = run_binary("dsgeval", dir.file("out/tiny_iter_8.dsgmodel") + " --csv x.csv");
  CHECK(usage.status != 0);
  CHECK(run_binary("dsgeval", "").status != 0);
}

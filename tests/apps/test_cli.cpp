// The command line shared by dsgtrain, dsgeval and dsgcompress (apps/tool_cli.hpp, the exit-code
// table in apps/tool_main.hpp), run through the binaries: misuse gives the usage and one error line
// with exit 2; zero / negative counts and --threads < 1 are refused; more threads than cores warn;
// --version; dsgeval --json -; dsgcompress's output extension against the format; the train net
// cost line and the sparsity lines of dsgtrain's log.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "compress/dsgz.hpp"
#include "support/learnable_dataset.hpp"
#include "support/run_tool.hpp"
#include "support/sparse_configs.hpp"

using dsg::test::last_line;
using dsg::test::run_tool;
using dsg::test::TempDir;
namespace fs = std::filesystem;

namespace {

const char* const kTools[] = {"dsgtrain", "dsgeval", "dsgcompress"};

std::string write(const TempDir& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir.file(name)) << text;
  return dir.file(name);
}

// A dense snapshot of the tiny MLP after 8 iterations.
std::string train_dense(const TempDir& dir) {
  const std::string cfg = write(dir, "tiny.prototxt", dsg::test::tiny_mlp_solver(dir.path().string(), 8));
  auto r = run_tool("dsgtrain", cfg + " --threads 1 --seed 1 --output " + dir.file("out"));
  INFO(r.output);
  REQUIRE(r.status == 0);
  REQUIRE(fs::exists(dir.file("out/tiny_iter_8.dsgmodel")));
  return dir.file("out/tiny_iter_8.dsgmodel");
}

// The project version from CMakeLists.txt's project(dsg VERSION x.y.z ...).
std::string project_version() {
  std::ifstream in(std::string(DSG_SOURCE_DIR) + "/CMakeLists.txt");
  std::stringstream text;
  text << in.rdbuf();
  std::smatch m;
  const std::string s = text.str();
  REQUIRE(std::regex_search(s, m, std::regex(R"(project\(dsg VERSION ([0-9.]+))")));
  return m[1];
}

// Misuse: exit 2, the usage, and the error as the last line.
void check_usage_error(const std::string& tool, const std::string& args, const std::string& expected) {
  auto r = run_tool(tool, args);
  INFO(tool << " " << args << "\n" << r.output);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Catch::Contains("Usage:"));
  CHECK_THAT(last_line(r.output), Catch::StartsWith(tool + ": error: ") && Catch::Contains(expected));
}

int count_lines(const std::string& text, const std::regex& re) {
  int n = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) n += std::regex_search(line, re);
  return n;
}

}  // namespace

TEST_CASE("every tool prints its version with the build's options", "[apps][cli]") {
  const std::string version = project_version();
  for (const std::string tool : kTools) {
    auto r = run_tool(tool, "--version", false);
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK(std::regex_match(r.output, std::regex(tool + " " + std::regex_replace(version, std::regex(R"(\.)"), R"(\.)") +
                                                R"( \(CUDA: (on|off), MPI: (on|off), ONNX: (on|off)\)\n)")));
    auto help = run_tool(tool, "--help", false);
    CHECK(help.status == 0);
    CHECK_THAT(help.output, Catch::Contains("Usage:") && Catch::Contains("--version"));
  }
}

TEST_CASE("misuse prints the usage and the error, exit 2, in every tool", "[apps][cli]") {
  for (const std::string tool : kTools) {
    // The tool's required arguments (CLI11 reports a missing one before an unknown option).
    const std::string base = tool == "dsgcompress" ? "model -o x.dsgz" : "model";
    check_usage_error(tool, "", "required");                                  // missing argument
    check_usage_error(tool, base + " --no-such-option", "--no-such-option");  // unknown option
    check_usage_error(tool, base + " --threads", "--threads");                // missing value
    check_usage_error(tool, base + " --threads many", "--threads");           // bad value
    check_usage_error(tool, base + " --threads 0", "--threads");              // threads < 1
    check_usage_error(tool, base + " --threads -1", "--threads");
  }
  check_usage_error("dsgtrain", "cfg --epochs 1 --iterations 2", "excludes");
  check_usage_error("dsgeval", "model --batches 0", "--batches");
  check_usage_error("dsgeval", "model --sample 0", "--sample");
  check_usage_error("dsgcompress", "model -o x.dsgz --format zip", "--format");
  // A runtime error is exit 1, one line, no usage.
  auto r = run_tool("dsgeval", "/nonexistent/model.dsgmodel");
  CHECK(r.status == 1);
  CHECK_THAT(r.output, !Catch::Contains("Usage:"));
  CHECK_THAT(last_line(r.output), Catch::StartsWith("dsgeval: error: "));
}

TEST_CASE("dsgtrain refuses zero and negative --epochs / --iterations before training", "[apps][cli][dsgtrain]") {
  TempDir dir;
  dsg::test::write_learnable_idx(dir, 64, 50);
  const std::string cfg = write(dir, "tiny.prototxt", dsg::test::tiny_mlp_solver(dir.path().string(), 8));
  for (const std::string args : {"--epochs 0", "--epochs -1", "--epochs=-0.5", "--epochs nan", "--iterations 0",
                                 "--iterations -5", "--iterations=-5"}) {
    const std::string option = args.substr(0, args.find_first_of(" ="));
    check_usage_error("dsgtrain", cfg + " " + args + " --output " + dir.file("out"), option);
  }
  CHECK_FALSE(fs::exists(dir.file("out")));  // nothing ran
  // A positive count still overrides max_iter.
  auto r = run_tool("dsgtrain", cfg + " --iterations 3 --threads 1 --output " + dir.file("ok"));
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(fs::exists(dir.file("ok/tiny_iter_3.dsgmodel")));
}

TEST_CASE("more threads than cores run with a warning line", "[apps][cli]") {
  TempDir dir;
  dsg::test::write_learnable_idx(dir, 64, 50);
  const std::string model = train_dense(dir);
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  const std::string many = std::to_string(cores + 1);
  const std::string warning = ": warning: --threads " + many + " exceeds the " + std::to_string(cores) + " cores";
  auto train = run_tool("dsgtrain", dir.file("tiny.prototxt") + " --iterations 2 --threads " + many + " --output " +
                                        dir.file("many"));
  auto eval = run_tool("dsgeval", model + " --batches 1 --threads " + many);
  auto compress = run_tool("dsgcompress", model + " -o " + dir.file("m.dsgz") + " --threads " + many);
  for (const auto* r : {&train, &eval, &compress}) {
    INFO(r->output);
    CHECK(r->status == 0);
    CHECK_THAT(r->output, Catch::Contains(warning));
  }
  auto fits = run_tool("dsgeval", model + " --batches 1 --threads 1");
  CHECK(fits.status == 0);
  CHECK_THAT(fits.output, !Catch::Contains("warning: --threads"));
}

TEST_CASE("dsgeval --json - writes the JSON alone to stdout", "[apps][cli][dsgeval]") {
  TempDir dir;
  dsg::test::write_learnable_idx(dir, 64, 50);
  const std::string model = train_dense(dir);
  const fs::path dash = fs::current_path() / "-";
  const bool dash_before = fs::exists(dash);
  auto r = run_tool("dsgeval", model + " --json -", false);
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.front() == '{');
  CHECK(r.output.substr(r.output.size() - 2) == "}\n");
  CHECK_THAT(r.output, Catch::Contains("\"top1\"") && !Catch::Contains("| layer |"));
  CHECK(fs::exists(dash) == dash_before);  // no file named "-"
  const std::string saved = write(dir, "stdout.json", r.output);
  if (std::system("/usr/bin/python3 -c 'import json' 2>/dev/null") == 0)
    CHECK(std::system(("/usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' " + saved).c_str()) == 0);
  // The same JSON as --json FILE.
  REQUIRE(run_tool("dsgeval", model + " --json " + dir.file("file.json")).status == 0);
  std::ifstream in(dir.file("file.json"));
  std::stringstream file;
  file << in.rdbuf();
  std::string expected = file.str();
  if (expected.empty() || expected.back() != '\n') expected += '\n';
  // Timings differ between runs: compare everything but the numbers after "seconds" / "per_sec" keys.
  const std::regex timing(R"re("[a-z_]*(seconds|per_sec|_s)": [-0-9.eE+]+)re");
  CHECK(std::regex_replace(r.output, timing, "T") == std::regex_replace(expected, timing, "T"));
}

TEST_CASE("dsgcompress checks the output extension against the format", "[apps][cli][dsgcompress]") {
  TempDir dir;
  dsg::test::write_learnable_idx(dir, 64, 50);
  const std::string model = train_dense(dir);
  check_usage_error("dsgcompress", model + " --format onnx -o " + dir.file("x.dsgz"), "extension .dsgz");
  check_usage_error("dsgcompress", model + " --format dsgz -o " + dir.file("x.onnx"), "extension .onnx");
  check_usage_error("dsgcompress", model + " --decode -o " + dir.file("x.onnx"), "--decode writes a .dsgmodel");
  check_usage_error("dsgcompress", model + " --thin -o " + dir.file("x.dsgz"), "--thin writes");
  check_usage_error("dsgcompress", model + " -o " + dir.file("x.DSGMODEL"), "extension .dsgmodel");
  check_usage_error("dsgcompress", model + " --shared-weights -o " + dir.file("x.dsgz"), "--shared-weights");
  for (const char* f : {"x.dsgz", "x.onnx", "x.DSGMODEL"}) CHECK_FALSE(fs::exists(dir.file(f)));
  // Other extensions are taken as given.
  auto bin = run_tool("dsgcompress", model + " -o " + dir.file("x.bin"));
  INFO(bin.output);
  CHECK(bin.status == 0);
  CHECK(dsg::compress::looks_like_dsgz(dir.file("x.bin")));
  // An output named *.onnx selects --format onnx.
  auto onnx = run_tool("dsgcompress", model + " -o " + dir.file("y.onnx"));
  INFO(onnx.output);
#ifdef DSG_WITH_ONNX
  CHECK(onnx.status == 0);
  CHECK_THAT(onnx.output, Catch::Contains("ONNX opset"));
  CHECK_FALSE(dsg::compress::looks_like_dsgz(dir.file("y.onnx")));
#else
  CHECK(onnx.status == 1);
  CHECK_THAT(last_line(onnx.output), Catch::Contains("built without ONNX support"));
#endif
}

TEST_CASE("dsgtrain's log: the train net cost line and sparsity lines only when they change", "[apps][cli][dsgtrain]") {
  TempDir dir;
  dsg::test::write_learnable_idx(dir, 128, 50);
  // FINE (element) pruning of ip1 to 85% at iteration 10 of 40, a test and a display every 5.
  std::string text = dsg::test::tiny_mlp_solver(dir.path().string(), 40,
                                                dsg::test::schedule("phase { mode: PRUNE start_iter: 10 }"));
  text = dsg::test::with_sparsity(text, "ip1", "policy: \"magnitude\" target_sparsity: 0.85");
  text = std::regex_replace(text, std::regex("display: 0"), "display: 5");
  text = std::regex_replace(text, std::regex("test_interval: 40"), "test_interval: 20");
  auto r = run_tool("dsgtrain", write(dir, "fine.prototxt", text) + " --threads 1 --seed 4 --output " + dir.file("o"));
  INFO(r.output);
  REQUIRE(r.status == 0);
  // Caffe's parse_log.sh counts every "Iteration N, " line: the cost line must not be one.
  CHECK(count_lines(r.output, std::regex(R"(Iteration \d+, train net cost)")) == 0);
  CHECK(count_lines(r.output, std::regex(R"(Train net cost at iteration (20|40): training MACs)")) == 2);
  // After pruning, the dense kernels still run every MAC (1.00x as run); the non-zero weights show
  // what FINE sparsity could save: ip1 (144 x 32) keeps 15% of its weights, ip2 (32 x 4) all.
  std::smatch m;
  const std::regex cost(R"(Train net cost at iteration 40: training MACs \S+ -> \S+ as run \(([0-9.]+)x, search [^)]*\), )"
                        R"(\S+ with non-zero weights \(([0-9.]+)x\), inference MACs \S+ -> \S+ as run \(([0-9.]+)x\), )"
                        R"(\S+ with non-zero weights \(([0-9.]+)x\))");
  REQUIRE(std::regex_search(r.output, m, cost));
  CHECK(std::stod(m[1]) == Approx(1.0));
  CHECK(std::stod(m[3]) == Approx(1.0));
  const double dense = 144.0 * 32 + 32 * 4, nonzero = 144.0 * 32 * 0.15 + 32 * 4;
  CHECK(std::stod(m[4]) == Approx(dense / nonzero).epsilon(0.02));
  CHECK(std::stod(m[2]) > 4.0);  // training: the backward passes' MACs shrink likewise
  // Eight displays; the ip1 line prints before pruning and once after, not at every display.
  CHECK(count_lines(r.output, std::regex(R"(Iteration \d+, loss = )")) == 8);
  const int sparsity_lines = count_lines(r.output, std::regex(R"(Sparsity ip1 \(magnitude FINE\))"));
  CHECK(sparsity_lines >= 1);
  CHECK(sparsity_lines <= 2);
  CHECK_THAT(r.output, Catch::Contains("Sparsity ip1 (magnitude FINE): fired 1 times, sparsity 85.00%"));
}

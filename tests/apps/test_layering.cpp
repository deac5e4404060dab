// scripts/check_layering.sh (run by .ci/run and as the CTest test "layering") fails on an include
// against the folder order and names the line; it passes the real tree and a tree that follows it.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "datasets/synthetic_data.hpp"

namespace {

struct ScriptRun {
  int status;
  std::string output;
};

ScriptRun check_layering(const std::string& root) {
  const std::string cmd = "bash " + std::string(DSG_SOURCE_DIR) + "/scripts/check_layering.sh " + root + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe);
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

void write(const dsg::test::TempDir& dir, const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(dir.file(path)).parent_path());
  std::ofstream(dir.file(path)) << text;
}

}  // namespace

TEST_CASE("the layering check passes the source tree", "[layering]") {
  const ScriptRun r = check_layering(DSG_SOURCE_DIR);
  INFO(r.output);
  CHECK(r.status == 0);
}

TEST_CASE("the layering check names includes against the folder order", "[layering]") {
  dsg::test::TempDir dir;
  write(dir, "runtime/net.hpp", "#include \"runtime/layer.hpp\"\n#include <vector>\n");
  write(dir, "layers/relu.cpp", "#include \"runtime/layer.hpp\"\n#include \"layers/unit_drop.hpp\"\n");
  write(dir, "sparsity/policy.cpp", "#include \"layers/drs.hpp\"\n");
  write(dir, "apps/tool.cpp", "#include \"compress/dsgz.hpp\"\n#include \"datasets/idx.hpp\"\n");
  SECTION("a tree that follows the order") {
    const ScriptRun r = check_layering(dir.path().string());
    INFO(r.output);
    CHECK(r.status == 0);
  }
  SECTION("the engine including a plug-in") {
    write(dir, "runtime/solver.cpp", "#include \"runtime/net.hpp\"\n\n#include \"sparsity/controller.hpp\"\n");
    const ScriptRun r = check_layering(dir.path().string());
    CHECK(r.status == 1);
    CHECK_THAT(r.output, Catch::Contains("runtime/solver.cpp:3: includes \"sparsity/controller.hpp\"") &&
                             Catch::Contains("runtime/ may include only: runtime"));
  }
  SECTION("siblings and relative paths") {
    write(dir, "layers/data.cpp", "#include \"../datasets/source.hpp\"\n");
    write(dir, "datasets/data_layer.cpp", "  #  include \"layers/relu.hpp\"\n");
    const ScriptRun r = check_layering(dir.path().string());
    CHECK(r.status == 1);
    CHECK_THAT(r.output, Catch::Contains("layers/data.cpp:1: includes \"datasets/source.hpp\"") &&
                             Catch::Contains("datasets/data_layer.cpp:1: includes \"layers/relu.hpp\""));
  }
}

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "datasets/synthetic_data.hpp"
#include "runtime/error.hpp"
#include "runtime/model_file.hpp"

using namespace dsg;
using test::TempDir;

static ModelFile sample_model(int values, float base) {
  ModelFile m;
  m.set_created_by("test");
  ParamBlob* p = m.add_param();
  p->set_layer("ip");
  p->set_index(0);
  p->mutable_blob()->mutable_shape()->add_dim(values);
  for (int i = 0; i < values; ++i) p->mutable_blob()->add_data(base + i);
  m.mutable_solver_state()->set_iter(42);
  return m;
}

static std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

static void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST_CASE("model file round trip", "[model_file]") {
  TempDir dir;
  write_model_file(dir.file("m.dsgmodel"), sample_model(100, 1.5f));
  ModelFile back = read_model_file(dir.file("m.dsgmodel"));
  CHECK(back.solver_state().iter() == 42);
  REQUIRE(back.param_size() == 1);
  CHECK(back.param(0).blob().data(99) == 100.5f);
}

TEST_CASE("truncated, corrupt, foreign and missing model files are rejected", "[model_file][errors]") {
  TempDir dir;
  std::string path = dir.file("m.dsgmodel");
  write_model_file(path, sample_model(1000, 0));
  std::string good = read_all(path);

  write_all(path, good.substr(0, good.size() / 2));
  CHECK_THROWS_WITH(read_model_file(path), Catch::Contains("truncated"));

  std::string flipped = good;
  flipped[flipped.size() - 10] ^= 0x40;
  write_all(path, flipped);
  CHECK_THROWS_WITH(read_model_file(path), Catch::Contains("checksum"));

  write_all(path, "name: \"LeNet\"\nlayer { }\n");
  CHECK_THROWS_WITH(read_model_file(path), Catch::Contains("not a DSG model file"));

  write_all(path, "");
  CHECK_THROWS_AS(read_model_file(path), Error);

  CHECK_THROWS_WITH(read_model_file(dir.file("absent.dsgmodel")), Catch::Contains("cannot open"));

  // Random garbage of many lengths never crashes.
  for (size_t n = 0; n < good.size(); n += 97) {
    std::string cut = good.substr(0, n);
    write_all(path, cut);
    CHECK_THROWS_AS(read_model_file(path), Error);
  }
}

TEST_CASE("a kill during snapshot writing leaves the previous snapshot loadable", "[model_file][atomic]") {
  TempDir dir;
  std::string path = dir.file("m.dsgmodel");
  write_model_file(path, sample_model(10, 7.0f));
  for (int attempt = 0; attempt < 5; ++attempt) {
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ModelFile big = sample_model(4 << 20, 1.0f);  // ~16 MB: the write takes a while
      for (;;) write_model_file(path, big);
    }
    usleep(useconds_t(20000 + attempt * 15000));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    ModelFile back;
    REQUIRE_NOTHROW(back = read_model_file(path));
    CHECK(back.solver_state().iter() == 42);
  }
}

// NumPy export (compress/npz.hpp, dsgcompress --format npz): the archive's structure is checked
// here byte by byte, and, where Debian's python3-numpy and python3-torch are installed, numpy reads
// it and a PyTorch module given the arrays with load_state_dict computes the logits DSG computes.
#include <catch2/catch.hpp>

#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "compress/npz.hpp"
#include "datasets/synthetic_data.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/model_file.hpp"
#include "runtime/net.hpp"
#include "support/run_tool.hpp"

using namespace dsg;
using dsg::compress::NpyArray;
using dsg::test::TempDir;

namespace {

uint32_t get32(const std::string& s, size_t at) {
  uint32_t v;
  std::memcpy(&v, s.data() + at, 4);
  return v;
}
uint16_t get16(const std::string& s, size_t at) {
  uint16_t v;
  std::memcpy(&v, s.data() + at, 2);
  return v;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A 12 -> 6 -> ReLU -> 3 MLP with an Input layer (batch 4), fixed seed.
const char* kNet = R"(
  name: "mlp"
  layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 12 } } }
  layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
          inner_product_param { num_output: 6 weight_filler { type: "gaussian" std: 0.5 }
                                bias_filler { type: "gaussian" std: 0.5 } } }
  layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
  layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
          inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 }
                                bias_filler { type: "gaussian" std: 0.5 } } }
)";

}  // namespace

TEST_CASE("npy headers follow format 1.0 with 64-byte alignment", "[npz]") {
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{5}, std::vector<int64_t>{2, 3},
                                            std::vector<int64_t>{2, 1, 2, 2}}) {
    NpyArray a{"x", shape, {}};
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    for (int64_t i = 0; i < n; ++i) a.data.push_back(0.5f * float(i));
    const std::string b = compress::npy_bytes(a);
    REQUIRE(b.compare(0, 6, "\x93NUMPY") == 0);
    CHECK(b[6] == 1);
    CHECK(b[7] == 0);
    const size_t header = get16(b, 8);
    CHECK((10 + header) % 64 == 0);
    const std::string dict = b.substr(10, header);
    CHECK(dict.find("'descr': '<f4'") != std::string::npos);
    CHECK(dict.back() == '\n');
    if (shape.size() == 1) CHECK(dict.find("'shape': (5,)") != std::string::npos);
    if (shape.size() == 2) CHECK(dict.find("'shape': (2, 3)") != std::string::npos);
    REQUIRE(b.size() == 10 + header + size_t(n) * 4);
    float last;
    std::memcpy(&last, b.data() + b.size() - 4, 4);
    CHECK(last == 0.5f * float(n - 1));
  }
  CHECK_THROWS_WITH(compress::npy_bytes(NpyArray{"bad", {2, 2}, {1, 2, 3}}), Catch::Contains("holds 3 values"));
}

TEST_CASE("npz archives are stored zips with correct CRCs and a central directory", "[npz]") {
  TempDir dir;
  std::vector<NpyArray> arrays{{"a.weight", {2, 2}, {1, 2, 3, 4}}, {"a.bias", {2}, {5, 6}}};
  compress::write_npz(dir.file("m.npz"), arrays);
  const std::string z = slurp(dir.file("m.npz"));
  size_t at = 0;
  for (const auto& a : arrays) {
    REQUIRE(get32(z, at) == 0x04034b50u);
    CHECK(get16(z, at + 8) == 0);  // stored
    const uint32_t crc = get32(z, at + 14), size = get32(z, at + 18);
    const uint16_t name_len = get16(z, at + 26), extra = get16(z, at + 28);
    CHECK(z.substr(at + 30, name_len) == a.name + ".npy");
    const std::string body = z.substr(at + 30 + name_len + extra, size);
    CHECK(body == compress::npy_bytes(a));
    CHECK(crc == uint32_t(crc32(0L, reinterpret_cast<const Bytef*>(body.data()), uInt(body.size()))));
    at += 30 + name_len + extra + size;
  }
  CHECK(get32(z, at) == 0x02014b50u);  // the central directory follows the entries
  const size_t end = z.size() - 22;
  REQUIRE(get32(z, end) == 0x06054b50u);
  CHECK(get16(z, end + 10) == 2);
  CHECK(get32(z, end + 16) == at);
}

TEST_CASE("dsgcompress --format npz: PyTorch loads the weights and gets DSG's logits", "[npz]") {
  TempDir dir;
  NetParameter param;
  parse_text_proto(kNet, "npz-test", &param);
  std::mt19937_64 rng(11);
  Net net(param, TEST, rng);
  ModelFile model;
  *model.mutable_net() = param;
  net.params_to_proto(&model);
  write_model_file(dir.file("m.dsgmodel"), model);
  // DSG's logits on a fixed input.
  Tensor& data = net.blob("data");
  for (int64_t i = 0; i < data.count(); ++i) data.mutable_data()[i] = std::sin(0.37f * float(i)) * 2.0f;
  Context ctx;
  ctx.phase = TEST;
  net.forward(ctx);
  const Tensor& logits = net.blob("ip2");
  compress::write_npz(dir.file("io.npz"),
                      {{"input", {4, 12}, std::vector<float>(data.data(), data.data() + data.count())},
                       {"logits", {4, 3}, std::vector<float>(logits.data(), logits.data() + logits.count())}});

  const auto r = test::run_tool("dsgcompress", dir.file("m.dsgmodel") + " --format npz -o " + dir.file("m.npz"));
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("ip1.weight ip1.bias ip2.weight ip2.bias") != std::string::npos);

  if (std::system("/usr/bin/python3 -c 'import numpy, torch' > /dev/null 2>&1") != 0) {
    WARN("SKIPPED the PyTorch check: /usr/bin/python3 lacks numpy or torch (apt-get install python3-torch)");
    return;
  }
  std::ofstream(dir.file("check.py")) << R"(
import sys, numpy as np, torch
w = np.load(sys.argv[1]); io = np.load(sys.argv[2])
assert sorted(w.files) == ['ip1.bias', 'ip1.weight', 'ip2.bias', 'ip2.weight'], w.files
class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ip1 = torch.nn.Linear(12, 6)
        self.ip2 = torch.nn.Linear(6, 3)
    def forward(self, x):
        return self.ip2(torch.relu(self.ip1(x)))
m = Mlp()
m.load_state_dict({k: torch.from_numpy(w[k]) for k in w.files})
out = m(torch.from_numpy(io['input'])).detach().numpy()
# 12- and 6-term float32 dot products, two BLAS libraries: a few ulps of the sums' magnitudes.
err = np.abs(out - io['logits']).max()
print('max |torch - dsg| =', err)
sys.exit(0 if err < 1e-5 * (1 + np.abs(io['logits']).max()) else 1)
)";
  const std::string cmd = "/usr/bin/python3 " + dir.file("check.py") + " " + dir.file("m.npz") + " " +
                          dir.file("io.npz") + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe);
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof buf, pipe)) out += buf;
  const int status = pclose(pipe);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("max |torch - dsg|") != std::string::npos);
}

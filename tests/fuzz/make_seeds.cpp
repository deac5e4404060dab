// Writes small valid .dsgz files covering every blob encoding into DIR (seeds for dsgz_fuzz).
#include <cstdio>
#include <fstream>
#include <random>
#include <string>

#include "compress/dsgz.hpp"

using namespace dsg;

namespace {

ModelFile model(const std::vector<int64_t>& shape, double density, int method, int bits, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  ModelFile m;
  LayerParameter* l = m.mutable_net()->add_layer();
  l->set_name("w");
  l->set_type(shape.size() == 4 ? "Convolution" : "InnerProduct");
  ParamBlob* pb = m.add_param();
  pb->set_layer("w");
  pb->set_index(0);
  int64_t n = 1;
  for (int64_t d : shape) pb->mutable_blob()->mutable_shape()->add_dim(d), n *= d;
  QuantizerState* q = method >= 0 ? m.add_quantizer() : nullptr;
  const int k = method == 1 ? 3 : method == 0 ? (1 << bits) : 16;
  if (q) {
    q->set_layer("w");
    q->set_method(method == 1 ? QuantizationParameter::TTQ : QuantizationParameter::KMEANS);
    q->set_bits(uint32_t(bits));
    q->set_active(true);
    q->add_codebook(0.0f);
    for (int c = 1; c < k; ++c) q->add_codebook(method == 1 && c == 2 ? -0.3f : 0.05f * float(c));
  }
  std::string codes;
  for (int64_t i = 0; i < n; ++i) {
    int c = u(rng) < density ? 1 + int(rng() % uint64_t(k - 1)) : 0;
    codes.push_back(char(c));
    pb->mutable_blob()->add_data(q ? q->codebook(c) : (c ? 0.01f * float(c) : 0.0f));
  }
  if (q) q->set_codes(codes);
  ParamBlob* bias = m.add_param();
  bias->set_layer("w");
  bias->set_index(1);
  bias->mutable_blob()->mutable_shape()->add_dim(shape[0]);
  for (int64_t i = 0; i < shape[0]; ++i) bias->mutable_blob()->add_data(0.1f * float(i));
  return m;
}

void write(const std::string& path, const ModelFile& m, int index_bits = 0) {
  compress::CompressOptions o;
  o.index_bits = index_bits;
  // The seeds' layers store blob 0 as their weights (what weight_blobs() says of them).
  auto bytes = compress::compress_model(m, {{"w", {0}}}, o).bytes;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), long(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return std::fprintf(stderr, "usage: make_seeds DIR\n"), 2;
  const std::string dir = argv[1];
  write(dir + "/codebook.dsgz", model({20, 30}, 0.1, 0, 4, 1));
  write(dir + "/codebook_fillers.dsgz", model({20, 30}, 0.05, 0, 3, 2), 2);
  write(dir + "/conv_blocks.dsgz", model({6, 3, 3, 3}, 0.3, 0, 5, 3));
  write(dir + "/ternary.dsgz", model({10, 12}, 0.7, 1, 2, 4));
  write(dir + "/sparse_f32.dsgz", model({20, 30}, 0.1, -1, 0, 5));
  write(dir + "/raw.dsgz", model({5, 7}, 0.9, -1, 0, 6));
  return 0;
}

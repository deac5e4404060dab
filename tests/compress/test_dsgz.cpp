// The .dsgz format: bit-identical round trips for every encoding (codebook, ternary, sparse floats,
// raw; element and block indices; forced narrow indices with fillers), the EIE-style kernel
// against the dense product, corrupt and truncated files rejected with clear errors, a short
// mutation fuzz of the parser (checksums off, so the parser itself is exercised) and the cost model.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include <zlib.h>

#include "compress/cost_model.hpp"
#include "compress/weight_blobs.hpp"
#include "compress/eie_operator.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/math.hpp"
#include "runtime/parallel.hpp"
#include "runtime/solver.hpp"
#include "sparsity/controller.hpp"
#include "support/sparse_configs.hpp"
#include "support/tolerance.hpp"

using namespace dsg;
using namespace dsg::compress;
using test::schedule;
using test::TempDir;
using test::with_quant;
using test::with_sparsity;

namespace {

// A ModelFile with one weight blob `layer`/0 of `shape` (type InnerProduct or Convolution).
ModelFile one_blob(const std::string& type, const std::vector<int64_t>& shape, const std::vector<float>& values) {
  ModelFile m;
  LayerParameter* l = m.mutable_net()->add_layer();
  l->set_name("w");
  l->set_type(type);
  ParamBlob* pb = m.add_param();
  pb->set_layer("w");
  pb->set_index(0);
  for (int64_t d : shape) pb->mutable_blob()->mutable_shape()->add_dim(d);
  *pb->mutable_blob()->mutable_data() = {values.begin(), values.end()};
  return m;
}

// Adds k-means state to `m` for its blob: codebook of 2^bits values (0 first), values snapped to it.
void add_codebook(ModelFile& m, int bits, std::mt19937_64& rng) {
  QuantizerState* q = m.add_quantizer();
  q->set_layer("w");
  q->set_method(QuantizationParameter::KMEANS);
  q->set_bits(uint32_t(bits));
  q->set_active(true);
  std::normal_distribution<float> n(0.0f, 0.1f);
  q->add_codebook(0.0f);
  for (int k = 1; k < (1 << bits); ++k) q->add_codebook(n(rng));
  auto* data = m.mutable_param(0)->mutable_blob()->mutable_data();
  std::string codes;
  for (int i = 0; i < data->size(); ++i) {
    uint8_t c = data->Get(i) == 0.0f ? 0 : uint8_t(1 + rng() % ((1u << bits) - 1));
    codes.push_back(char(c));
    data->Set(i, q->codebook(c));
  }
  q->set_codes(codes);
}

std::vector<float> sparse_values(int64_t n, double density, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<float> g(0.0f, 0.1f);
  std::vector<float> v(size_t(n), 0.0f);
  for (auto& x : v)
    if (u(rng) < density) x = g(rng) + (g(rng) > 0 ? 0.01f : -0.01f);
  return v;
}

// Every blob of `m` survives compress -> bytes -> parse -> decode bit for bit.
DsgzModel round_trip(const ModelFile& m, const CompressOptions& opt = {}) {
  CompressResult r = compress_model(m, opt);
  DsgzModel d = read_dsgz(r.bytes.data(), r.bytes.size());
  ModelFile back = decode_model(d);
  REQUIRE(back.param_size() == m.param_size());
  for (int i = 0; i < m.param_size(); ++i) {
    const auto& a = m.param(i).blob();
    const auto& b = back.param(i).blob();
    REQUIRE(a.data_size() == b.data_size());
    CHECK(std::memcmp(a.data().data(), b.data().data(), sizeof(float) * size_t(a.data_size())) == 0);
    CHECK(std::vector<int64_t>(a.shape().dim().begin(), a.shape().dim().end()) ==
          std::vector<int64_t>(b.shape().dim().begin(), b.shape().dim().end()));
  }
  return d;
}

std::string error_of(const std::vector<uint8_t>& bytes, bool verify = true) {
  try {
    read_dsgz(bytes.data(), bytes.size(), verify);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("dsgz round trips every encoding bit-identically", "[dsgz]") {
  std::mt19937_64 rng(3);
  SECTION("k-means codebook, element indices") {
    ModelFile m = one_blob("InnerProduct", {40, 100}, sparse_values(4000, 0.08, rng));
    add_codebook(m, 5, rng);
    DsgzModel d = round_trip(m);
    CHECK(d.blobs[0].kind == BlobKind::CODEBOOK);
    CHECK(d.blobs[0].weight_bits == 5);
  }
  SECTION("forced 2-bit indices need fillers and still round trip") {
    ModelFile m = one_blob("InnerProduct", {40, 100}, sparse_values(4000, 0.05, rng));
    add_codebook(m, 4, rng);
    CompressOptions opt;
    opt.index_bits = 2;
    CompressResult r = compress_model(m, opt);
    CHECK(r.stats[0].index_bits == 2);
    CHECK(r.stats[0].fillers > 0);
    CHECK(r.stats[0].entries == r.stats[0].nonzeros + r.stats[0].fillers);
    round_trip(m, opt);
  }
  SECTION("kernel-structured sparsity is stored with one index per kernel") {
    // [8, 4, 3, 3]: whole 3x3 kernels are zero or non-zero.
    std::vector<float> v(8 * 4 * 9, 0.0f);
    std::normal_distribution<float> g(0.0f, 0.1f);
    for (int k = 0; k < 32; ++k)
      if (rng() % 3 == 0)
        for (int j = 0; j < 9; ++j) v[size_t(k * 9 + j)] = 0.05f + std::fabs(g(rng));
    ModelFile m = one_blob("Convolution", {8, 4, 3, 3}, v);
    add_codebook(m, 6, rng);
    CompressResult blocks = compress_model(m);
    CHECK(blocks.stats[0].block >= 9);
    CompressOptions fine;
    fine.try_blocks = false;
    CompressResult element = compress_model(m, fine);
    CHECK(element.stats[0].block == 1);
    CHECK(blocks.stats[0].bytes < element.stats[0].bytes);
    round_trip(m);
    round_trip(m, fine);
  }
  SECTION("TTQ ternary codes pack 4 per byte with two scales") {
    ModelFile m = one_blob("InnerProduct", {30, 100}, std::vector<float>(3000, 0.0f));
    QuantizerState* q = m.add_quantizer();
    q->set_layer("w");
    q->set_method(QuantizationParameter::TTQ);
    q->set_active(true);
    for (float c : {0.0f, 0.7f, -0.4f}) q->add_codebook(c);
    std::string codes;
    auto* data = m.mutable_param(0)->mutable_blob()->mutable_data();
    for (int i = 0; i < 3000; ++i) {
      uint8_t c = uint8_t(rng() % 3);
      codes.push_back(char(c));
      data->Set(i, q->codebook(c));
    }
    q->set_codes(codes);
    CompressResult r = compress_model(m);
    CHECK(r.stats[0].kind == BlobKind::TERNARY);
    CHECK(r.stats[0].bytes < 3000 * 4 / 15);  // ~16x smaller than 32-bit
    DsgzModel d = round_trip(m);
    CHECK(decode_codes(d.blobs[0]) == std::vector<uint32_t>(codes.begin(), codes.end()));
  }
  SECTION("unquantized sparse weights as relative indices + floats; dense ones raw") {
    ModelFile m = one_blob("InnerProduct", {50, 60}, sparse_values(3000, 0.1, rng));
    ParamBlob* bias = m.add_param();
    bias->set_layer("w");
    bias->set_index(1);
    bias->mutable_blob()->mutable_shape()->add_dim(50);
    for (int i = 0; i < 50; ++i) bias->mutable_blob()->add_data(0.01f * float(i));
    CompressResult r = compress_model(m);
    CHECK(r.stats[0].kind == BlobKind::SPARSE_F32);
    CHECK(r.stats[1].kind == BlobKind::RAW);
    round_trip(m);
  }
  SECTION("a quantizer state that does not match the weights is refused") {
    ModelFile m = one_blob("InnerProduct", {4, 8}, sparse_values(32, 0.5, rng));
    add_codebook(m, 3, rng);
    m.mutable_param(0)->mutable_blob()->set_data(1, 123.0f);
    CHECK_THROWS_WITH(compress_model(m), Catch::Contains("is not the codebook value of its code"));
  }
}

TEST_CASE("the EIE-style kernel equals the dense product", "[dsgz][eie]") {
  std::mt19937_64 rng(9);
  std::normal_distribution<float> g(0.0f, 1.0f);
  auto check = [&](const ModelFile& m, const CompressOptions& opt) {
    CompressResult r = compress_model(m, opt);
    DsgzModel d = read_dsgz(r.bytes.data(), r.bytes.size());
    const CompressedBlob& b = d.blobs[0];
    auto op = make_compressed_operator(b);
    const int64_t rows = op->rows(), cols = op->cols(), p = 7;
    std::vector<float> w = decode_values(b), in(size_t(cols * p)), out(size_t(rows * p)), ref(size_t(rows * p));
    for (auto& x : in) x = g(rng);
    for (int64_t k = 0; k < p; ++k) in[size_t(3 * p + k)] = 0.0f;  // an all-zero input row is skipped
    op->multiply(in.data(), p, out.data());
    gemm(false, false, int(rows), int(p), int(cols), 1.0f, w.data(), in.data(), 0.0f, ref.data());
    const auto tol = test::gemm_tolerance(false, false, int(rows), int(p), int(cols), 1.0f, w.data(), in.data());
    test::check_within("out", int64_t(out.size()), out, ref, tol);
  };
  CompressOptions fine;
  fine.try_blocks = false;
  ModelFile cb = one_blob("InnerProduct", {30, 50}, sparse_values(1500, 0.1, rng));
  add_codebook(cb, 4, rng);
  check(cb, {});
  CompressOptions narrow;
  narrow.index_bits = 2;
  check(cb, narrow);
  check(one_blob("InnerProduct", {30, 50}, sparse_values(1500, 0.2, rng)), fine);
  // Filter-structured rows: blocks of a whole row.
  std::vector<float> rows = sparse_values(1500, 1.0, rng);
  for (int r = 0; r < 30; r += 2) std::fill(rows.begin() + r * 50, rows.begin() + r * 50 + 50, 0.0f);
  ModelFile filt = one_blob("Convolution", {30, 2, 5, 5}, rows);
  add_codebook(filt, 6, rng);
  CompressResult fr = compress_model(filt);
  CHECK(fr.stats[0].block >= 25);
  check(filt, {});
}

TEST_CASE("InnerProduct and Convolution run through a weight operator with the dense results", "[dsgz][eie]") {
  std::mt19937_64 rng(4);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (const char* type : {"InnerProduct", "Convolution"}) {
    LayerParameter p;
    p.set_name("w");
    p.set_type(type);
    if (std::string(type) == "InnerProduct") {
      p.mutable_inner_product_param()->set_num_output(6);
      p.mutable_inner_product_param()->mutable_bias_filler()->set_type("gaussian");
    } else {
      p.mutable_convolution_param()->set_num_output(6);
      p.mutable_convolution_param()->add_kernel_size(3);
      p.mutable_convolution_param()->add_pad(1);
      p.mutable_convolution_param()->mutable_bias_filler()->set_type("gaussian");
    }
    auto layer = create_layer(p);
    Tensor bottom(std::vector<int>{2, 3, 5, 5}), top;
    for (int64_t i = 0; i < bottom.count(); ++i) bottom.mutable_data()[i] = g(rng);
    std::mt19937_64 init(1);
    layer->setup({&bottom}, {&top}, init);
    Tensor& w = *layer->blobs()[0];
    std::vector<float> values = sparse_values(w.count(), 0.3, rng);
    std::vector<int64_t> shape(w.shape().begin(), w.shape().end());
    ModelFile m = one_blob(type, shape, values);
    add_codebook(m, 4, rng);
    std::copy(m.param(0).blob().data().begin(), m.param(0).blob().data().end(), w.mutable_data());
    Context ctx;
    ctx.phase = TEST;
    layer->forward({&bottom}, {&top}, ctx);
    std::vector<float> dense(top.data(), top.data() + top.count());
    // Tolerances (support/tolerance.hpp): the layer is linear in (W, b) and in x, so the dense
    // forward on |x| with |W| and |b| gives each output's sum of |terms|; K = a filter's
    // weights plus the bias.
    std::vector<double> tol(size_t(top.count()));
    {
      std::vector<std::vector<float>> saved;
      for (auto& blob : layer->blobs()) {
        saved.emplace_back(blob->data(), blob->data() + blob->count());
        for (int64_t i = 0; i < blob->count(); ++i) blob->mutable_data()[i] = std::fabs(blob->data()[i]);
      }
      Tensor abs_bottom(bottom.shape()), abs_top;
      for (int64_t i = 0; i < bottom.count(); ++i) abs_bottom.mutable_data()[i] = std::fabs(bottom.data()[i]);
      layer->forward({&abs_bottom}, {&abs_top}, ctx);
      const int64_t terms = w.count() / w.shape(0) + 1;
      for (size_t i = 0; i < tol.size(); ++i) tol[i] = test::reduction_tolerance(terms, abs_top.data()[i]);
      for (size_t b = 0; b < saved.size(); ++b) std::copy(saved[b].begin(), saved[b].end(), layer->blobs()[b]->mutable_data());
    }
    CompressResult r = compress_model(m);
    DsgzModel d = read_dsgz(r.bytes.data(), r.bytes.size());
    REQUIRE(layer->set_weight_operator(make_compressed_operator(d.blobs[0])));
    std::fill(w.mutable_data(), w.mutable_data() + w.count(), std::nanf(""));  // must not be read
    layer->forward({&bottom}, {&top}, ctx);
    test::check_within("top", top.count(), top.data(), dense, tol);
    CHECK_THROWS_WITH(layer->backward({&top}, {true}, {&bottom}, ctx), Catch::Contains("inference only"));
  }
}

TEST_CASE("corrupt, truncated and foreign .dsgz files are rejected with clear errors", "[dsgz][errors]") {
  std::mt19937_64 rng(5);
  ModelFile m = one_blob("InnerProduct", {20, 40}, sparse_values(800, 0.1, rng));
  add_codebook(m, 4, rng);
  const std::vector<uint8_t> good = compress_model(m).bytes;
  REQUIRE(error_of(good).empty());
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + long(n));
    CHECK_FALSE(error_of(cut).empty());
  }
  std::vector<uint8_t> junk = {'g', 'a', 'r', 'b', 'a', 'g', 'e'};
  junk.resize(100, 0);
  CHECK_THAT(error_of(junk), Catch::Contains("not a .dsgz file"));
  for (size_t pos = 0; pos < good.size(); pos += 3) {
    std::vector<uint8_t> bad = good;
    bad[pos] ^= uint8_t(1u << (pos % 8));
    std::string e = error_of(bad);
    CHECK_FALSE(e.empty());
    if (pos >= 8) CHECK_THAT(e, Catch::Contains("checksum") || Catch::Contains("version"));
  }
  // A newer major version (with a consistent header checksum) names both versions.
  std::vector<uint8_t> newer = good;
  newer[8] = 2;
  uint32_t header_crc = uint32_t(crc32(0L, newer.data(), 16));
  for (int i = 0; i < 4; ++i) newer[size_t(16 + i)] = uint8_t(header_crc >> (8 * i));
  CHECK_THAT(error_of(newer), Catch::Contains("format version 2.0"));
}

TEST_CASE("the .dsgz parser survives mutated input (short fuzz run, checksums off)", "[dsgz][fuzz]") {
  std::mt19937_64 rng(11);
  ModelFile m = one_blob("Convolution", {8, 4, 3, 3}, sparse_values(288, 0.2, rng));
  add_codebook(m, 5, rng);
  ParamBlob* bias = m.add_param();
  bias->set_layer("w");
  bias->set_index(1);
  bias->mutable_blob()->mutable_shape()->add_dim(8);
  for (int i = 0; i < 8; ++i) bias->mutable_blob()->add_data(0.5f);
  const std::vector<uint8_t> good = compress_model(m).bytes;
  int parsed = 0, rejected = 0;
  for (int it = 0; it < 4000; ++it) {
    std::vector<uint8_t> bad = good;
    const int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      if (bad.size() <= 9) break;
      switch (rng() % 4) {
        case 0: bad[rng() % bad.size()] ^= uint8_t(1u << (rng() % 8)); break;
        case 1: bad[rng() % bad.size()] = uint8_t(rng()); break;
        case 2: bad.resize(8 + rng() % (bad.size() - 8)); break;
        default: bad.insert(bad.begin() + long(8 + rng() % (bad.size() - 8)), uint8_t(rng())); break;
      }
    }
    try {
      DsgzModel d = read_dsgz(bad.data(), bad.size(), /*verify_checksums=*/false);
      for (const auto& b : d.blobs) (void)decode_values(b);
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    }
  }
  CHECK(parsed + rejected == 4000);
  CHECK(rejected > 0);
}

TEST_CASE("cost model: MACs, memory references and EIE-table energy", "[dsgz][cost]") {
  LayerCostInput in;
  in.name = "fc";
  in.weights = 100000;  // 400 KB dense: DRAM with a 128 KiB SRAM
  in.positions = 1;
  in.activations_in = 1000;
  in.activations_out = 100;
  in.stored_values = 8000;
  in.nonzero_values = 7900;
  in.entries = 8000;
  in.weight_bits = 4;
  in.index_bits = 4;
  LayerCost c = layer_cost(in, 128 * 1024);
  CHECK(c.dense.macs == 100000);
  CHECK(c.dense.weights_in_dram);
  CHECK(c.dense.energy_pj == Approx(100000 * (3.7 + 0.9) + 100000 * 640.0 + 1100 * 5.0));
  CHECK(c.compressed.macs == 7900);
  CHECK(c.compressed.weight_words == Approx(1000));
  CHECK(c.compressed.index_words == Approx(1000));
  CHECK_FALSE(c.compressed.weights_in_dram);
  CHECK(c.compressed.energy_pj == Approx(7900 * 4.6 + 2000 * 5.0 + 1100 * 5.0));
  // The index-saving effect (Mao et al.): one index per 9-weight kernel instead of per weight.
  LayerCostInput kernel = in;
  kernel.entries = in.entries / 9;
  LayerCost k = layer_cost(kernel, 128 * 1024);
  CHECK(k.compressed.index_words == Approx(c.compressed.index_words / 9).epsilon(0.01));
  CHECK(k.compressed.memory_refs() < c.compressed.memory_refs());
  Cost t = total({c, k}, true);
  CHECK(t.macs == 2 * 7900);
}

TEST_CASE("a trained prune -> quantize snapshot compresses and decodes bit-identically", "[dsgz]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  std::string text = test::tiny_mlp_solver(
      dir.path().string(), 80, schedule("phase { mode: PRUNE start_iter: 20 } phase { mode: QUANTIZE start_iter: 50 }"));
  text = with_sparsity(text, "ip1", "policy: \"magnitude\" target_sparsity: 0.85");
  text = with_quant(text, "ip1", "bits: 4");
  std::ofstream(dir.file("s.prototxt")) << text;
  LoadedConfig cfg = load_solver_config(dir.file("s.prototxt"));
  Context ctx;
  ctx.seed = 3;
  Solver s(cfg.solver, cfg.net_locations, ctx, dir.file("q"));
  install_sparsity(s);
  s.solve();
  ModelFile model;
  *model.mutable_net() = cfg.solver.net_param();
  s.train_net().params_to_proto(&model);
  install_sparsity(s).save(&model);
  DsgzModel d = round_trip(model);
  CHECK(d.blobs[0].kind == BlobKind::CODEBOOK);
  CompressResult r = compress_model(model);
  int64_t dense_bytes = 0;
  for (const auto& st : r.stats) dense_bytes += 4 * st.params;
  CHECK(double(dense_bytes) / double(r.bytes.size()) > 8.0);
}

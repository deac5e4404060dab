// A weight layer joins compression by describing itself: an LSTM pruned by the magnitude policy
// (W_xc and W_hc, its weight_blobs() {0, 2}) is stored with both weight blobs sparse in .dsgz,
// much smaller than with those blobs dense, and decodes to bit-identical weights and outputs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>

#include "compress/weight_blobs.hpp"
#include "runtime/config.hpp"
#include "runtime/net.hpp"
#include "sparsity/policy.hpp"

using namespace dsg;
using namespace dsg::compress;

namespace {

// Input [T = 6, N = 2, D = 24] and cont, an LSTM with H = 48 (W_xc [192, 24], b_c [192],
// W_hc [192, 48]) and an InnerProduct on its hidden states.
NetParameter lstm_net() {
  NetParameter p;
  parse_text_proto(R"(
    name: "pruned_lstm"
    layer { name: "in" type: "Input" top: "x" top: "cont"
            input_param { shape { dim: 6 dim: 2 dim: 24 } shape { dim: 6 dim: 2 } } }
    layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
            recurrent_param { num_output: 48 weight_filler { type: "uniform" min: -0.5 max: 0.5 }
                              bias_filler { type: "uniform" min: -0.5 max: 0.5 } } }
    layer { name: "out" type: "InnerProduct" bottom: "h" top: "y"
            inner_product_param { num_output: 5 axis: 2 weight_filler { type: "uniform" min: -1 max: 1 } } }
  )", "pruned-lstm", &p);
  return p;
}

void fill_inputs(Net& net) {
  std::mt19937_64 rng(11);
  std::normal_distribution<float> g(0.0f, 1.0f);
  Tensor& x = net.blob("x");
  for (int64_t i = 0; i < x.count(); ++i) x.mutable_data()[i] = g(rng);
  Tensor& cont = net.blob("cont");
  for (int64_t i = 0; i < cont.count(); ++i) cont.mutable_data()[i] = i < 2 ? 0.0f : 1.0f;  // t = 0 starts
}

bool same_bits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, size_t(n) * sizeof(float)) == 0; }

// Decoded weights equal the model's bit for bit, zeros up to their sign (compress::same_weight).
bool same_weights(const float* model, const float* decoded, int64_t n) {
  return std::equal(model, model + n, decoded, same_weight);
}

// "layer/index" -> the encoding compress_model chose.
std::map<std::string, BlobKind> kinds(const CompressResult& r) {
  std::map<std::string, BlobKind> out;
  for (const auto& s : r.stats) out[s.layer + "/" + std::to_string(s.index)] = s.kind;
  return out;
}

}  // namespace

TEST_CASE("A pruned LSTM is stored with W_xc and W_hc sparse and decodes bit-identically", "[dsgz][lstm]") {
  std::mt19937_64 init(3);
  Net net(lstm_net(), TEST, init);
  Layer& lstm = *net.layer_by_name("lstm");
  REQUIRE(lstm.weight_blobs() == std::vector<int>{0, 2});
  SparsityParameter sp;
  sp.set_policy("magnitude");
  sp.set_target_sparsity(0.9f);
  policy_registry().create("magnitude", sp, lstm)->prune_to(0.9f);
  for (int b : {0, 2}) {
    const Tensor& w = *lstm.blobs()[size_t(b)];
    int64_t zeros = 0, negative_zeros = 0;
    for (int64_t i = 0; i < w.count(); ++i) {
      zeros += w.data()[i] == 0.0f;
      negative_zeros += w.data()[i] == 0.0f && std::signbit(w.data()[i]);
    }
    // The policy masks by multiplying, so pruned negative weights are -0.0: the case where the
    // sparse encoding's decoded zero (+0.0) differs in its bits from the model's.
    INFO("blob " << b << ": " << zeros << " zeros (" << negative_zeros << " of them -0.0) of " << w.count());
    CHECK(double(zeros) / double(w.count()) > 0.85);
  }
  ModelFile model;
  *model.mutable_net() = lstm_net();
  net.params_to_proto(&model);

  // The layer says which blobs are weights: W_xc and W_hc of the LSTM, W of the InnerProduct.
  const WeightBlobMap weights = weight_blob_map(model.net());
  CHECK(weights == WeightBlobMap{{"lstm", {0, 2}}, {"out", {0}}});
  const CompressResult sparse = compress_model(model);
  CHECK(kinds(sparse) == std::map<std::string, BlobKind>{{"lstm/0", BlobKind::SPARSE_F32},
                                                         {"lstm/1", BlobKind::RAW},  // b_c is not a weight blob
                                                         {"lstm/2", BlobKind::SPARSE_F32},
                                                         {"out/0", BlobKind::RAW},  // dense
                                                         {"out/1", BlobKind::RAW}});
  // The same model with the LSTM's weights stored dense, as before the LSTM described its weight blobs.
  const CompressResult dense = compress_model(model, WeightBlobMap{{"out", {0}}});
  CHECK(kinds(dense).at("lstm/0") == BlobKind::RAW);
  CHECK(kinds(dense).at("lstm/2") == BlobKind::RAW);
  const double ratio = double(sparse.bytes.size()) / double(dense.bytes.size());
  INFO("sparse " << sparse.bytes.size() << " bytes, dense weights " << dense.bytes.size() << " bytes, ratio " << ratio);
  CHECK(ratio < 0.5);

  fill_inputs(net);
  Context ctx;
  ctx.phase = TEST;
  net.forward(ctx);
  const Tensor& y = net.blob("y");
  const std::vector<float> expected(y.data(), y.data() + y.count());
  // Both files decode to the model's exact weights (the sparse encoding of a blob is unchanged, so
  // files that stored the LSTM densely still read; those are bit-identical even in the sign of
  // zeros), and the decoded net computes bit-identical outputs.
  for (const CompressResult* r : {&sparse, &dense}) {
    const ModelFile decoded = decode_model(read_dsgz(r->bytes.data(), r->bytes.size()));
    REQUIRE(decoded.param_size() == model.param_size());
    for (int k = 0; k < model.param_size(); ++k) {
      const BlobProto& a = model.param(k).blob();
      const BlobProto& b = decoded.param(k).blob();
      INFO(model.param(k).layer() << "/" << model.param(k).index());
      REQUIRE(a.data_size() == b.data_size());
      CHECK(same_weights(a.data().data(), b.data().data(), a.data_size()));
      if (r == &dense) CHECK(same_bits(a.data().data(), b.data().data(), a.data_size()));
    }
    std::mt19937_64 other(99);
    Net loaded(decoded.net(), TEST, other);
    loaded.params_from_proto(decoded);
    fill_inputs(loaded);
    loaded.forward(ctx);
    CHECK(same_bits(loaded.blob("y").data(), expected.data(), int64_t(expected.size())));
  }
}

// Magnitudes for comparing two TEST-phase forwards of a net (a thinned model against the masked
// one, say) with the chain form of support/tolerance.hpp.
//
// A blob computed through a chain of reductions with lengths K_1 ... K_L (each layer's reduction
// length, plus one for a bias or an Eltwise sum) carries at most
//   sum_l gamma_{K_l} * (|W_L| ... |W_{l+1}| M_l)  <=  gamma_{K_1 + ... + K_L} * A,
// where M_l is layer l's sum of |terms| and A is the same net run on absolute values: |W|, |b|,
// |inputs|, BatchNorm's running mean set to 0 (it only shifts, its scale stays). ReLU, max and
// average pooling, Eltwise sums, Scale and BatchNorm do not enlarge an error and the absolute run
// passes through them as an upper bound. So the two forwards agree within
//   reduction_tolerance(K_1 + ... + K_L, A)
// elementwise. Softmax / loss outputs are not covered: compare the scores before them.
#pragma once
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>

#include <catch2/catch.hpp>

#include "runtime/model_file.hpp"
#include "runtime/net.hpp"

namespace dsg::test {

// Runs the TEST net of `param` with the absolute values of `weights` (BatchNorm means 0) on the
// absolute values of `inputs` (Input blob name -> data; a data layer in `param` must produce
// nonnegative data, as pixels scaled to [0, 1] do) and returns it for reading blob magnitudes.
inline std::unique_ptr<Net> magnitude_net(const NetParameter& param, const ModelFile& weights,
                                          const std::map<std::string, const Tensor*>& inputs = {}) {
  std::mt19937_64 rng(0);
  auto net = std::make_unique<Net>(param, TEST, rng);
  net->params_from_proto(weights);
  for (const auto& layer : net->layers()) {
    for (auto& blob : layer->blobs())
      for (int64_t i = 0; i < blob->count(); ++i) blob->mutable_data()[i] = std::fabs(blob->data()[i]);
    if (layer->param().type() == "BatchNorm") layer->blobs()[0]->set_data(0.0f);
  }
  for (const auto& kv : inputs) {
    Tensor& t = net->blob(kv.first);
    REQUIRE(t.count() == kv.second->count());
    for (int64_t i = 0; i < t.count(); ++i) t.mutable_data()[i] = std::fabs(kv.second->data()[i]);
  }
  Context ctx;
  ctx.phase = TEST;
  net->forward(ctx);
  return net;
}

}  // namespace dsg::test

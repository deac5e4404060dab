// ONNX emitters: BatchNorm (folded with a following Scale) -> BatchNormalization; Scale -> Mul (+ Add).
#include "apps/onnx_exporter.hpp"

namespace dsg::onnx_detail {

void Exporter::scale_or_folded_bn(int i) {
  if (i > 0 && kinds_[i - 1] == Kind::FoldedBN) return batch_norm(i - 1, i);
  scale(i);
}

void Exporter::batch_norm(int bn, int sc) {
  const Layer& l = *layers_[bn];
  const auto& bp = l.param().batch_norm_param();
  if (bp.has_use_global_stats() && !bp.use_global_stats())
    fail(l, "use_global_stats: false normalises with batch statistics at test time");
  if (l.blobs().size() != 3) fail(l, "expected 3 statistics blobs");
  const int64_t c = l.blobs()[0]->count();
  const float* run_mean = l.blobs()[0]->data();
  const float* run_var = l.blobs()[1]->data();
  const float factor = l.blobs()[2]->data()[0];
  // Exactly the layer's TEST-phase arithmetic.
  const float s = factor == 0.0f ? 0.0f : 1.0f / factor;
  std::vector<float> mean(static_cast<size_t>(c)), var(static_cast<size_t>(c));
  for (int64_t k = 0; k < c; ++k) {
    mean[size_t(k)] = run_mean[k] * s;
    var[size_t(k)] = run_var[k] * s;
  }
  const std::string x = resolve(bn, 0);
  std::string scale, bias;
  if (sc >= 0) {
    scale = param_value(sc, 0, "scale", {c});
    if (layers_[sc]->blobs().size() > 1) bias = param_value(sc, 1, "bias", {c});
  } else {
    scale = float_init(l.name() + "/scale", {c}, std::vector<float>(size_t(c), 1.0f));
  }
  if (bias.empty()) bias = float_init(l.name() + "/bias", {c}, std::vector<float>(size_t(c), 0.0f));
  const std::string m = float_init(l.name() + "/mean", {c}, mean);
  const std::string v = float_init(l.name() + "/var", {c}, var);
  const int out_layer = sc >= 0 ? sc : bn;
  const std::string y = top_value(out_layer, 0);
  onnx::NodeProto* n = node("BatchNormalization", {x, scale, bias, m, v}, {y}, l.name());
  attr_f(n, "epsilon", bp.eps());
  define(layers_[out_layer]->param().top(0), y);
}

void Exporter::scale(int i) {
  const Layer& l = *layers_[i];
  const LayerParameter& lp = l.param();
  if (lp.bottom_size() != 1) fail(l, "the two-bottom form is not supported");
  const Tensor& xt = net_.blob(lp.bottom(0));
  const auto& sp = lp.scale_param();
  const int axis = sp.axis() < 0 ? sp.axis() + xt.num_axes() : sp.axis();
  Dims dims = dims_of(l.blobs()[0]->shape());
  const int trailing = xt.num_axes() - axis - int(dims.size());
  if (axis < 0 || trailing < 0) fail(l, "scale shape does not fit the bottom");
  dims.insert(dims.end(), size_t(trailing), 1);  // broadcast over the axes after the scaled ones
  const std::string x = resolve(i, 0);
  const std::string s = param_value(i, 0, "scale", dims);
  const std::string b = l.blobs().size() > 1 ? param_value(i, 1, "bias", dims) : "";
  const std::string y = top_value(i, 0);
  if (b.empty()) {
    node("Mul", {x, s}, {y}, l.name());
  } else {
    const std::string m = fresh(l.name() + "/scaled");
    node("Mul", {x, s}, {m}, l.name());
    node("Add", {m, b}, {y}, l.name() + "/bias");
  }
  define(lp.top(0), y);
}

}  // namespace dsg::onnx_detail

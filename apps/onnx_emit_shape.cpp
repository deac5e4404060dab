// ONNX emitters: Concat, Eltwise (Sum / Mul / Max), Flatten and Reshape.
#include "apps/onnx_exporter.hpp"

namespace dsg::onnx_detail {

void Exporter::concat(int i) {
  const Layer& l = *layers_[i];
  const LayerParameter& lp = l.param();
  const Tensor& x = net_.blob(lp.bottom(0));
  const auto& cp = lp.concat_param();
  const int axis = canonical(cp.has_concat_dim() ? int(cp.concat_dim()) : cp.axis(), x.num_axes(), l, "axis");
  std::vector<std::string> in;
  for (int b = 0; b < lp.bottom_size(); ++b) in.push_back(resolve(i, b));
  const std::string y = top_value(i, 0);
  attr(node("Concat", in, {y}, l.name()), "axis", int64_t(axis));
  define(lp.top(0), y);
}

void Exporter::eltwise(int i) {
  const Layer& l = *layers_[i];
  const LayerParameter& lp = l.param();
  const auto& ep = lp.eltwise_param();
  std::vector<std::string> in;
  for (int b = 0; b < lp.bottom_size(); ++b) in.push_back(resolve(i, b));
  if (ep.coeff_size() > 0 && ep.coeff_size() != lp.bottom_size()) fail(l, "needs one coeff per bottom");
  const std::string y = top_value(i, 0);
  switch (ep.operation()) {
    case EltwiseParameter::SUM:
      for (int b = 0; b < ep.coeff_size(); ++b) {
        if (ep.coeff(b) == 1.0f) continue;
        const float c = ep.coeff(b);
        const std::string cv = float_init(l.name() + "/coeff" + std::to_string(b), {}, &c);
        const std::string m = fresh(l.name() + "/scaled" + std::to_string(b));
        node("Mul", {in[size_t(b)], cv}, {m}, l.name() + "/coeff" + std::to_string(b));
        in[size_t(b)] = m;
      }
      node("Sum", in, {y}, l.name());
      break;
    case EltwiseParameter::PROD: {
      if (ep.coeff_size() > 0) fail(l, "coeff is only defined for SUM");
      std::string acc = in[0];
      for (size_t b = 1; b < in.size(); ++b) {
        const std::string out = b + 1 == in.size() ? y : fresh(l.name() + "/prod" + std::to_string(b));
        node("Mul", {acc, in[b]}, {out}, b + 1 == in.size() ? l.name() : l.name() + "/prod" + std::to_string(b));
        acc = out;
      }
      break;
    }
    case EltwiseParameter::MAX: node("Max", in, {y}, l.name()); break;
    default: fail(l, "unknown operation");
  }
  define(lp.top(0), y);
}

void Exporter::flatten(int i) {
  const Layer& l = *layers_[i];
  const LayerParameter& lp = l.param();
  const Tensor& xt = net_.blob(lp.bottom(0));
  const int n = xt.num_axes();
  const int start = canonical(lp.flatten_param().axis(), n, l, "axis");
  const int end = canonical(lp.flatten_param().end_axis(), n, l, "end_axis");
  const std::string x = resolve(i, 0), y = top_value(i, 0);
  if (start == 1 && end == n - 1) {
    attr(node("Flatten", {x}, {y}, l.name()), "axis", int64_t(1));
  } else {
    const std::string shape = int64_init(l.name() + "/shape", reshape_target(i, start > 0 ? 'c' : 'i'));
    node("Reshape", {x, shape}, {y}, l.name());
  }
  define(lp.top(0), y);
}

void Exporter::reshape(int i) {
  const Layer& l = *layers_[i];
  const LayerParameter& lp = l.param();
  const auto& rp = lp.reshape_param();
  const int n = net_.blob(lp.bottom(0)).num_axes();
  const int start = rp.axis() >= 0 ? rp.axis() : n + rp.axis() + 1;
  const int end = rp.num_axes() == -1 ? n : start + rp.num_axes();
  char axis0 = 'f';
  if (start > 0) axis0 = 'c';
  else if (rp.shape().dim_size() == 0) axis0 = end == 0 ? 'c' : 'f';
  else if (rp.shape().dim(0) == 0) axis0 = 'c';
  else if (rp.shape().dim(0) == -1) axis0 = 'i';
  const std::string x = resolve(i, 0), y = top_value(i, 0);
  const std::string shape = int64_init(l.name() + "/shape", reshape_target(i, axis0));
  node("Reshape", {x, shape}, {y}, l.name());
  define(lp.top(0), y);
}

}  // namespace dsg::onnx_detail

// ONNX emitters: ReLU, Sigmoid, TanH, Softmax and SoftmaxWithLoss (its Softmax output).
#include "apps/onnx_exporter.hpp"

namespace dsg::onnx_detail {

void Exporter::relu(int i) {
  const Layer& l = *layers_[i];
  const float slope = l.param().relu_param().negative_slope();
  const std::string x = resolve(i, 0), y = top_value(i, 0);
  if (slope == 0.0f) {
    node("Relu", {x}, {y}, l.name());
  } else {
    attr_f(node("LeakyRelu", {x}, {y}, l.name()), "alpha", slope);
  }
  define(l.param().top(0), y);
}

void Exporter::unary(int i, const char* op) {
  const Layer& l = *layers_[i];
  const std::string x = resolve(i, 0), y = top_value(i, 0);
  node(op, {x}, {y}, l.name());
  define(l.param().top(0), y);
}

void Exporter::softmax(int i) {
  const LayerParameter& lp = layers_[i]->param();
  const std::string x = resolve(i, 0), y = top_value(i, 0);
  softmax_node(i, x, y, lp.softmax_param().axis());
  define(lp.top(0), y);
}

void Exporter::softmax_node(int i, const std::string& x, const std::string& y, int axis_param) {
  const Layer& l = *layers_[i];
  const Tensor& t = net_.blob(l.param().bottom(0));
  const int axis = canonical(axis_param, t.num_axes(), l, "axis");
  // Before opset 13 Softmax normalises over all axes from `axis` on, equal to Caffe's only when
  // the trailing axes are all 1.
  if (opt_.opset < 13 && t.count(axis + 1) != 1)
    fail(l, "a softmax over axis " + std::to_string(axis) + " of " + t.shape_string() + " needs opset 13 or later");
  attr(node("Softmax", {x}, {y}, l.name()), "axis", int64_t(axis));
}

void Exporter::softmax_loss(int i) {
  const Layer& l = *layers_[i];
  const LayerParameter& lp = l.param();
  const std::string x = resolve(i, 0);
  const std::string y = lp.top_size() > 1 ? top_value(i, 1) : fresh("prob");
  softmax_node(i, x, y, lp.softmax_param().axis());
  value_shape_[y] = dims_of(net_.blob(lp.bottom(0)).shape());
  if (lp.top_size() > 1) define(lp.top(1), y);
  Ref r;
  r.type = Ref::Dropped;
  r.layer = i;
  current_[lp.top(0)] = r;
}

}  // namespace dsg::onnx_detail

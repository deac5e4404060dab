// ONNX emitters: Convolution -> Conv; InnerProduct -> Gemm (axis 1) or Reshape + MatMul (other axes).
#include "apps/onnx_exporter.hpp"

namespace dsg::onnx_detail {

void Exporter::convolution(int i) {
  const Layer& l = *layers_[i];
  const LayerParameter& lp = l.param();
  const ConvolutionParameter& p = lp.convolution_param();
  auto pick = [&](const char* what, const google::protobuf::RepeatedField<uint32_t>& v, int64_t def, int64_t& h,
                  int64_t& w) {
    if (v.size() == 0) h = w = def;
    else if (v.size() == 1) h = w = v.Get(0);
    else if (v.size() == 2) h = v.Get(0), w = v.Get(1);
    else fail(l, std::string(what) + " must have 1 or 2 values");
  };
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  if (p.has_kernel_h() || p.has_kernel_w()) kh = p.kernel_h(), kw = p.kernel_w();
  else pick("kernel_size", p.kernel_size(), 0, kh, kw);
  if (p.has_stride_h() || p.has_stride_w()) sh = p.stride_h(), sw = p.stride_w();
  else pick("stride", p.stride(), 1, sh, sw);
  if (p.has_pad_h() || p.has_pad_w()) ph = p.pad_h(), pw = p.pad_w();
  else pick("pad", p.pad(), 0, ph, pw);
  pick("dilation", p.dilation(), 1, dh, dw);
  if (lp.bottom_size() != lp.top_size()) fail(l, "needs as many tops as bottoms");
  const std::string w = param_value(i, 0, "weight");
  const std::string b = p.bias_term() ? param_value(i, 1, "bias") : "";
  for (int k = 0; k < lp.bottom_size(); ++k) {
    std::vector<std::string> in{resolve(i, k), w};
    if (!b.empty()) in.push_back(b);
    const std::string y = top_value(i, k);
    onnx::NodeProto* n = node("Conv", in, {y}, l.name());
    attr(n, "kernel_shape", Dims{kh, kw});
    attr(n, "strides", Dims{sh, sw});
    attr(n, "pads", Dims{ph, pw, ph, pw});
    attr(n, "dilations", Dims{dh, dw});
    attr(n, "group", int64_t(p.group()));
    define(lp.top(k), y);
  }
}

void Exporter::inner_product(int i) {
  const Layer& l = *layers_[i];
  const LayerParameter& lp = l.param();
  const InnerProductParameter& p = lp.inner_product_param();
  const Tensor& xt = net_.blob(lp.bottom(0));
  const int axis = canonical(p.axis(), xt.num_axes(), l, "axis");
  std::string x = resolve(i, 0);
  const std::string w = param_value(i, 0, "weight");
  const std::string b = p.bias_term() ? param_value(i, 1, "bias") : "";
  const std::string y = top_value(i, 0);
  if (axis == 1) {
    if (xt.num_axes() > 2) {
      const std::string f = fresh(l.name() + "/flatten");
      attr(node("Flatten", {x}, {f}, l.name() + "/flatten"), "axis", int64_t(1));
      x = f;
    }
    std::vector<std::string> in{x, w};
    if (!b.empty()) in.push_back(b);
    attr(node("Gemm", in, {y}, l.name()), "transB", int64_t(p.transpose() ? 0 : 1));
  } else {
    // Y[shape[0..axis), N] = X viewed as [shape[0..axis), K] times W^T (+ b).
    Dims target(size_t(axis), 0);
    target.push_back(-1);
    const std::string shape = int64_init(l.name() + "/shape", target);
    const std::string r = fresh(l.name() + "/reshaped");
    node("Reshape", {x, shape}, {r}, l.name() + "/reshape");
    std::string wt = w;
    if (!p.transpose()) {
      wt = fresh(l.name() + "/weight_t");
      attr(node("Transpose", {w}, {wt}, l.name() + "/transpose"), "perm", Dims{1, 0});
    }
    if (b.empty()) {
      node("MatMul", {r, wt}, {y}, l.name());
    } else {
      const std::string m = fresh(l.name() + "/matmul");
      node("MatMul", {r, wt}, {m}, l.name());
      node("Add", {m, b}, {y}, l.name() + "/bias");
    }
  }
  define(lp.top(0), y);
}

}  // namespace dsg::onnx_detail

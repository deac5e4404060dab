// ONNX emitters: Pooling -> MaxPool / AveragePool / global pooling with Caffe's output sizes.
#include "apps/onnx_exporter.hpp"

#include <algorithm>

namespace dsg::onnx_detail {

void Exporter::pooling(int i) {
  const Layer& l = *layers_[i];
  const LayerParameter& lp = l.param();
  const PoolingParameter& p = lp.pooling_param();
  if (lp.top_size() > 1) fail(l, "the MAX pooling mask (second top) has no ONNX equivalent");
  if (p.pool() != PoolingParameter::MAX && p.pool() != PoolingParameter::AVE)
    fail(l, "only MAX and AVE pooling can be exported");
  const bool max = p.pool() == PoolingParameter::MAX;
  const std::string x = resolve(i, 0);
  const std::string y = top_value(i, 0);
  if (p.global_pooling()) {
    node(max ? "GlobalMaxPool" : "GlobalAveragePool", {x}, {y}, l.name());
    return define(lp.top(0), y);
  }
  int64_t k[2], pad[2], s[2];
  if (p.has_kernel_size()) k[0] = k[1] = p.kernel_size();
  else k[0] = p.kernel_h(), k[1] = p.kernel_w();
  if (p.has_pad_h() || p.has_pad_w()) pad[0] = p.pad_h(), pad[1] = p.pad_w();
  else pad[0] = pad[1] = p.pad();
  if (p.has_stride_h() || p.has_stride_w()) s[0] = p.stride_h(), s[1] = p.stride_w();
  else s[0] = s[1] = p.stride();
  const Tensor& in = net_.blob(lp.bottom(0));
  const Tensor& out = net_.blob(lp.top(0));
  if (in.num_axes() != 4 || out.num_axes() != 4) fail(l, "expects 4-axis NCHW blobs");
  // Per spatial axis: Caffe's output size, and those of ONNX's floor and ceil formulas.
  bool ceil_ok = true, floor_ok = true, overflow = false;
  int64_t need[2];
  for (int d = 0; d < 2; ++d) {
    const int64_t size = in.shape(2 + d), q = size + 2 * pad[d] - k[d];
    need[d] = out.shape(2 + d);
    if (q < 0 || s[d] <= 0) fail(l, "invalid pooling geometry");
    ceil_ok = ceil_ok && need[d] == (q + s[d] - 1) / s[d] + 1;
    floor_ok = floor_ok && need[d] == q / s[d] + 1;
    // Whether the last window reaches past the padded input (Caffe clips it there).
    overflow = overflow || (need[d] - 1) * s[d] + k[d] > size + 2 * pad[d];
  }
  const bool caffe_ceil = p.round_mode() == PoolingParameter::CEIL;
  if (!max && overflow) {
    // Caffe divides by the window clipped to the padded input: pad explicitly with zeros, then
    // average over the cells inside that tensor (count_include_pad = 0) with end pads for the
    // clipped windows.
    std::string src = x;
    if (pad[0] > 0 || pad[1] > 0) {
      const std::string pads = int64_init(l.name() + "/pads", Dims{0, 0, pad[0], pad[1], 0, 0, pad[0], pad[1]});
      src = fresh(l.name() + "/padded");
      node("Pad", {x, pads}, {src}, l.name() + "/pad");
    }
    Dims end(2);
    for (int d = 0; d < 2; ++d)
      end[d] = std::max<int64_t>(0, (need[d] - 1) * s[d] + k[d] - (in.shape(2 + d) + 2 * pad[d]));
    onnx::NodeProto* n = node("AveragePool", {src}, {y}, l.name());
    attr(n, "kernel_shape", Dims{k[0], k[1]});
    attr(n, "strides", Dims{s[0], s[1]});
    attr(n, "pads", Dims{0, 0, end[0], end[1]});
    attr(n, "count_include_pad", int64_t(0));
    attr(n, "ceil_mode", int64_t(0));
    return define(lp.top(0), y);
  }
  Dims pads{pad[0], pad[1], pad[0], pad[1]};
  int64_t ceil_mode;
  if (ceil_ok && (caffe_ceil || !floor_ok)) {
    ceil_mode = 1;
  } else if (floor_ok) {
    ceil_mode = 0;
  } else {
    // One axis rounds up, the other lost its last window to Caffe's padding rule: floor
    // rounding with end pads that make room for exactly Caffe's windows (MAX ignores padding).
    ceil_mode = 0;
    for (int d = 0; d < 2; ++d)
      if (need[d] != (in.shape(2 + d) + 2 * pad[d] - k[d]) / s[d] + 1)
        pads[2 + d] = (need[d] - 1) * s[d] + k[d] - in.shape(2 + d) - pad[d];
  }
  onnx::NodeProto* n = node(max ? "MaxPool" : "AveragePool", {x}, {y}, l.name());
  attr(n, "kernel_shape", Dims{k[0], k[1]});
  attr(n, "strides", Dims{s[0], s[1]});
  attr(n, "pads", pads);
  attr(n, "ceil_mode", ceil_mode);
  if (!max) attr(n, "count_include_pad", int64_t(1));
  define(lp.top(0), y);
}

}  // namespace dsg::onnx_detail

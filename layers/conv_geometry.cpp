#include "layers/conv_geometry.hpp"

#include "runtime/error.hpp"

namespace dsg {

ConvGeometry read_conv_geometry(const ConvolutionParameter& p, const std::string& where) {
  ConvGeometry g;
  auto pick = [&](const char* name, const google::protobuf::RepeatedField<uint32_t>& v, int def, int& h,
                  int& w) {
    if (v.size() == 0) {
      h = w = def;
    } else if (v.size() == 1) {
      h = w = static_cast<int>(v.Get(0));
    } else if (v.size() == 2) {
      h = static_cast<int>(v.Get(0));
      w = static_cast<int>(v.Get(1));
    } else {
      throw Error(where + strfmt("%s must be given once or twice (h, w) for 2-D convolution, got %d values",
                                   name, v.size()));
    }
  };
  if (p.has_kernel_h() || p.has_kernel_w()) {
    if (p.kernel_size_size() > 0)
      throw Error(where + "give either kernel_size or kernel_h/kernel_w, not both");
    if (!p.has_kernel_h() || !p.has_kernel_w())
      throw Error(where + "kernel_h and kernel_w must be given together");
    g.kh = static_cast<int>(p.kernel_h());
    g.kw = static_cast<int>(p.kernel_w());
  } else {
    if (p.kernel_size_size() == 0) throw Error(where + "kernel_size (or kernel_h and kernel_w) is required");
    pick("kernel_size", p.kernel_size(), 0, g.kh, g.kw);
  }
  if (p.has_stride_h() || p.has_stride_w()) {
    if (p.stride_size() > 0) throw Error(where + "give either stride or stride_h/stride_w, not both");
    if (!p.has_stride_h() || !p.has_stride_w())
      throw Error(where + "stride_h and stride_w must be given together");
    g.sh = static_cast<int>(p.stride_h());
    g.sw = static_cast<int>(p.stride_w());
  } else {
    pick("stride", p.stride(), 1, g.sh, g.sw);
  }
  if (p.has_pad_h() || p.has_pad_w()) {
    if (p.pad_size() > 0) throw Error(where + "give either pad or pad_h/pad_w, not both");
    g.ph = static_cast<int>(p.pad_h());
    g.pw = static_cast<int>(p.pad_w());
  } else {
    pick("pad", p.pad(), 0, g.ph, g.pw);
  }
  pick("dilation", p.dilation(), 1, g.dh, g.dw);
  if (g.kh <= 0 || g.kw <= 0 || g.sh <= 0 || g.sw <= 0 || g.dh <= 0 || g.dw <= 0 || g.ph < 0 || g.pw < 0)
    throw Error(where + strfmt("kernel %dx%d, stride %dx%d and dilation %dx%d must be positive, pad %dx%d "
                                 "non-negative",
                                 g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.ph, g.pw));
  return g;
}

}  // namespace dsg

// The window geometry of a 2-D convolution (kernel, stride, pad, dilation), read from Caffe's
// ConvolutionParameter in all its forms: the repeated field with 1 or 2 entries (h, w), or the
// _h / _w pair.
#pragma once
#include <string>

#include "dsg.pb.h"

namespace dsg {

struct ConvGeometry {
  int kh = 0, kw = 0;  // kernel
  int sh = 1, sw = 1;  // stride
  int ph = 0, pw = 0;  // padding
  int dh = 1, dw = 1;  // dilation
};

// Throws dsg::Error prefixed with `where` for conflicting forms, missing kernels and
// non-positive sizes (negative padding).
ConvGeometry read_conv_geometry(const ConvolutionParameter& p, const std::string& where);

}  // namespace dsg

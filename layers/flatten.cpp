// Flatten (Caffe's "Flatten"): merges the bottom axes [axis, end_axis] (defaults 1 and -1) into
// one, e.g. (N, C, H, W) -> (N, C*H*W). The data is copied (top and bottom do not share buffers).
#include <algorithm>
#include <vector>

#include "runtime/error.hpp"
#include "layers/shape_only.hpp"

namespace dsg {

class FlattenLayer : public ShapeOnlyLayer {
 public:
  using ShapeOnlyLayer::ShapeOnlyLayer;
  const char* type() const override { return "Flatten"; }
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kFlatten;
    return f;
  }

 protected:
  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    const Tensor& x = *bottom[0];
    const auto& fp = param_.flatten_param();
    const int n = x.num_axes();
    auto check = [&](int axis, const char* what) {
      if (axis < -n || axis >= n)
        throw Error(where() + strfmt("%s %d out of range for bottom ", what, axis) + x.shape_string());
      return axis < 0 ? axis + n : axis;
    };
    const int start = check(fp.axis(), "axis"), end = check(fp.end_axis(), "end_axis");
    if (end < start)
      throw Error(where() + strfmt("end_axis %d precedes axis %d for bottom ", fp.end_axis(), fp.axis()) +
                  x.shape_string());
    std::vector<int> shape(x.shape().begin(), x.shape().begin() + start);
    shape.push_back(int(x.count(start, end + 1)));
    shape.insert(shape.end(), x.shape().begin() + end + 1, x.shape().end());
    top[0]->reshape(shape);
  }
};

DSG_REGISTER_LAYER("Flatten", FlattenLayer);

}  // namespace dsg

// Flatten (Caffe's "Flatten"): merges the bottom axes [axis, end_axis] (defaults 1 and -1) into
// one, e.g. (N, C, H, W) -> (N, C*H*W). The data is copied (top and bottom do not share buffers).
#include <algorithm>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/parallel.hpp"

namespace dsg {

class FlattenLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Flatten"; }
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }

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

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    const float* x = bottom[0]->data();
    float* y = top[0]->mutable_data();
    parallel_for(bottom[0]->count(), 1 << 15, [&](int64_t b, int64_t e) { std::copy(x + b, x + e, y + b); });
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (!propagate_down[0]) return;
    const float* dy = top[0]->diff();
    float* dx = bottom[0]->mutable_diff();
    parallel_for(bottom[0]->count(), 1 << 15, [&](int64_t b, int64_t e) { std::copy(dy + b, dy + e, dx + b); });
  }
};

DSG_REGISTER_LAYER("Flatten", FlattenLayer);

}  // namespace dsg

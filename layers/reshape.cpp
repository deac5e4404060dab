// Reshape (Caffe's "Reshape"): gives the bottom a new shape without changing its data.
// reshape_param.shape lists the new dims for the bottom axes [axis, axis + num_axes) (defaults:
// axis 0, num_axes -1 = all; a negative axis counts from the end, -1 meaning after the last axis).
// In the shape, 0 copies the corresponding bottom dim and -1 (at most once) is inferred from the
// count. The data is copied (top and bottom do not share buffers).
#include <algorithm>
#include <vector>

#include "runtime/error.hpp"
#include "layers/shape_only.hpp"

namespace dsg {

class ReshapeLayer : public ShapeOnlyLayer {
 public:
  using ShapeOnlyLayer::ShapeOnlyLayer;
  const char* type() const override { return "Reshape"; }
  // A thinner input changes the per-sample size; only 0 (copy) and -1 (infer) dims follow it.
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kFlatten;
    for (auto d : param_.reshape_param().shape().dim()) f.shape_follows_input = f.shape_follows_input && (d == 0 || d == -1);
    return f;
  }

 protected:
  void layer_setup(const TensorVec&, const TensorVec&, std::mt19937_64&) override {
    const BlobShape& shape = param_.reshape_param().shape();
    for (int i = 0; i < shape.dim_size(); ++i) {
      const int64_t d = shape.dim(i);
      if (d == 0) {
        copy_axes_.push_back(i);
      } else if (d == -1) {
        if (inferred_axis_ >= 0) throw Error(where() + "at most one dim of the new shape may be -1 (inferred)");
        inferred_axis_ = i;
      } else if (d < -1) {
        throw Error(where() + strfmt("dim %lld of the new shape is invalid (use 0 to copy, -1 to infer)",
                                     (long long)d));
      } else {
        constant_count_ *= d;
      }
    }
    if (param_.reshape_param().num_axes() < -1)
      throw Error(where() + strfmt("num_axes must be >= -1, got %d", param_.reshape_param().num_axes()));
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    const Tensor& x = *bottom[0];
    const auto& rp = param_.reshape_param();
    const BlobShape& new_dims = rp.shape();
    const int n = x.num_axes();
    const int start = rp.axis() >= 0 ? rp.axis() : n + rp.axis() + 1;
    if (start < 0 || start > n)
      throw Error(where() + strfmt("axis %d out of range for bottom ", rp.axis()) + x.shape_string());
    const int end = rp.num_axes() == -1 ? n : start + rp.num_axes();
    if (end > n)
      throw Error(where() + strfmt("axis %d + num_axes %d exceed the axes of bottom ", rp.axis(), rp.num_axes()) +
                  x.shape_string());
    std::vector<int64_t> shape(x.shape().begin(), x.shape().begin() + start);
    for (int i = 0; i < new_dims.dim_size(); ++i) shape.push_back(new_dims.dim(i));
    shape.insert(shape.end(), x.shape().begin() + end, x.shape().end());
    for (int i : copy_axes_) {
      if (start + i >= n)
        throw Error(where() + strfmt("dim %d of the new shape copies bottom axis %d, which bottom ", i, start + i) +
                    x.shape_string() + " lacks");
      shape[start + i] = x.shape(start + i);
    }
    if (inferred_axis_ >= 0) {
      int64_t known = constant_count_ * x.count(0, start) * x.count(end);
      for (int i : copy_axes_) known *= shape[start + i];
      if (known == 0 || x.count() % known != 0)
        throw Error(where() + "cannot infer the -1 dim: bottom " + x.shape_string() +
                    strfmt(" has %lld elements, not a multiple of %lld", (long long)x.count(), (long long)known));
      shape[start + inferred_axis_] = x.count() / known;
    }
    std::vector<int> dims;
    int64_t count = 1;
    for (int64_t d : shape) {
      dims.push_back(int(d));
      count *= d;
    }
    if (count != x.count()) {
      std::string s = "(";
      for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
      throw Error(where() + "new shape " + s + ") does not have the count of bottom " + x.shape_string());
    }
    top[0]->reshape(dims);
  }

 private:
  std::vector<int> copy_axes_;  // positions in reshape_param.shape holding 0
  int inferred_axis_ = -1;      // position holding -1, if any
  int64_t constant_count_ = 1;  // product of the explicit dims
};

DSG_REGISTER_LAYER("Reshape", ReshapeLayer);

}  // namespace dsg

// Slice (Caffe's "Slice"): cuts the bottom along slice_param.axis (default 1; the legacy slice_dim
// is accepted instead, not both) into the tops, which agree with the bottom on every other axis.
// With slice_point (exactly one fewer than the tops, strictly increasing, inside the axis) top k
// gets [slice_point[k-1], slice_point[k]); without, the axis is cut into equal parts, one per top
// (the number of tops must divide it). Forward copies; backward copies every top's diff into its
// part of the bottom diff, as Caffe does: a top that nothing backpropagates into keeps the zero diff
// it was allocated with, so it contributes zero (a Silence layer writes zero explicitly).
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "layers/copy_kernels.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/parallel.hpp"

namespace dsg {

class SliceLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Slice"; }
  int exact_num_bottoms() const override { return 1; }
  int min_num_tops() const override { return 1; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void layer_setup(const TensorVec&, const TensorVec& top, std::mt19937_64&) override {
    const auto& sp = param_.slice_param();
    if (sp.has_axis() && sp.has_slice_dim())
      throw Error(where() + "either axis or slice_dim should be specified, not both");
    if (sp.slice_point_size() > 0 && sp.slice_point_size() != int(top.size()) - 1)
      throw Error(where() + strfmt("%d slice_point(s) need %d tops, got %d", sp.slice_point_size(),
                                   sp.slice_point_size() + 1, int(top.size())));
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    const auto& sp = param_.slice_param();
    const Tensor& x = *bottom[0];
    const int axis = sp.has_slice_dim() ? int(sp.slice_dim()) : sp.axis();
    if (axis < -x.num_axes() || axis >= x.num_axes())
      throw Error(where() + strfmt("axis %d out of range for bottom ", axis) + x.shape_string());
    axis_ = x.canonical_axis(axis);
    const int dim = x.shape(axis_), tops = int(top.size());
    sizes_.clear();
    if (sp.slice_point_size() > 0) {
      int prev = 0;
      for (int k = 0; k < sp.slice_point_size(); ++k) {
        const int point = int(sp.slice_point(k));
        if (point <= prev || point >= dim)
          throw Error(where() + strfmt("slice_point %d (#%d) must be above %d and below the axis size %d of bottom ",
                                       point, k, prev, dim) + x.shape_string(),
                      "slice points are strictly increasing positions inside the sliced axis");
        sizes_.push_back(point - prev);
        prev = point;
      }
      sizes_.push_back(dim - prev);
    } else {
      if (dim % tops != 0)
        throw Error(where() + strfmt("axis %d of bottom ", axis_) + x.shape_string() +
                        strfmt(" (size %d) cannot be cut into %d equal parts", dim, tops),
                    "give slice_point to choose the parts");
      sizes_.assign(size_t(tops), dim / tops);
    }
    std::vector<int> shape = x.shape();
    for (int k = 0; k < tops; ++k) {
      shape[axis_] = sizes_[size_t(k)];
      top[k]->reshape(shape);
    }
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    transfer(*bottom[0], top, true);
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (propagate_down[0]) transfer(*bottom[0], top, false);
  }

  // The device code: one strided block copy per top.
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    transfer_on(ctx.device, *bottom[0], top, true);
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    if (propagate_down[0]) transfer_on(ctx.device, *bottom[0], top, false);
  }

 private:
  // transfer() on device `d`.
  void transfer_on(const Device& d, Tensor& bottom, const TensorVec& top, bool forward) const {
    const int64_t outer = bottom.count(0, axis_), inner = bottom.count(axis_ + 1);
    const int64_t bottom_row = int64_t(bottom.shape(axis_)) * inner;
    int64_t offset = 0;
    for (Tensor* t : top) {
      const int64_t row = int64_t(t->shape(axis_)) * inner;
      if (row > 0) {
        const StridedCopy body = forward
            ? StridedCopy{row, bottom_row, row, bottom.data(d) + offset, t->mutable_data(d)}
            : StridedCopy{row, row, bottom_row, t->diff(d), bottom.mutable_diff(d) + offset};
        launch(d, outer * row, body);
      }
      offset += row;
    }
  }

  // Copies each top's part between the bottom and the top: values into the tops (forward), or
  // the top diffs into the bottom diff (backward).
  void transfer(Tensor& bottom, const TensorVec& top, bool forward) const {
    const int64_t outer = bottom.count(0, axis_), inner = bottom.count(axis_ + 1);
    const int64_t bottom_row = int64_t(bottom.shape(axis_)) * inner;
    float* b = forward ? bottom.mutable_data() : bottom.mutable_diff();
    int64_t offset = 0;
    for (Tensor* t : top) {
      const int64_t row = int64_t(t->shape(axis_)) * inner;
      float* tp = forward ? t->mutable_data() : t->mutable_diff();
      const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, row));
      parallel_for(outer, grain, [&](int64_t begin, int64_t end) {
        for (int64_t o = begin; o < end; ++o) {
          float* bp = b + o * bottom_row + offset;
          float* sp = tp + o * row;
          if (forward) std::memcpy(sp, bp, sizeof(float) * size_t(row));
          else std::memcpy(bp, sp, sizeof(float) * size_t(row));
        }
      });
      offset += row;
    }
  }

  int axis_ = 1;
  std::vector<int> sizes_;  // each top's size along axis_
};

DSG_REGISTER_LAYER("Slice", SliceLayer);

}  // namespace dsg

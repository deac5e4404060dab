// Input (Caffe's "Input"): declares net inputs that the caller fills. input_param.shape gives
// one shape per top, or one shape for all tops (or none: the tops keep their shapes). Shapes are
// set once at setup, so a caller may reshape the tops afterwards; forward and backward do nothing.
#include <cstdint>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"

namespace dsg {

class InputLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Input"; }
  int exact_num_bottoms() const override { return 0; }
  int min_num_tops() const override { return 1; }
  bool is_data_layer() const override { return true; }
  // The caller fills the tops on whichever device it runs; there is nothing to compute.
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void layer_setup(const TensorVec&, const TensorVec& top, std::mt19937_64&) override {
    const auto& ip = param_.input_param();
    const int num_shapes = ip.shape_size();
    if (num_shapes != 0 && num_shapes != 1 && num_shapes != int(top.size()))
      throw Error(where() +
                  strfmt("needs 0, 1 or %d (one per top) input shapes, got %d", int(top.size()), num_shapes));
    if (num_shapes == 0) return;
    for (size_t t = 0; t < top.size(); ++t) {
      const BlobShape& bs = ip.shape(num_shapes == 1 ? 0 : int(t));
      std::vector<int> dims;
      for (int i = 0; i < bs.dim_size(); ++i) {
        if (bs.dim(i) < 0 || bs.dim(i) > INT32_MAX)
          throw Error(where() + strfmt("input shape %d has invalid dim %lld", num_shapes == 1 ? 0 : int(t),
                                       (long long)bs.dim(i)));
        dims.push_back(int(bs.dim(i)));
      }
      top[t]->reshape(dims);
    }
  }

  void reshape(const TensorVec&, const TensorVec&) override {}
  void forward_cpu(const TensorVec&, const TensorVec&, const Context&) override {}
  void backward_cpu(const TensorVec&, const std::vector<bool>&, const TensorVec&, const Context&) override {}
  void forward_cuda(const TensorVec&, const TensorVec&, const Context&) override {}
  void backward_cuda(const TensorVec&, const std::vector<bool>&, const TensorVec&, const Context&) override {}
};

DSG_REGISTER_LAYER("Input", InputLayer);

}  // namespace dsg

// Convolution (Caffe's ConvolutionParameter), 2-D NCHW only: bottoms [N, C, H, W] ->
// tops [N, M, Ho, Wo] with Ho = (H + 2 pad_h - (dilation_h (kernel_h - 1) + 1)) / stride_h + 1.
// Weight [M, C/group, kernel_h, kernel_w], bias [M]. Several bottoms (each to its own top, all of
// the same shape) share the parameters, as in Caffe.
//
// Implementation: a batched im2col of a chunk of n images into a column buffer [C kh kw, n Ho Wo]
// (rows of group g are contiguous), one sgemm per group giving [M/g, n Ho Wo], then a reorder to
// NCHW adding the bias. A chunk holds as many images as fit in kColumnFloatsPerThread floats per
// thread (at least one), so the columns stay in cache between im2col and the GEMM that reads
// them. Backward reorders dY to [M, n Ho Wo], accumulates dW += dY col^T and db += row sums, and
// computes dcol = W^T dY followed by col2im for dX. When the whole batch fits in one chunk,
// backward reuses the columns of the preceding forward; otherwise it recomputes them per chunk.
//
// Structured sparsity (Layer::active_outputs / active_inputs, set by sparsity/structure.cpp):
// only the kept output channels are computed (the GEMM's M shrinks; the other channels of the top
// are written as exact zeros) and only the kept input channels are im2col'd (K shrinks to
// kept kh kw; the other channels are known to be zero). The kept weight rows / columns are
// gathered into a compact copy every forward. Backward computes dW and db for the kept entries
// only (other entries of the diffs are left as they are), and dX from the kept rows, writing 0 for
// input channels that were skipped.
//
// Dynamic Sparse Graph (dsg_param, layers/dsg_select.hpp; group 1, one bottom): PER_SAMPLE keeps
// (1 - gamma) of the output channels at every output position of every image, chosen on the
// estimates of the im2col windows, and computes them as dot products over the window (the other
// outputs are exact zeros, no bias); backward runs through the kept outputs only. BATCH_SHARED
// selects the output channels once per pass and runs the structured path with them.
//
// Device code (forward_cuda / backward_cuda, bodies in layers/conv_kernels.hpp): the dense and
// structured paths above with im2col, the reorders and col2im as one thread per entry (col2im
// gathers per input pixel in the CPU's order: deterministic) and the GEMMs through the device's
// ops, chunked by conv_kernels::device_column_floats. The weight operator and DSG run on the CPU.
//
// The class is split by responsibility: layers/convolution.cpp (setup, structure, the CPU path and
// its helpers; the oracle), layers/convolution_device.cpp (forward_cuda / backward_cuda and their
// helpers) and layers/convolution_dsg.cpp (the Dynamic Sparse Graph path).
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "runtime/device_array.hpp"
#include "runtime/layer.hpp"
#include "runtime/tensor.hpp"
#include "layers/conv_im2col.hpp"
#include "layers/dsg_select.hpp"

namespace dsg {

namespace conv_kernels {
struct ConvShape;
}  // namespace conv_kernels

class ConvolutionLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Convolution"; }
  std::vector<int> weight_blobs() const override { return {0}; }
  ChannelFlow channel_flow() const override;
  bool supports(DeviceType device, LayerMode mode) const override;
  void set_num_outputs(LayerParameter& param, int outputs) const override {
    param.mutable_convolution_param()->set_num_output(uint32_t(outputs));
  }
  int min_num_bottoms() const override { return 1; }
  int min_num_tops() const override { return 1; }

 protected:
  void layer_setup(const TensorVec& bottom, const TensorVec& top, std::mt19937_64& rng) override;
  void reshape(const TensorVec& bottom, const TensorVec& top) override;
  bool set_weight_operator(std::shared_ptr<const WeightOperator> op) override;

  const std::vector<uint8_t>* dynamic_output_mask() const override { return dsg_on_ ? &mask_ : nullptr; }
  bool double_mask_output() const override { return dsg_.configured() && dsg_.double_mask(); }

  LayerMacs macs() const override;

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override;
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override;
  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override;
  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override;

 private:
  // Dynamic Sparse Graph (layers/convolution_dsg.cpp). window_rows keeps the windows of the whole
  // batch for backward when they fit in kWindowCacheFloats.
  static constexpr int64_t kWindowCacheFloats = int64_t(1) << 26;
  const float* window_rows(const float* x, int n0, int nb, bool cached);
  void im2row(const float* x, int n0, int nb, float* rows) const;
  void row2im(const float* rows, int n0, int nb, float* dx) const;
  void forward_dsg_rows(const Tensor& bottom, Tensor& top);
  void backward_dsg_rows(const Tensor& top, bool need_x, Tensor& bottom);
  void select_shared(const Tensor& bottom);

  // Setup and structure (layers/convolution.cpp).
  void read_geometry(const ConvolutionParameter& p);
  conv_detail::PlaneGeometry geometry() const {
    return conv_detail::PlaneGeometry{h_, w_, ho_, wo_, kh_, kw_, sh_, sw_, hspan_.data(), wspan_.data()};
  }
  void configure_structure();

  // Device code (layers/convolution_device.cpp).
  conv_kernels::ConvShape kernel_shape() const;
  int device_chunk() const;
  void upload_structure();

  // Compact weight layout and the CPU helpers (layers/convolution.cpp).
  template <class Fn>
  void for_each_weight_run(Fn fn) const;
  const float* gather_weights();
  void scatter_weight_diff();
  void im2col(const float* x, int n0, int nb, float* col, int64_t ld) const;
  void col2im(const float* col, int64_t ld, int n0, int nb, float* dx) const;
  void scatter_output(const float* out, int64_t ld, float* y, int n0, int nb, bool in_place,
                      const float* bias) const;
  const float* gather_diff(const float* dy, int n0, int nb);

  int kh_ = 0, kw_ = 0, sh_ = 1, sw_ = 1, ph_ = 0, pw_ = 0, dh_ = 1, dw_ = 1;
  int m_ = 0, c_ = 0, group_ = 1;
  bool bias_term_ = true;
  int n_ = 0, h_ = 0, w_ = 0, ho_ = 0, wo_ = 0;
  int chunk_ = 1;        // images per im2col + GEMM step
  Tensor col_;           // columns [im2col'd channels kh kw, chunk Ho Wo]; reused for dcol in backward
  Tensor buf_;           // GEMM output / reordered top diff [computed rows, chunk Ho Wo]
  std::vector<conv_detail::Span> hspan_, wspan_;  // valid output rows / columns for each kernel row / column
  int col_holds_ = -1;   // bottom whose whole-batch columns col_ holds, or -1
  bool col_prefilled_ = false;  // DSG BATCH_SHARED: select_shared left the batch's columns in col_

  // Structured sparsity (refreshed by reshape() before every forward; backward uses the state of
  // the preceding forward).
  bool sparse_ = false;
  std::vector<int> outs_, ins_;         // computed output / im2col'd input channels; empty = all
  std::vector<int> og_, ig_;            // per group g: compact rows [og_[g], og_[g+1]), channels [ig_[g], ig_[g+1])
  std::vector<int64_t> woff_;           // offset of group g's [rows, channels kh kw] block in wc_
  std::vector<int> out_row_, in_row_;   // channel -> compact row / im2col channel, -1 if skipped
  std::vector<float> wc_, dwc_;         // compact weights (gathered every forward) and their diff

  // Device code: scratch (columns / dcol, GEMM output / reordered top diff, compact weights and
  // their diff, the ones vector and row sums of the bias gradient) and the structure as index
  // lists (see upload_structure).
  int dchunk_ = 1;
  int dcol_holds_ = -1;  // bottom whose whole-batch columns dcol_ holds, or -1
  DeviceArray<float> dcol_, dbuf_, wc_dev_, dwc_dev_, dones_, dsums_;
  IndexList douts_, dins_, dout_row_, din_row_, dwmap_;
  std::vector<int> wmap_;               // compact weight -> full weight index (host side of dwmap_)

  // Dynamic Sparse Graph (dsg_param).
  DsgSelector dsg_;
  bool dsg_on_ = false;                 // the last forward selected its outputs
  std::vector<int> sel_;                // PER_SAMPLE: kept channels per window [N Ho Wo, keep]
  std::vector<uint8_t> mask_;           // the last forward's output mask (top layout)
  std::vector<float> colt_, dcolt_, yc_;  // windows as rows, their diff, kept outputs [windows, keep]
};

// Calls fn(compact offset, full offset, floats) for every run of the compact weight layout
// (group blocks of kept rows x kept input channels x kh kw) and its place in blobs_[0].
template <class Fn>
void ConvolutionLayer::for_each_weight_run(Fn fn) const {
  const int64_t taps = int64_t(kh_) * kw_, cg = c_ / group_;
  for (int g = 0; g < group_; ++g) {
    const int nci = ig_[g + 1] - ig_[g];
    for (int r = og_[g]; r < og_[g + 1]; ++r) {
      const int64_t m = outs_.empty() ? r : outs_[size_t(r)];
      const int64_t dst = woff_[g] + int64_t(r - og_[g]) * nci * taps;
      if (ins_.empty()) {
        fn(dst, m * cg * taps, cg * taps);
        continue;
      }
      for (int ci = ig_[g]; ci < ig_[g + 1]; ++ci)
        fn(dst + (ci - ig_[g]) * taps, (m * cg + ins_[size_t(ci)] - g * cg) * taps, taps);
    }
  }
}

}  // namespace dsg

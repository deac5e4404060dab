// ONNX export of a set-up TEST-phase Net (dsgcompress --format onnx). Built only when the ONNX
// library is available (CMake target dsg_onnx, compile definition DSG_WITH_ONNX).
//
// Graph interface
//   inputs   The tops of Input / Data layers that an exported layer consumes, named like the
//            blobs, with the net's blob shapes. With dynamic_batch (default) axis 0 of every input
//            is the symbolic dimension "N" (when all inputs agree on their axis-0 size, the net's
//            batch size; otherwise the sizes stay fixed). Data layers' transform_param
//            (mean_value, scale, crop) is NOT part of the graph: the input takes the transformed
//            values; the input's doc_string records the transform. With normalize_inputs the
//            transform's mean_value and scale are graph nodes instead: the data input (top 0 of a
//            Data layer) takes raw pixel values x (still center-cropped when crop_size is set) and
//            the graph computes Mul(Sub(x, mean), scale), Caffe's (x - mean) * scale with the mean
//            per channel ([C, 1, 1]) or one value for all.
//   outputs  The leaf blobs left after dropping labels, Accuracy and loss layers, in production
//            order, named like the blobs. SoftmaxWithLoss becomes a Softmax whose output is named
//            "prob" (or after the layer's second top when it has one). Every blob's shape is
//            checked against ONNX shape inference during the export; outputs carry their shapes
//            (axis 0 "N" where it is the batch dimension under dynamic_batch; a dimension that
//            mixes the batch with other axes, e.g. Concat on axis 0, is left unknown).
//
// Layer mapping (Caffe semantics; the opset must be in [11, the ONNX library's maximum]):
//   Convolution    Conv (kernel, strides, symmetric pads, dilations, group, optional bias); one Conv
//                  per bottom/top pair, sharing the weight initializers.
//   InnerProduct   axis 1: [Flatten(1) when the bottom has more than 2 axes] + Gemm (transB = 1, or
//                  0 with `transpose`); other axes: Reshape to [0 x axis, -1] + MatMul(Transpose(W))
//                  (+ Add bias), giving Caffe's top shape.
//   Pooling        MAX -> MaxPool, AVE -> AveragePool (count_include_pad = 1), global_pooling ->
//                  GlobalMaxPool / GlobalAveragePool. Output sizes follow Caffe exactly: ceil_mode
//                  = 1 for CEIL rounding, ceil_mode = 0 for FLOOR or where Caffe drops a last
//                  window that would start in the padding (non-square corner cases use asymmetric
//                  end pads, AVE through an explicit zero Pad so the divisors stay Caffe's).
//   ReLU           Relu, or LeakyRelu(alpha = negative_slope).
//   Sigmoid, TanH  Sigmoid, Tanh.          Softmax   Softmax(axis).
//   Dropout, Split no node (the blob name is reused; ONNX values may fan out).
//   BatchNorm      BatchNormalization(epsilon) with mean = blob0 / blob2[0], var = blob1 / blob2[0];
//                  folded with a directly following channel-wise Scale on its top (scale, bias);
//                  otherwise scale 1 / bias 0. A BatchNorm with use_global_stats: false (batch
//                  statistics at test time) is refused.
//   Scale          Mul by the scale reshaped for broadcasting ([C, 1, 1] for NCHW) (+ Add bias).
//   Eltwise        SUM -> Sum (a Mul by a scalar first for each coeff != 1), PROD -> Mul chain,
//                  MAX -> Max.
//   Concat         Concat(axis).
//   Flatten        Flatten(1) for Caffe's default (axis 1 to the end), else Reshape.
//   Reshape        Reshape to the top's shape (axis 0 kept as 0 = copy, or -1, under dynamic_batch).
//   Accuracy, losses dropped: metrics (Layer::label_scoring) and losses (a non-zero
//                  default_loss_weight) have no node; SoftmaxWithLoss: see outputs.
// Which layers are graph inputs, metrics or losses is asked of the layer (is_data_layer,
// label_scoring, default_loss_weight); only the mapping above is keyed by the layer type.
// Layers that run in place in Caffe get fresh value names (the last version of a blob keeps the
// blob's name). Anything else throws dsg::Error naming the layer.
//
// Shared (codebook) weights: a parameter listed in OnnxExportOptions::shared is stored as a float
// codebook [K] and indices with the parameter's shape, and computed by Gather(codebook, indices) —
// no Reshape is needed since Gather's output takes the indices' shape. With K <= 256 (codes of at
// most 8 bits) the indices are a UINT8 initializer "<layer>/<blob>/codes" widened by
// Cast(to = INT32) (Gather takes int32 / int64 indices); otherwise an INT32 initializer. Each entry is
// verified: the layer and parameter exist, codes.size() equals the parameter count, every code is
// in range and codebook[codes[i]] == value[i]. Entries for BatchNorm statistics are accepted but
// exported densely (the exported mean / variance are derived values).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

// onnx_pb.h defines ONNX_API and then includes onnx/onnx-ml.pb.h (ONNX_ML=1 comes from the onnx target).
#include <onnx/onnx_pb.h>

#include "runtime/net.hpp"

namespace dsg {

// Codebook view of one parameter blob: value[i] == codebook[codes[i]] exactly.
struct OnnxSharedWeights {
  std::vector<float> codebook;
  std::vector<int32_t> codes;
};

struct OnnxExportOptions {
  int opset = 13;
  // (layer name, param index) -> codebook form; such blobs are exported as Gather(codebook, indices)
  // instead of a float initializer.
  std::map<std::pair<std::string, int>, OnnxSharedWeights> shared;
  std::string producer = "dsg";
  // Make axis 0 of the graph inputs the symbolic dimension "N" instead of the net's batch size.
  bool dynamic_batch = true;
  // Data layers' mean_value / scale as Sub / Mul nodes on the data input (see "inputs" above).
  bool normalize_inputs = false;
};

// Exports a set-up TEST-phase Net (weights loaded) as an ONNX model file (binary protobuf).
// Throws dsg::Error naming the layer for anything it cannot export, or the path when writing fails.
void export_onnx(const Net& net, const std::string& path, const OnnxExportOptions& options = {});

// Same, to a ModelProto in memory. The model has passed onnx::checker::check_model and strict ONNX
// shape inference, with every blob's inferred shape matching the net's.
onnx::ModelProto to_onnx(const Net& net, const OnnxExportOptions& options = {});

}  // namespace dsg

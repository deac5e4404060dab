// NumPy .npz export of a model's weights, for Python users (dsgcompress --format npz).
//
// An .npz is a zip archive (entries stored, not deflated) of .npy files: format 1.0, a header dict
// {'descr': '<f4', 'fortran_order': False, 'shape': (...), } padded to 64 bytes, then the
// little-endian float32 values in C order. numpy.load reads it; the README shows how a PyTorch
// module takes the arrays with load_state_dict.
//
// Names follow PyTorch's conventions: a layer's blob 0 is "<layer>.weight", blob 1 "<layer>.bias"
// (Caffe's and PyTorch's weight layouts agree for InnerProduct [out, in] and Convolution [out,
// in / group, kh, kw]); further blobs are "<layer>.blob<i>" (BatchNorm's mean, variance and scale
// factor, as Caffe stores them). Pruned weights are zeros; quantized ones their centroid values,
// and "<layer>.codebook" holds the centroids of each quantized layer.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dsg.pb.h"

namespace dsg::compress {

struct NpyArray {
  std::string name;            // entry "<name>.npy" in the archive
  std::vector<int64_t> shape;  // C order
  std::vector<float> data;
};

// The bytes of one .npy file.
std::string npy_bytes(const NpyArray& array);
// Writes an .npz (stored zip) atomically. Throws dsg::Error on a bad array (size vs shape) or I/O error.
void write_npz(const std::string& path, const std::vector<NpyArray>& arrays);
// Every parameter blob of `model`, named as above, in the model's order, then the codebooks.
std::vector<NpyArray> model_arrays(const ModelFile& model);

}  // namespace dsg::compress

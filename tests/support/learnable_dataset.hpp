// A small learnable IDX dataset and solver configs for end-to-end tests that must not depend on
// the real Fashion-MNIST files: 12x12 images, 4 classes; class c lights a 4x4 block at a
// class-specific place, plus noise. A tiny MLP reaches high accuracy in a few hundred steps.
#pragma once
#include <random>
#include <string>

#include "datasets/synthetic_data.hpp"

namespace dsg::test {

// Writes train-images-idx3-ubyte / train-labels-idx1-ubyte (n_train) and t10k-* (n_test) into dir.
inline void write_learnable_idx(const TempDir& dir, uint32_t n_train = 512, uint32_t n_test = 200) {
  auto make = [&](const std::string& prefix, uint32_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> img;
    put_be32(img, 0x00000803);
    put_be32(img, n);
    put_be32(img, 12);
    put_be32(img, 12);
    std::vector<uint8_t> labels(n);
    for (uint32_t i = 0; i < n; ++i) {
      int c = int(rng() % 4);
      labels[i] = uint8_t(c);
      int oy = (c / 2) * 6 + 1, ox = (c % 2) * 6 + 1;
      for (int y = 0; y < 12; ++y)
        for (int x = 0; x < 12; ++x) {
          int v = int(rng() % 60);
          if (y >= oy && y < oy + 4 && x >= ox && x < ox + 4) v += 150;
          img.push_back(uint8_t(v));
        }
    }
    write_bytes(dir.file(prefix + "-images-idx3-ubyte"), img);
    write_bytes(dir.file(prefix + "-labels-idx1-ubyte"), idx_labels(labels));
  };
  make("train", n_train, 11);
  make("t10k", n_test, 12);
}

// A solver prototxt training a 144-32-4 MLP (optionally with Dropout) on the dataset in `dir`.
inline std::string tiny_mlp_solver(const std::string& dir, int max_iter, const std::string& extra_solver = "",
                                   bool dropout = false) {
  std::string data = dir + "/train-images-idx3-ubyte";
  std::string test = dir + "/t10k-images-idx3-ubyte";
  return std::string("net_param {\n name: \"tiny\"\n") +
         " layer { name: \"d\" type: \"Data\" top: \"data\" top: \"label\" include { phase: TRAIN }\n"
         "   transform_param { scale: 0.00390625 } data_param { source: \"" + data +
         "\" backend: IDX batch_size: 16 } }\n"
         " layer { name: \"d\" type: \"Data\" top: \"data\" top: \"label\" include { phase: TEST }\n"
         "   transform_param { scale: 0.00390625 } data_param { source: \"" + test +
         "\" backend: IDX batch_size: 50 } }\n"
         " layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"data\" top: \"ip1\"\n"
         "   inner_product_param { num_output: 32 weight_filler { type: \"xavier\" } } }\n"
         " layer { name: \"relu1\" type: \"ReLU\" bottom: \"ip1\" top: \"ip1\" }\n" +
         (dropout ? " layer { name: \"drop1\" type: \"Dropout\" bottom: \"ip1\" top: \"ip1\" dropout_param { dropout_ratio: 0.3 } }\n"
                  : "") +
         " layer { name: \"ip2\" type: \"InnerProduct\" bottom: \"ip1\" top: \"ip2\"\n"
         "   inner_product_param { num_output: 4 weight_filler { type: \"xavier\" } } }\n"
         " layer { name: \"acc\" type: \"Accuracy\" bottom: \"ip2\" bottom: \"label\" top: \"accuracy\" include { phase: TEST } }\n"
         " layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip2\" bottom: \"label\" top: \"loss\" }\n"
         "}\n"
         "test_iter: 4\n test_interval: " + std::to_string(max_iter) + "\n test_initialization: false\n"
         "base_lr: 0.05\n momentum: 0.9\n weight_decay: 0.0005\n lr_policy: \"fixed\"\n display: 0\n"
         "max_iter: " + std::to_string(max_iter) + "\n random_seed: 7\n" + extra_solver;
}

}  // namespace dsg::test

// Helpers for the dataset tests: a self-removing temp directory and writers for small synthetic
// IDX (raw / gzipped) and CIFAR files. Sample i of a synthetic set is identified by its first
// two pixels: pixel 0 = i % 256, pixel 1 = i / 256.
#pragma once
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/error.hpp"

namespace dsg {
namespace test {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("dsg_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
             std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gzip = false) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("gzopen failed: " + path);
    if (!bytes.empty() && gzwrite(f, bytes.data(), unsigned(bytes.size())) != int(bytes.size()))
      throw std::runtime_error("gzwrite failed: " + path);
    gzclose(f);
  } else {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
}

inline void put_be32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
}

// Pixel p of synthetic sample i.
inline uint8_t synth_pixel(int64_t i, int64_t p) {
  if (p == 0) return uint8_t(i % 256);
  if (p == 1) return uint8_t(i / 256);
  return uint8_t((i * 31 + p * 7) % 256);
}

inline std::vector<uint8_t> idx_images(uint32_t n, uint32_t h, uint32_t w) {
  std::vector<uint8_t> b;
  put_be32(b, 0x00000803);
  put_be32(b, n);
  put_be32(b, h);
  put_be32(b, w);
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t p = 0; p < h * w; ++p) b.push_back(synth_pixel(i, p));
  return b;
}

inline std::vector<uint8_t> idx_labels(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> b;
  put_be32(b, 0x00000801);
  put_be32(b, uint32_t(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

inline uint8_t synth_label(int64_t i) { return uint8_t((i * 3) % 10); }

// Writes <prefix>-images-idx3-ubyte[.gz] and the matching labels file into `dir`; returns the
// images path.
inline std::string write_idx_pair(const TempDir& dir, const std::string& prefix, uint32_t n, uint32_t h,
                                  uint32_t w, bool gzip = false) {
  const std::string ext = gzip ? ".gz" : "";
  std::vector<uint8_t> labels(n);
  for (uint32_t i = 0; i < n; ++i) labels[i] = synth_label(i);
  const std::string images = dir.file(prefix + "-images-idx3-ubyte" + ext);
  write_bytes(images, idx_images(n, h, w), gzip);
  write_bytes(dir.file(prefix + "-labels-idx1-ubyte" + ext), idx_labels(labels), gzip);
  return images;
}

// `n` CIFAR records numbered from `first`: label bytes (1 for CIFAR-10: label; 2 for CIFAR-100:
// coarse, fine) followed by 3072 synthetic pixels.
inline std::vector<uint8_t> cifar_records(int64_t first, int64_t n, int label_bytes) {
  std::vector<uint8_t> b;
  for (int64_t i = first; i < first + n; ++i) {
    if (label_bytes == 2) b.push_back(uint8_t(i % 20));
    b.push_back(uint8_t(label_bytes == 2 ? (i * 7) % 100 : i % 10));
    for (int p = 0; p < 3072; ++p) b.push_back(synth_pixel(i, p));
  }
  return b;
}

// Runs f and returns "<what> | <hint>" of the dsg::Error it throws (empty if none).
template <class F>
std::string error_text(F&& f) {
  try {
    f();
  } catch (const dsg::Error& e) {
    return std::string(e.what()) + " | " + e.hint();
  }
  return "";
}

// Fashion-MNIST-named gzipped IDX files (train-*, t10k-*) of 28x28 images in 10 classes: class c
// lights columns [2c, 2c + 4) of every row (so every row of a row-sequence model sees it), plus
// noise. Used by the LSTM rows tests.
inline void write_striped_idx(const TempDir& dir, uint32_t n_train, uint32_t n_test) {
  auto make = [&](const std::string& prefix, uint32_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> img, labels(n);
    put_be32(img, 0x00000803);
    put_be32(img, n);
    put_be32(img, 28);
    put_be32(img, 28);
    for (uint32_t i = 0; i < n; ++i) {
      const int c = int(rng() % 10);
      labels[i] = uint8_t(c);
      for (int y = 0; y < 28; ++y)
        for (int x = 0; x < 28; ++x) img.push_back(uint8_t(rng() % 60 + (x >= 2 * c && x < 2 * c + 4 ? 180 : 0)));
    }
    write_bytes(dir.file(prefix + "-images-idx3-ubyte.gz"), img, true);
    write_bytes(dir.file(prefix + "-labels-idx1-ubyte.gz"), idx_labels(labels), true);
  };
  make("train", n_train, 21);
  make("t10k", n_test, 22);
}

}  // namespace test

}  // namespace dsg

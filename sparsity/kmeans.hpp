// One-dimensional k-means for Deep Compression weight sharing (pure functions, tested directly).
#pragma once
#include <cstdint>
#include <vector>

#include "dsg.pb.h"

namespace dsg {

// Initial centroids for k clusters over `values` (Han et al. 2016, Sec. 3.1):
//   LINEAR  linspace(min, max, k)            (the default; keeps the rare large weights)
//   DENSITY linear spacing on the CDF's y-axis mapped back to x (the (i+0.5)/k quantiles)
//   RANDOM  Forgy: k distinct samples drawn with `seed`.
std::vector<float> kmeans_init(const std::vector<float>& values, int k, QuantizationParameter::Init init,
                               uint64_t seed);

// Lloyd iterations from `centroids` until no assignment changes (or max_iterations). Returns the
// cluster of each value; `centroids` is updated in place (an empty cluster keeps its centroid).
// O(n log n + iterations * k log n): assignments are ranges of the sorted values.
std::vector<int> kmeans_1d(const std::vector<float>& values, std::vector<float>& centroids, int max_iterations);

// Deep Compression's centroid gradient: dC[k] = sum of grads whose code is k (codes index dC).
std::vector<double> cluster_gradient_sums(const std::vector<uint8_t>& codes, const float* grads, size_t clusters);

}  // namespace dsg

#include "sparsity/kmeans.hpp"

#include <algorithm>
#include <numeric>
#include <random>

#include "runtime/error.hpp"
#include "runtime/ops.hpp"

namespace dsg {

std::vector<float> kmeans_init(const std::vector<float>& values, int k, QuantizationParameter::Init init,
                               uint64_t seed) {
  if (k <= 0) throw Error("k-means needs at least one cluster");
  if (values.empty()) return std::vector<float>(size_t(k), 0.0f);
  std::vector<float> c(static_cast<size_t>(k), 0.0f);
  if (init == QuantizationParameter::LINEAR) {
    auto [lo, hi] = std::minmax_element(values.begin(), values.end());
    for (int i = 0; i < k; ++i) c[size_t(i)] = k == 1 ? 0.5f * (*lo + *hi) : *lo + (*hi - *lo) * float(i) / float(k - 1);
  } else if (init == QuantizationParameter::DENSITY) {
    std::vector<float> sorted = values;
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i < k; ++i) {
      double q = (i + 0.5) / k;
      c[size_t(i)] = sorted[std::min(sorted.size() - 1, size_t(q * double(sorted.size())))];
    }
  } else {
    std::mt19937_64 rng(seed);
    std::vector<size_t> idx(values.size());
    std::iota(idx.begin(), idx.end(), 0);
    for (int i = 0; i < k; ++i) {
      size_t left = idx.size() - size_t(i);
      if (left == 0) {
        c[size_t(i)] = values[idx[size_t(i) % idx.size()]];
        continue;
      }
      std::uniform_int_distribution<size_t> pick(0, left - 1);
      std::swap(idx[size_t(i)], idx[size_t(i) + pick(rng)]);
      c[size_t(i)] = values[idx[size_t(i)]];
    }
    std::sort(c.begin(), c.end());
  }
  return c;
}

std::vector<int> kmeans_1d(const std::vector<float>& values, std::vector<float>& centroids, int max_iterations) {
  const size_t n = values.size(), k = centroids.size();
  std::vector<int> assign(n, 0);
  if (n == 0 || k == 0) return assign;
  // Work on the sorted values; prefix sums give each range's mean in O(1).
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<float> sorted(n);
  std::vector<double> prefix(n + 1, 0.0);
  for (size_t i = 0; i < n; ++i) sorted[i] = values[order[i]], prefix[i + 1] = prefix[i] + sorted[i];

  // Clusters are kept in centroid order: cluster j owns sorted[bound[j], bound[j+1]).
  std::vector<size_t> perm(k);
  std::iota(perm.begin(), perm.end(), 0);
  std::vector<size_t> bound(k + 1, 0), previous;
  for (int it = 0; it <= max_iterations; ++it) {
    std::sort(perm.begin(), perm.end(), [&](size_t a, size_t b) { return centroids[a] < centroids[b]; });
    bound[0] = 0;
    bound[k] = n;
    for (size_t j = 1; j < k; ++j) {
      // Values closer to centroid perm[j-1] than to perm[j] (ties go to the lower one).
      float mid = 0.5f * (centroids[perm[j - 1]] + centroids[perm[j]]);
      bound[j] = size_t(std::upper_bound(sorted.begin(), sorted.end(), mid) - sorted.begin());
      bound[j] = std::max(bound[j], bound[j - 1]);
    }
    if (bound == previous || it == max_iterations) break;
    previous = bound;
    for (size_t j = 0; j < k; ++j)
      if (bound[j + 1] > bound[j])
        centroids[perm[j]] = float((prefix[bound[j + 1]] - prefix[bound[j]]) / double(bound[j + 1] - bound[j]));
  }
  for (size_t j = 0; j < k; ++j)
    for (size_t i = bound[j]; i < bound[j + 1]; ++i) assign[order[i]] = int(perm[j]);
  return assign;
}

std::vector<double> cluster_gradient_sums(const std::vector<uint8_t>& codes, const float* grads, size_t clusters) {
  std::vector<double> sums(clusters, 0.0);
  try {
    cpu_ops().sum_by_code(int64_t(codes.size()), codes.data(), grads, int(clusters), sums.data());
  } catch (const Error& e) {
    throw Error(std::string("cluster code out of range: ") + e.what());
  }
  return sums;
}

}  // namespace dsg

// Helpers for layers that honour Layer::active_outputs() / active_inputs() (structured sparsity,
// see sparsity/structure.hpp): checking a kept-index list and splitting it by group.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/error.hpp"

namespace dsg {

// Returns `kept` when it is a strictly increasing list of indices in [0, n) that leaves some
// index out, and an empty vector (= dense) when it is empty or lists all n indices. Throws
// dsg::Error "<where><what> ..." for unsorted, repeated or out-of-range entries.
inline std::vector<int> checked_kept(const std::vector<int>& kept, int64_t n, const std::string& where,
                                     const char* what) {
  for (size_t i = 0; i < kept.size(); ++i) {
    if (kept[i] < 0 || kept[i] >= n)
      throw Error(where + strfmt("%s index %d is out of range [0, %lld)", what, kept[i], static_cast<long long>(n)));
    if (i > 0 && kept[i] <= kept[i - 1])
      throw Error(where + strfmt("%s must be strictly increasing, got %d after %d", what, kept[i], kept[i - 1]));
  }
  if (int64_t(kept.size()) == n) return {};
  return kept;
}

// bounds[g] = position in `kept` (all of [0, n) when kept is empty) of the first index that falls
// in group g of `groups` equal slices of [0, n); bounds[groups] = the number of indices.
inline std::vector<int> group_bounds(const std::vector<int>& kept, int64_t n, int groups) {
  std::vector<int> bounds(size_t(groups) + 1, 0);
  const int64_t per = n / groups;
  if (kept.empty()) {
    for (int g = 0; g <= groups; ++g) bounds[size_t(g)] = int(g * per);
    return bounds;
  }
  size_t i = 0;
  for (int g = 0; g < groups; ++g) {
    bounds[size_t(g)] = int(i);
    while (i < kept.size() && kept[i] < (g + 1) * per) ++i;
  }
  bounds[size_t(groups)] = int(kept.size());
  return bounds;
}

}  // namespace dsg

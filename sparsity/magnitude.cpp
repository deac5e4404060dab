// Policy "magnitude": Deep Compression's magnitude pruning (Han et al. 2015) at the granularities
// of Mao et al. (2017). The weight blob 0 of a Convolution [M, C/g, kh, kw] or InnerProduct [M, K]
// layer is split into groups and the groups with the smallest saliency are pruned (FINE ranks the
// weights of all the layer's weight blobs together, e.g. an LSTM's W_xc and W_hc):
//   FINE     single weights, saliency |w|;
//   VECTOR   kernel rows W[m][c][r][:] (kw weights);
//   KERNEL   kernels W[m][c][:][:] (kh*kw weights);
//   FILTER   output channels W[m][...] (rows; the base class also zeroes their biases);
//   CHANNEL  input channels W[:][c][...] (columns of an InnerProduct weight).
// Group saliency is the L1 or L2 norm of the group (group_norm, default L2). Pruning to sparsity
// s keeps the round((1 - s) * G) groups of largest saliency (ties: lower group index first).
//
// At least one group is always kept: a target that would prune every group is refused by
// validate() when it is known up front (target_sparsity), and clamped to one kept group otherwise
// (quality mode, GLOBAL shares, sparsity_scale > 1).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "sparsity/policy.hpp"

namespace dsg {
namespace {

// Maps every element of a weight blob to its group for a granularity.
struct Grouping {
  int64_t groups = 0;
  std::vector<int64_t> group_of;  // one entry per weight
};

Grouping make_grouping(const Tensor& w, SparsityParameter::Granularity g) {
  Grouping out;
  const int64_t n = w.count();
  out.group_of.resize(size_t(n));
  const int64_t rows = std::max<int64_t>(1, w.num_axes() > 0 ? w.shape(0) : 1);
  const int64_t per_row = n / rows;
  switch (g) {
    case SparsityParameter::FINE:
      out.groups = n;
      for (int64_t i = 0; i < n; ++i) out.group_of[size_t(i)] = i;
      break;
    case SparsityParameter::VECTOR:
    case SparsityParameter::KERNEL: {
      // Contiguous runs: a kernel row has kw weights, a kernel kh*kw (validate() ensures 4-d).
      int64_t len = g == SparsityParameter::VECTOR ? w.shape(3) : int64_t(w.shape(2)) * w.shape(3);
      out.groups = n / len;
      for (int64_t i = 0; i < n; ++i) out.group_of[size_t(i)] = i / len;
      break;
    }
    case SparsityParameter::FILTER:
      out.groups = rows;
      for (int64_t i = 0; i < n; ++i) out.group_of[size_t(i)] = i / per_row;
      break;
    case SparsityParameter::CHANNEL: {
      // [M, C, inner...]: channel c of row m spans `inner` contiguous weights (1 for [M, K]).
      int64_t channels = w.num_axes() > 1 ? w.shape(1) : 1;
      int64_t inner = per_row / channels;
      out.groups = channels;
      for (int64_t i = 0; i < n; ++i) out.group_of[size_t(i)] = (i % per_row) / inner;
      break;
    }
  }
  return out;
}

// Groups kept at sparsity s: round((1 - s) * G), at least one (when there is any group).
size_t groups_to_keep(double sparsity, int64_t groups) {
  double keep = std::round((1.0 - sparsity) * double(groups));
  if (keep < 1) keep = 1;
  if (keep > double(groups)) keep = double(groups);
  return size_t(keep);
}

class MagnitudePolicy : public SparsityPolicy {
 public:
  using SparsityPolicy::SparsityPolicy;
  const char* type() const override { return "magnitude"; }

  // Base checks, then: FILTER / CHANNEL need a Convolution or (non-transposed) InnerProduct;
  // CHANNEL refuses grouped convolutions; a target_sparsity must leave at least one group.
  void validate() const override {
    SparsityPolicy::validate();
    const std::string where = "layer '" + layer_.name() + "' sparsity_param: ";
    const auto g = param_.granularity();
    const std::string gname = SparsityParameter::Granularity_Name(g);
    const ChannelFlow flow = layer_.channel_flow();
    const Tensor& w = *layer_.blobs()[0];
    if (g == SparsityParameter::FILTER || g == SparsityParameter::CHANNEL) {
      if (flow.kind != ChannelFlow::kProducer)
        throw Error(where + "granularity " + gname + " needs a Convolution or InnerProduct layer, not " + layer_.type());
      if (!flow.rows_are_outputs)
        throw Error(where + "granularity " + gname + " needs weights laid out [num_output, K]; this " + layer_.type() +
                    " has transpose: true (weights " + w.shape_string() + ")");
      if (w.num_axes() < 2)
        throw Error(where + "granularity " + gname + " needs a weight of at least 2 axes, got " + w.shape_string());
    }
    if (g == SparsityParameter::CHANNEL && flow.groups > 1)
      throw Error(where + strfmt("granularity CHANNEL is not supported on a grouped convolution (group %d): an input "
                                 "channel feeds only one group's filters",
                                 flow.groups));
    if (param_.has_target_sparsity()) {
      int64_t groups = make_grouping(w, g).groups;
      if (groups == 0) throw Error(where + "the weight blob " + w.shape_string() + " is empty");
      if (std::round((1.0 - double(param_.target_sparsity())) * double(groups)) < 1)
        throw Error(where + strfmt("target_sparsity %g would prune all %lld %s groups of weights %s; at least one "
                                   "group must be kept",
                                   param_.target_sparsity(), static_cast<long long>(groups), gname.c_str(),
                                   w.shape_string().c_str()));
    }
  }

 protected:
  void compute_mask(float sparsity, std::vector<uint8_t>& mask) const override {
    if (param_.granularity() == SparsityParameter::FINE) {  // over all weight blobs (LSTM: W_xc, W_hc)
      std::vector<float> score = saliency();
      mask = keep_top(score, groups_to_keep(sparsity, int64_t(score.size())));
      return;
    }
    const Tensor& w = *layer_.blobs()[0];
    const float* d = w.data();
    const int64_t n = w.count();
    const Grouping grouping = make_grouping(w, param_.granularity());
    const bool l1 = param_.group_norm() == SparsityParameter::L1;
    std::vector<double> acc(size_t(grouping.groups), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      double v = d[i];
      acc[size_t(grouping.group_of[size_t(i)])] += l1 ? std::fabs(v) : v * v;
    }
    std::vector<float> score(acc.size());
    for (size_t k = 0; k < acc.size(); ++k) score[k] = float(l1 ? acc[k] : std::sqrt(acc[k]));
    std::vector<uint8_t> keep_group = keep_top(score, groups_to_keep(sparsity, grouping.groups));
    mask.assign(size_t(n), 0);
    for (int64_t i = 0; i < n; ++i) mask[size_t(i)] = keep_group[size_t(grouping.group_of[size_t(i)])];
  }
};

}  // namespace

DSG_REGISTER_POLICY("magnitude", MagnitudePolicy);

}  // namespace dsg

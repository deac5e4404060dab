// Exact tests of the "magnitude" policy: which weights a prune_to() zeroes at every granularity,
// the L1 / L2 group norms, bias zeroing and kept_outputs() for FILTER, masking and release(),
// and the configurations validate() refuses.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "sparsity/policy.hpp"

using namespace dsg;

namespace {

// A layer set up on its own bottom/top tensors.
struct Built {
  std::unique_ptr<Layer> layer;
  std::unique_ptr<Tensor> bottom, top;
  Tensor& w() { return *layer->blobs()[0]; }
  Tensor& b() { return *layer->blobs()[1]; }
};

SparsityParameter sparsity(SparsityParameter::Granularity g, float target,
                           SparsityParameter::GroupNorm norm = SparsityParameter::L2) {
  SparsityParameter sp;
  sp.set_policy("magnitude");
  sp.set_granularity(g);
  sp.set_target_sparsity(target);
  sp.set_group_norm(norm);
  return sp;
}

Built build(LayerParameter p, std::vector<int> bottom_shape) {
  Built b;
  b.layer = create_layer(p);
  b.bottom = std::make_unique<Tensor>(bottom_shape);
  b.top = std::make_unique<Tensor>();
  std::mt19937_64 rng(5);
  b.layer->setup({b.bottom.get()}, {b.top.get()}, rng);
  return b;
}

// Convolution weights [m, c/group, k, k] on a [1, c, 6, 6] bottom.
Built conv(int m, int c, int k, const SparsityParameter& sp, int group = 1) {
  LayerParameter p;
  p.set_name("conv");
  p.set_type("Convolution");
  p.mutable_convolution_param()->set_num_output(m);
  p.mutable_convolution_param()->add_kernel_size(k);
  p.mutable_convolution_param()->set_group(group);
  *p.mutable_sparsity_param() = sp;
  return build(p, {1, c, 6, 6});
}

// InnerProduct weights [m, k] on a [2, k] bottom.
Built inner_product(int m, int k, const SparsityParameter& sp) {
  LayerParameter p;
  p.set_name("fc");
  p.set_type("InnerProduct");
  p.mutable_inner_product_param()->set_num_output(m);
  *p.mutable_sparsity_param() = sp;
  return build(p, {2, k});
}

std::unique_ptr<SparsityPolicy> make_policy(Built& b) {
  auto policy = policy_registry().create("magnitude", b.layer->param().sparsity_param(), *b.layer);
  policy->validate();
  return policy;
}

// Gives group g (group_of(i) for weight i) the magnitude rank[g] + 1, with alternating signs,
// so group saliencies are distinct and known.
void write_ranked(Tensor& w, const std::function<int(int64_t)>& group_of, const std::vector<int>& rank) {
  for (int64_t i = 0; i < w.count(); ++i) w.mutable_data()[i] = float(rank[size_t(group_of(i))] + 1) * (i % 2 ? -1.f : 1.f);
}

// A fixed permutation of 0..n-1 (the groups' saliency ranks).
std::vector<int> permutation(int n) {
  std::vector<int> r(static_cast<size_t>(n));
  std::iota(r.begin(), r.end(), 0);
  std::shuffle(r.begin(), r.end(), std::mt19937(123));
  return r;
}

// Prunes to `s` and checks that exactly the weights of the lowest-ranked groups are zero.
void check_groups(Built& b, int groups, const std::function<int(int64_t)>& group_of, float s) {
  auto rank = permutation(groups);
  write_ranked(b.w(), group_of, rank);
  auto policy = make_policy(b);
  policy->prune_to(s);
  const int keep = int(std::lround((1.0 - s) * groups));
  int64_t zeros = 0;
  for (int64_t i = 0; i < b.w().count(); ++i) {
    bool kept = rank[size_t(group_of(i))] >= groups - keep;
    INFO("weight " << i << " group " << group_of(i) << " rank " << rank[size_t(group_of(i))]);
    REQUIRE((b.w().data()[i] != 0.0f) == kept);
    REQUIRE(policy->mask()[size_t(i)] == uint8_t(kept));
    zeros += !kept;
  }
  const double group_size = double(b.w().count()) / groups;
  CHECK(policy->sparsity() == Approx(double(zeros) / b.w().count()));
  CHECK(std::fabs(policy->sparsity() - s) <= group_size / b.w().count() + 1e-9);
  CHECK(policy->active());
  CHECK(policy->fired() == 1);
  CHECK(policy->current_target() == Approx(s));
}

}  // namespace

TEST_CASE("magnitude FINE keeps the largest |w|", "[sparsity]") {
  Built b = conv(4, 3, 3, sparsity(SparsityParameter::FINE, 0.75f));
  const int64_t n = b.w().count();  // 108
  // |w_i| = (a shuffled rank of i) + 1.
  check_groups(b, int(n), [](int64_t i) { return int(i); }, 0.75f);
  // Zero exactly round(0.75 * 108) = 81 weights.
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; ++i) zeros += b.w().data()[i] == 0.0f;
  CHECK(zeros == 81);
}

TEST_CASE("magnitude VECTOR prunes whole kernel rows", "[sparsity]") {
  Built b = conv(2, 3, 3, sparsity(SparsityParameter::VECTOR, 0.5f));  // [2,3,3,3]: 18 rows of 3
  auto group_of = [](int64_t i) {
    int m = int(i / 27), c = int(i / 9 % 3), r = int(i / 3 % 3);
    return (m * 3 + c) * 3 + r;
  };
  check_groups(b, 18, group_of, 0.5f);
}

TEST_CASE("magnitude KERNEL prunes whole kernels", "[sparsity]") {
  Built b = conv(4, 3, 3, sparsity(SparsityParameter::KERNEL, 0.6f));  // 12 kernels of 9
  auto group_of = [](int64_t i) { return int(i / 27) * 3 + int(i / 9 % 3); };
  check_groups(b, 12, group_of, 0.6f);
}

TEST_CASE("magnitude FILTER prunes output channels, their biases and reports kept_outputs", "[sparsity]") {
  Built b = conv(8, 2, 3, sparsity(SparsityParameter::FILTER, 0.5f));  // [8,2,3,3]
  auto group_of = [](int64_t i) { return int(i / 18); };
  auto rank = permutation(8);
  b.b().set_data(1.0f);
  check_groups(b, 8, group_of, 0.5f);
  auto policy = make_policy(b);  // a second policy, on the already-pruned weights
  b.b().set_data(1.0f);
  write_ranked(b.w(), group_of, rank);
  policy->prune_to(0.5f);
  std::vector<int> expected;
  for (int m = 0; m < 8; ++m)
    if (rank[size_t(m)] >= 4) expected.push_back(m);
  CHECK(policy->kept_outputs() == expected);
  for (int m = 0; m < 8; ++m) {
    INFO("filter " << m);
    CHECK(b.b().data()[m] == (rank[size_t(m)] >= 4 ? 1.0f : 0.0f));
  }
  // Gradients of pruned filters (weights and bias) are zeroed, the others untouched.
  for (int64_t i = 0; i < b.w().count(); ++i) b.w().mutable_diff()[i] = 2.0f;
  for (int m = 0; m < 8; ++m) b.b().mutable_diff()[m] = 3.0f;
  policy->mask_gradients();
  for (int64_t i = 0; i < b.w().count(); ++i) REQUIRE(b.w().diff()[i] == (rank[size_t(group_of(i))] >= 4 ? 2.0f : 0.0f));
  for (int m = 0; m < 8; ++m) CHECK(b.b().diff()[m] == (rank[size_t(m)] >= 4 ? 3.0f : 0.0f));
}

TEST_CASE("magnitude FILTER on an InnerProduct prunes neurons (rows)", "[sparsity]") {
  Built b = inner_product(6, 5, sparsity(SparsityParameter::FILTER, 0.5f));
  check_groups(b, 6, [](int64_t i) { return int(i / 5); }, 0.5f);
}

TEST_CASE("magnitude CHANNEL prunes input channels (columns for an InnerProduct)", "[sparsity]") {
  SECTION("convolution [4,5,3,3]") {
    Built b = conv(4, 5, 3, sparsity(SparsityParameter::CHANNEL, 0.6f));
    check_groups(b, 5, [](int64_t i) { return int(i / 9 % 5); }, 0.6f);
  }
  SECTION("inner product [3,10]") {
    Built b = inner_product(3, 10, sparsity(SparsityParameter::CHANNEL, 0.3f));
    check_groups(b, 10, [](int64_t i) { return int(i % 10); }, 0.3f);
    auto policy = make_policy(b);
    policy->prune_to(0.3f);
    CHECK(policy->kept_outputs().empty());  // only FILTER reports kept outputs
  }
}

TEST_CASE("magnitude group norm: L1 and L2 choose different groups", "[sparsity]") {
  // Two kernel rows (VECTOR groups of 3) per filter: row A = (3, 0, 0): L1 3, L2 3;
  // row B = (1.2, 1.2, 1.2): L1 3.6, L2 2.08. Pruning half the rows keeps B under L1, A under L2.
  for (auto norm : {SparsityParameter::L1, SparsityParameter::L2}) {
    Built b = conv(1, 1, 3, sparsity(SparsityParameter::VECTOR, 1.0f / 3.0f, norm));  // [1,1,3,3]: 3 rows
    const float w[9] = {3, 0, 0, 1.2f, 1.2f, 1.2f, 0.1f, 0.1f, 0.1f};
    std::copy(w, w + 9, b.w().mutable_data());
    auto policy = make_policy(b);
    policy->prune_to(2.0f / 3.0f);  // keep round(1/3 * 3) = 1 row
    const float* d = b.w().data();
    INFO(SparsityParameter::GroupNorm_Name(norm));
    if (norm == SparsityParameter::L1) {
      CHECK((d[0] == 0 && d[3] == 1.2f && d[4] == 1.2f && d[5] == 1.2f));
    } else {
      CHECK((d[0] == 3.0f && d[3] == 0 && d[4] == 0 && d[5] == 0));
    }
    CHECK((d[6] == 0 && d[7] == 0 && d[8] == 0));
  }
}

TEST_CASE("magnitude masks gradients and weights until release()", "[sparsity]") {
  Built b = inner_product(4, 8, sparsity(SparsityParameter::FINE, 0.5f));
  for (int64_t i = 0; i < 32; ++i) b.w().mutable_data()[i] = float(i + 1);
  auto policy = make_policy(b);
  policy->prune_to(0.5f);
  for (int64_t i = 0; i < 32; ++i) REQUIRE((b.w().data()[i] == 0.0f) == (i < 16));
  // Gradients of the pruned half are zeroed.
  for (int64_t i = 0; i < 32; ++i) b.w().mutable_diff()[i] = 1.0f;
  policy->mask_gradients();
  for (int64_t i = 0; i < 32; ++i) REQUIRE(b.w().diff()[i] == (i < 16 ? 0.0f : 1.0f));
  // An update that moves pruned weights is undone by mask_weights().
  for (int64_t i = 0; i < 32; ++i) b.w().mutable_data()[i] += 0.5f;
  policy->mask_weights();
  for (int64_t i = 0; i < 32; ++i) REQUIRE((b.w().data()[i] == 0.0f) == (i < 16));
  CHECK(policy->sparsity() == 0.5);
  // After release() nothing is masked any more.
  policy->release();
  CHECK_FALSE(policy->active());
  for (int64_t i = 0; i < 32; ++i) b.w().mutable_diff()[i] = 1.0f;
  policy->mask_gradients();
  for (int64_t i = 0; i < 32; ++i) REQUIRE(b.w().diff()[i] == 1.0f);
  for (int64_t i = 0; i < 32; ++i) b.w().mutable_data()[i] += 0.25f;
  policy->mask_weights();
  for (int64_t i = 0; i < 32; ++i) REQUIRE(b.w().data()[i] != 0.0f);
  CHECK(policy->sparsity() == 0.0);
}

TEST_CASE("magnitude state survives save/load", "[sparsity]") {
  Built b = conv(4, 2, 3, sparsity(SparsityParameter::FILTER, 0.5f));
  write_ranked(b.w(), [](int64_t i) { return int(i / 18); }, {3, 0, 2, 1});
  auto policy = make_policy(b);
  policy->prune_to(0.5f);
  PolicyState state;
  policy->save(&state);
  auto restored = make_policy(b);
  restored->load(state);
  CHECK(restored->mask() == policy->mask());
  CHECK(restored->kept_outputs() == std::vector<int>{0, 2});
  CHECK(restored->active());
  CHECK(restored->fired() == 1);
}

TEST_CASE("magnitude validate() refuses configurations that cannot work", "[sparsity]") {
  auto error_of = [](Built& b) -> std::string {
    try {
      make_policy(b);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  SECTION("FILTER on a layer that is not Convolution / InnerProduct") {
    LayerParameter p;
    p.set_name("scale1");
    p.set_type("Scale");
    *p.mutable_sparsity_param() = sparsity(SparsityParameter::FILTER, 0.5f);
    Built b = build(p, {2, 3, 4, 4});
    CHECK_THAT(error_of(b), Catch::Contains("scale1") && Catch::Contains("FILTER") && Catch::Contains("Scale"));
  }
  SECTION("KERNEL on an InnerProduct") {
    Built b = inner_product(4, 8, sparsity(SparsityParameter::KERNEL, 0.5f));
    CHECK_THAT(error_of(b), Catch::Contains("fc") && Catch::Contains("KERNEL"));
  }
  SECTION("FILTER on a transposed InnerProduct (weights [K, N])") {
    LayerParameter p;
    p.set_name("fct");
    p.set_type("InnerProduct");
    p.mutable_inner_product_param()->set_num_output(4);
    p.mutable_inner_product_param()->set_transpose(true);
    *p.mutable_sparsity_param() = sparsity(SparsityParameter::FILTER, 0.5f);
    Built b = build(p, {2, 6});
    CHECK_THAT(error_of(b), Catch::Contains("fct") && Catch::Contains("transpose"));
  }
  SECTION("CHANNEL on a grouped convolution") {
    Built b = conv(4, 4, 3, sparsity(SparsityParameter::CHANNEL, 0.5f), /*group=*/2);
    CHECK_THAT(error_of(b), Catch::Contains("conv") && Catch::Contains("grouped"));
    Built ok = conv(4, 4, 3, sparsity(SparsityParameter::FILTER, 0.5f), /*group=*/2);
    CHECK(error_of(ok).empty());
  }
  SECTION("a target that would prune every group") {
    Built b = conv(4, 2, 3, sparsity(SparsityParameter::FILTER, 0.9f));  // round(0.1 * 4) = 0 filters
    CHECK_THAT(error_of(b), Catch::Contains("conv") && Catch::Contains("at least one"));
    Built ok = conv(4, 2, 3, sparsity(SparsityParameter::FINE, 0.9f));  // 7 of 72 weights kept
    CHECK(error_of(ok).empty());
  }
  SECTION("an unknown policy name lists the known ones") {
    Built b = inner_product(4, 8, sparsity(SparsityParameter::FINE, 0.5f));
    CHECK_THROWS_WITH(policy_registry().create("bogus", b.layer->param().sparsity_param(), *b.layer),
                      Catch::Contains("bogus") && Catch::Contains("magnitude") && Catch::Contains("ese"));
  }
}

TEST_CASE("magnitude clamps to one kept group when asked to prune everything", "[sparsity]") {
  Built b = conv(4, 2, 3, sparsity(SparsityParameter::FILTER, 0.5f));
  write_ranked(b.w(), [](int64_t i) { return int(i / 18); }, {1, 3, 0, 2});
  auto policy = make_policy(b);
  policy->prune_to(0.9999f);
  CHECK(policy->kept_outputs() == std::vector<int>{1});
  CHECK(policy->sparsity() == Approx(0.75));
}

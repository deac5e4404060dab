// The "ese" policy (load-balance-aware pruning): every interleaved row partition keeps exactly the
// same number of non-zeros, chosen by magnitude within the partition; configuration errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "sparsity/ese.hpp"
#include "sparsity/policy.hpp"

using namespace dsg;

namespace {

struct Fc {
  std::unique_ptr<Layer> layer;
  Tensor bottom, top;
  Tensor& w() { return *layer->blobs()[0]; }
};

// InnerProduct "fc" [m, k] with an "ese" sparsity_param (or the policy named `policy`).
std::unique_ptr<Fc> fc(int m, int k, int partitions, float target, const std::string& policy = "ese",
                       SparsityParameter::Granularity g = SparsityParameter::FINE) {
  LayerParameter p;
  p.set_name("fc");
  p.set_type("InnerProduct");
  p.mutable_inner_product_param()->set_num_output(m);
  auto* sp = p.mutable_sparsity_param();
  sp->set_policy(policy);
  sp->set_target_sparsity(target);
  sp->set_num_partitions(partitions);
  sp->set_granularity(g);
  auto out = std::make_unique<Fc>();
  out->layer = create_layer(p);
  out->bottom.reshape({2, k});
  std::mt19937_64 rng(3);
  out->layer->setup({&out->bottom}, {&out->top}, rng);
  return out;
}

// Random weights whose row scale depends on the partition (row % 8), so that plain magnitude
// pruning loads the partitions very unevenly.
void write_unbalanced(Tensor& w) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int k = w.shape(1);
  for (int64_t i = 0; i < w.count(); ++i) w.mutable_data()[i] = u(rng) * float(1 + (i / k) % 8);
}

std::unique_ptr<SparsityPolicy> make(Fc& f) {
  auto p = policy_registry().create(f.layer->param().sparsity_param().policy(), f.layer->param().sparsity_param(),
                                    *f.layer);
  p->validate();
  return p;
}

double max_over_mean(const std::vector<int64_t>& nnz) {
  double mean = double(std::accumulate(nnz.begin(), nnz.end(), int64_t(0))) / double(nnz.size());
  return double(*std::max_element(nnz.begin(), nnz.end())) / mean;
}

}  // namespace

TEST_CASE("ese balances non-zeros over partitions exactly", "[sparsity]") {
  auto f = fc(64, 100, 8, 0.9f);
  write_unbalanced(f->w());
  std::vector<float> before(f->w().data(), f->w().data() + f->w().count());
  auto policy = make(*f);
  policy->prune_to(0.9f);
  auto nnz = nonzeros_per_partition(f->w(), 8);
  REQUIRE(nnz.size() == 8);
  for (int p = 0; p < 8; ++p) CHECK(nnz[size_t(p)] == 80);  // round(0.1 * 8 rows * 100)
  CHECK(max_over_mean(nnz) == 1.0);
  CHECK(policy->sparsity() == Approx(0.9));
  // Within each partition the kept weights are the 80 largest |w| of that partition.
  for (int p = 0; p < 8; ++p) {
    std::vector<float> mags;
    for (int r = p; r < 64; r += 8)
      for (int c = 0; c < 100; ++c) mags.push_back(std::fabs(before[size_t(r * 100 + c)]));
    std::sort(mags.begin(), mags.end(), std::greater<float>());
    float threshold = mags[79];
    for (int r = p; r < 64; r += 8)
      for (int c = 0; c < 100; ++c) {
        size_t i = size_t(r * 100 + c);
        REQUIRE((f->w().data()[i] != 0.0f) == (std::fabs(before[i]) >= threshold));
      }
  }
  // Gradients of pruned weights are masked.
  for (int64_t i = 0; i < f->w().count(); ++i) f->w().mutable_diff()[i] = 1.0f;
  policy->mask_gradients();
  for (int64_t i = 0; i < f->w().count(); ++i) REQUIRE(f->w().diff()[i] == (f->w().data()[i] != 0.0f ? 1.0f : 0.0f));
}

TEST_CASE("plain magnitude pruning of the same weights is unbalanced (the case ese fixes)", "[sparsity]") {
  auto f = fc(64, 100, 8, 0.9f, "magnitude");
  write_unbalanced(f->w());
  auto policy = make(*f);
  policy->prune_to(0.9f);
  auto nnz = nonzeros_per_partition(f->w(), 8);
  CHECK(std::accumulate(nnz.begin(), nnz.end(), int64_t(0)) == 640);
  CHECK(max_over_mean(nnz) > 1.5);
}

TEST_CASE("ese with one partition equals FINE magnitude pruning", "[sparsity]") {
  auto a = fc(16, 20, 1, 0.7f);
  auto b = fc(16, 20, 1, 0.7f, "magnitude");
  write_unbalanced(a->w());
  write_unbalanced(b->w());
  auto pa = make(*a);
  auto pb = make(*b);
  pa->prune_to(0.7f);
  pb->prune_to(0.7f);
  CHECK(pa->mask() == pb->mask());
  CHECK(std::string(pa->type()) == "ese");
}

TEST_CASE("nonzeros_per_partition counts the current weights by interleaved rows", "[sparsity]") {
  Tensor w({4, 3});
  const float v[12] = {1, 0, 1, /**/ 0, 0, 0, /**/ 1, 1, 1, /**/ 0, 2, 0};
  std::copy(v, v + 12, w.mutable_data());
  CHECK(nonzeros_per_partition(w, 2) == std::vector<int64_t>{5, 1});
  CHECK(nonzeros_per_partition(w, 4) == std::vector<int64_t>{2, 0, 3, 1});
  CHECK(nonzeros_per_partition(w, 1) == std::vector<int64_t>{6});
  CHECK_THROWS_AS(nonzeros_per_partition(w, 0), Error);
}

TEST_CASE("ese validate() refuses bad partitions and granularities", "[sparsity]") {
  auto error_of = [](Fc& f) -> std::string {
    try {
      make(f);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  auto uneven = fc(60, 10, 8, 0.5f);
  CHECK_THAT(error_of(*uneven), Catch::Contains("fc") && Catch::Contains("M = 60") && Catch::Contains("N = 8"));
  auto zero = fc(64, 10, 0, 0.5f);
  CHECK_THAT(error_of(*zero), Catch::Contains("fc") && Catch::Contains("num_partitions"));
  auto coarse = fc(64, 10, 8, 0.5f, "ese", SparsityParameter::FILTER);
  CHECK_THAT(error_of(*coarse), Catch::Contains("fc") && Catch::Contains("FINE"));
  auto ok = fc(64, 10, 8, 0.5f);
  CHECK(error_of(*ok).empty());
}

// Approximate Random Dropout's row-pattern distribution: the exact rate constraint, the W1 search
// against the naive bracketing mixture (both recomputed here by brute force), the pattern helper,
// inverse-CDF sampling, a Monte-Carlo check of the per-unit drop rate, the cache and determinism.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "runtime/error.hpp"
#include "layers/ard_distribution.hpp"

using namespace dsg;

namespace {

// Units dropped by pattern (period, offset) over n units, counted directly.
int dropped(int n, int period, int offset) {
  int count = 0;
  for (int i = 0; i < n; ++i) count += (i + offset) % period != 0;
  return count;
}

// Brute-force W1 = sum_k |F_pi(k) - F_B(k)| between the dropped-count distribution of (periods,
// probs) with a uniform offset and Binomial(n, p).
double brute_w1(const std::vector<int>& periods, const std::vector<double>& probs, int n, double p) {
  std::vector<double> pmf_pi(static_cast<size_t>(n) + 1, 0.0), pmf_b(static_cast<size_t>(n) + 1, 0.0);
  for (size_t i = 0; i < periods.size(); ++i)
    for (int o = 0; o < periods[i]; ++o) pmf_pi[static_cast<size_t>(dropped(n, periods[i], o))] += probs[i] / periods[i];
  for (int k = 0; k <= n; ++k)
    pmf_b[static_cast<size_t>(k)] = p == 0 ? (k == 0 ? 1.0 : 0.0)
                                           : std::exp(std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0) +
                                                      k * std::log(p) + (n - k) * std::log(1 - p));
  double w = 0, fa = 0, fb = 0;
  for (int k = 0; k <= n; ++k) {
    fa += pmf_pi[static_cast<size_t>(k)];
    fb += pmf_b[static_cast<size_t>(k)];
    w += std::abs(fa - fb);
  }
  return w;
}

// W1 of the naive two-point mixture of the periods whose rates 1 - 1/dp bracket p.
double bracket_w1(double p, int n) {
  int lo = 1;
  while (1 - 1.0 / (lo + 1) <= p) ++lo;
  const double r_lo = 1 - 1.0 / lo, r_hi = 1 - 1.0 / (lo + 1);
  if (r_lo == p) return brute_w1({lo}, {1.0}, n, p);
  const double w = (p - r_lo) / (r_hi - r_lo);
  return brute_w1({lo, lo + 1}, {1 - w, w}, n, p);
}

void check_valid(const RowPatternDistribution& d, double p) {
  REQUIRE(d.periods.size() == d.probs.size());
  REQUIRE(!d.periods.empty());
  for (size_t i = 0; i < d.periods.size(); ++i) {
    CHECK(d.probs[i] > 0);
    if (i > 0) CHECK(d.periods[i] > d.periods[i - 1]);
  }
  CHECK(std::accumulate(d.probs.begin(), d.probs.end(), 0.0) == Approx(1).margin(1e-12));
  CHECK(std::abs(d.drop_rate() - p) <= 1e-9);
}

}  // namespace

TEST_CASE("ARD distribution at p = 0.5 is period 2", "[ard]") {
  const auto& d = row_pattern_distribution(0.5, 300);
  check_valid(d, 0.5);
  double mass2 = 0;
  for (size_t i = 0; i < d.periods.size(); ++i)
    if (d.periods[i] == 2) mass2 = d.probs[i];
  CHECK(mass2 >= 0.99);
  CHECK(d.p == 0.5);
  CHECK(d.units == 300);
}

TEST_CASE("ARD distribution matches p exactly and beats the bracketing mixture", "[ard]") {
  for (double p : {0.3, 0.7})
    for (int n : {100, 300, 1000}) {
      CAPTURE(p, n);
      const auto& d = row_pattern_distribution(p, n);
      check_valid(d, p);
      CHECK(d.wasserstein == Approx(brute_w1(d.periods, d.probs, n, p)).margin(1e-6));
      CHECK(d.wasserstein <= bracket_w1(p, n) + 1e-9);
    }
  // A rate between two pattern rates near the top, and a non-dividing N.
  const auto& d = row_pattern_distribution(0.91, 97, 16);
  check_valid(d, 0.91);
  CHECK(d.wasserstein <= bracket_w1(0.91, 97) + 1e-9);
}

TEST_CASE("ARD distribution edge cases and infeasible rates", "[ard]") {
  const auto& zero = row_pattern_distribution(0.0, 64);
  CHECK(zero.periods == std::vector<int>{1});
  CHECK(zero.probs == std::vector<double>{1.0});
  CHECK(zero.drop_rate() == 0);

  const auto& top = row_pattern_distribution(1 - 1.0 / 16, 64, 16);  // largest reachable rate
  CHECK(top.periods == std::vector<int>{16});

  CHECK_THROWS_WITH(row_pattern_distribution(0.97, 100, 16), Catch::Contains("0.9375"));
  try {
    row_pattern_distribution(0.97, 100, 16);
  } catch (const Error& e) {
    CHECK_THAT(e.hint(), Catch::Contains("max_period >= 34"));
  }
  CHECK_THROWS_AS(row_pattern_distribution(-0.1, 100), Error);
  CHECK_THROWS_AS(row_pattern_distribution(std::nan(""), 100), Error);
  CHECK_THROWS_AS(row_pattern_distribution(1.0, 100), Error);
  CHECK_THROWS_AS(row_pattern_distribution(0.3, 0), Error);
  CHECK_THROWS_AS(row_pattern_distribution(0.3, 100, 0), Error);
}

TEST_CASE("row_pattern_kept", "[ard]") {
  CHECK(row_pattern_kept(10, 3, 1) == std::vector<int>{2, 5, 8});
  CHECK(row_pattern_kept(10, 3, 0) == std::vector<int>{0, 3, 6, 9});
  std::vector<int> all(7);
  std::iota(all.begin(), all.end(), 0);
  CHECK(row_pattern_kept(7, 1, 0) == all);
  for (int period : {1, 2, 3, 5, 8, 16}) {
    std::vector<int> kept_by(37, 0);
    for (int o = 0; o < period; ++o)
      for (int i : row_pattern_kept(37, period, o)) ++kept_by[static_cast<size_t>(i)];
    for (int k : kept_by) CHECK(k == 1);
  }
  CHECK_THROWS_AS(row_pattern_kept(10, 0, 0), Error);
  CHECK_THROWS_AS(row_pattern_kept(10, 3, 3), Error);
}

TEST_CASE("ARD sample_period is the inverse CDF", "[ard]") {
  const auto& d = row_pattern_distribution(0.3, 300);
  const int samples = 200000;
  std::vector<double> freq(d.periods.size(), 0.0);
  int unknown = 0;
  for (int s = 0; s < samples; ++s) {
    const int period = d.sample_period((s + 0.5) / samples);
    const auto it = std::find(d.periods.begin(), d.periods.end(), period);
    if (it == d.periods.end()) ++unknown;
    else freq[static_cast<size_t>(it - d.periods.begin())] += 1.0 / samples;
  }
  CHECK(unknown == 0);
  for (size_t i = 0; i < freq.size(); ++i) CHECK(std::abs(freq[i] - d.probs[i]) <= 0.005);
  CHECK(d.sample_period(0.0) == d.periods.front());
  CHECK(d.sample_period(std::nextafter(1.0, 0.0)) == d.periods.back());
}

TEST_CASE("ARD Monte-Carlo per-unit drop rate", "[ard]") {
  const double p = 0.3;
  const int n = 100, draws = 20000;
  const auto& d = row_pattern_distribution(p, n);
  std::mt19937_64 rng(12345);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<double> unit_drops(n, 0.0);
  for (int t = 0; t < draws; ++t) {
    const int period = d.sample_period(uniform(rng));
    const int offset = std::uniform_int_distribution<int>(0, period - 1)(rng);
    std::vector<char> kept(n, 0);
    for (int i : row_pattern_kept(n, period, offset)) kept[static_cast<size_t>(i)] = 1;
    for (int i = 0; i < n; ++i) unit_drops[static_cast<size_t>(i)] += !kept[static_cast<size_t>(i)];
  }
  // Each unit's drop indicator is an independent Bernoulli(p) per draw.
  const double unit_se = std::sqrt(p * (1 - p) / draws);
  for (double drops : unit_drops) CHECK(std::abs(drops / draws - p) <= 4 * unit_se);
  // The mean over units is the mean over draws of the dropped fraction X_t = dropped / n, which is
  // not Bernoulli-like (units of one draw are strongly correlated): its exact variance under the
  // distribution is E[X^2] - p^2, so the mean's standard error is sqrt(var / draws).
  double ex2 = 0;
  for (size_t i = 0; i < d.periods.size(); ++i)
    for (int o = 0; o < d.periods[i]; ++o) {
      const double x = static_cast<double>(dropped(n, d.periods[i], o)) / n;
      ex2 += d.probs[i] / d.periods[i] * x * x;
    }
  const double mean_se = std::sqrt((ex2 - p * p) / draws);
  const double mean = std::accumulate(unit_drops.begin(), unit_drops.end(), 0.0) / (static_cast<double>(n) * draws);
  CHECK(std::abs(mean - p) <= 4 * mean_se);
}

TEST_CASE("ARD distribution cache and determinism", "[ard]") {
  const auto& a = row_pattern_distribution(0.45, 256, 16);
  const auto& b = row_pattern_distribution(0.45, 256, 16);
  CHECK(&a == &b);
  CHECK(&row_pattern_distribution(0.45, 256, 8) != &a);
  CHECK(&row_pattern_distribution(0.45, 257, 16) != &a);

  for (double p : {0.3, 0.45, 0.7, 0.85}) {
    CAPTURE(p);
    const auto fresh1 = search_row_pattern_distribution(p, 300, 16);
    const auto fresh2 = search_row_pattern_distribution(p, 300, 16);
    const auto& cached = row_pattern_distribution(p, 300, 16);
    for (const auto* other : {&fresh2, &cached}) {
      CHECK(fresh1.periods == other->periods);
      CHECK(fresh1.probs == other->probs);
      CHECK(fresh1.wasserstein == other->wasserstein);
    }
  }
}

TEST_CASE("ARD search is fast", "[ard]") {
  for (double p : {0.1, 0.5, 0.77, 0.96}) {
    CAPTURE(p);
    const auto start = std::chrono::steady_clock::now();
    const auto d = search_row_pattern_distribution(p, 4096, 32);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    check_valid(d, p);
    CHECK(ms < 50);
  }
}

TEST_CASE("pair_weight trades count matching for decorrelated periods, rate stays exact", "[ard]") {
  for (double p : {0.3, 0.5, 0.7}) {
    const RowPatternDistribution base = search_row_pattern_distribution(p, 300, 16, 0.0);
    const RowPatternDistribution mixed = search_row_pattern_distribution(p, 300, 16, 5.0);
    INFO("p " << p << ": pair term " << base.pair_term << " -> " << mixed.pair_term << ", W1 " << base.wasserstein
              << " -> " << mixed.wasserstein << ", periods " << base.periods.size() << " -> " << mixed.periods.size());
    CHECK(mixed.drop_rate() == Approx(p).margin(1e-9));
    CHECK(mixed.pair_term < base.pair_term);
    CHECK(mixed.periods.size() > base.periods.size());
  }
}

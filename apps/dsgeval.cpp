// dsgeval: evaluates a trained (dense, pruned or compressed) model on its test set.
//   dsgeval MODEL.dsgmodel|MODEL.dsgz [--data DIR] [--json FILE] [--threads T] [--batches N] [--sram-kib K]
//           [--sensitivity [--granularity element|filter] [--levels 0.1,0.2,...] [--csv FILE]
//                          [--svg FILE] [--max-loss 0.5]]
// Prints Markdown tables on stdout: accuracy (top-1, top-5, mean loss, images/s), per-class
// accuracy, confusion matrix, per-layer parameters / non-zeros / bytes / MACs / execution mode.
// A .dsgz is evaluated twice: decoded (dense weights) and with the EIE-style kernel running on the
// compressed form; both accuracies and times are shown. A cost section (MACs, memory references,
// EIE-table energy, dense vs compressed; a .dsgmodel is costed as dsgcompress would store it)
// follows. --json writes the same content as JSON. --sensitivity prunes each Convolution / InnerProduct
// layer alone at each level, writes a CSV and an SVG plot, and prints suggested sparsity_param
// lines; progress goes to stderr. Exit status 0 on success, 1 on any error (one line
// "dsgeval: error: ..."), CLI11's codes for command-line misuse.
#include "apps/fast_blas.hpp"
#include "apps/tool_main.hpp"
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "apps/dsgeval_lib.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/model_file.hpp"
#include "runtime/parallel.hpp"

namespace fs = std::filesystem;
using namespace dsg;

namespace {

struct Options {
  std::string model, data_dir, json, csv, svg;
  int threads = 0;
  int64_t batches = 0;
  bool sensitivity = false;
  std::string granularity = "element";
  std::vector<double> levels{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98};
  double max_loss = 0.5;
  int64_t sram_kib = 128;
};

// Fails early (before a long sensitivity run) when an output file's directory is missing.
void check_output(const std::string& path, const char* option) {
  fs::path dir = fs::path(path).parent_path();
  if (!path.empty() && !dir.empty() && !fs::is_directory(dir))
    throw Error(std::string(option) + ": cannot write '" + path + "': directory '" + dir.string() + "' does not exist");
}

int run(Options opt) {
  set_log_quiet(true);  // data-layer descriptions are repeated in the report header
  for (double l : opt.levels)
    if (!(l >= 0 && l < 1)) throw Error(strfmt("--levels: %g is not a sparsity in [0, 1)", l));
  std::sort(opt.levels.begin(), opt.levels.end());
  opt.levels.erase(std::unique(opt.levels.begin(), opt.levels.end()), opt.levels.end());
  if (!(opt.max_loss >= 0)) throw Error(strfmt("--max-loss must be >= 0 percentage points, got %g", opt.max_loss));
  if (opt.sensitivity) {
    fs::path dir = fs::path(opt.model).parent_path();
    if (opt.csv.empty()) opt.csv = (dir / "sensitivity.csv").string();
    if (opt.svg.empty()) opt.svg = (dir / "sensitivity.svg").string();
  }
  check_output(opt.json, "--json");
  check_output(opt.csv, "--csv");
  check_output(opt.svg, "--svg");
  set_num_threads(opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency())));

  eval::Evaluator ev(opt.model, opt.data_dir);
  eval::EvalResult r = ev.evaluate(opt.batches);
  if (opt.batches > r.batches)
    std::fprintf(stderr, "dsgeval: --batches %lld exceeds the test set; evaluated all %lld batches\n",
                 (long long)opt.batches, (long long)r.batches);
  eval::EvalResult compressed;
  eval::CompressedSection extra;
  if (ev.is_compressed()) {
    compressed = ev.evaluate_compressed(opt.batches);
    extra.compressed = &compressed;
  }
  const auto layers = ev.layer_stats();
  std::vector<compress::LayerCost> cost;
  try {
    cost = ev.cost(opt.sram_kib * 1024);
    extra.cost = &cost;
  } catch (const Error& e) {  // a .dsgmodel that dsgcompress would refuse: report without costs
    std::fprintf(stderr, "dsgeval: warning: no cost section: %s\n", e.what());
  }
  extra.sram_bytes = opt.sram_kib * 1024;
  std::fputs(eval::markdown_report(opt.model, r, layers, extra).c_str(), stdout);
  std::fflush(stdout);

  eval::SensitivityResult sens;
  if (opt.sensitivity) {
    const auto g = opt.granularity == "filter" ? eval::Granularity::Filter : eval::Granularity::Element;
    sens = ev.sensitivity(g, opt.levels, opt.max_loss, opt.batches, [](const eval::SensitivityProgress& p) {
      std::fprintf(stderr, "dsgeval: sensitivity layer %d/%d %s, sparsity %g: top-1 %.4f\n", p.layer_index,
                   p.layer_count, p.layer->c_str(), p.level, p.accuracy);
    });
    write_file_atomically(opt.csv, eval::sensitivity_csv(sens));
    write_file_atomically(opt.svg, eval::sensitivity_svg(sens, "Per-layer pruning sensitivity: " +
                                                                    fs::path(opt.model).filename().string()));
    std::string out = strfmt("\n## Sensitivity (%s granularity, top-1 accuracy; dense %.6f)\n\n| layer |",
                             eval::granularity_name(g), sens.base_accuracy);
    for (double l : sens.levels) out += strfmt(" %g |", l);
    out += "\n|---|";
    for (size_t j = 0; j < sens.levels.size(); ++j) out += "---|";
    out += "\n";
    for (size_t i = 0; i < sens.layers.size(); ++i) {
      out += "| " + sens.layers[i] + " |";
      for (double a : sens.accuracy[i]) out += strfmt(" %.4f |", a);
      out += "\n";
    }
    out += "\nCSV: " + opt.csv + "\nPlot: " + opt.svg + "\n";
    out += strfmt("\n## Suggested sparsity (largest tested level with a top-1 drop <= %g points)\n\n```prototxt\n",
                  opt.max_loss);
    for (const auto& line : eval::suggestion_lines(sens)) out += line + "\n";
    out += "```\n";
    std::fputs(out.c_str(), stdout);
  }
  if (!opt.json.empty())
    write_file_atomically(opt.json, eval::json_report(opt.model, r, layers, opt.sensitivity ? &sens : nullptr, extra));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  dsg::apps::select_fast_blas_kernels(argv);
  CLI::App app{"dsgeval: evaluate a .dsgmodel or .dsgz on its test set; per-layer sparsity, bytes, MACs and energy; "
               "pruning sensitivity"};
  Options opt;
  app.add_option("model", opt.model, "model file (.dsgmodel snapshot or .dsgz compressed model)")->required();
  app.add_option("--sram-kib", opt.sram_kib, "cost model: on-chip SRAM per layer's weights, KiB (default 128)")
      ->check(CLI::PositiveNumber);
  app.add_option("--data", opt.data_dir, "directory holding the data files named in the model's net");
  app.add_option("--json", opt.json, "also write the report as JSON to FILE");
  app.add_option("--threads", opt.threads, "CPU threads (default: all cores)")->check(CLI::NonNegativeNumber);
  app.add_option("--batches", opt.batches, "evaluate only the first N test batches (default: the whole test set)")
      ->check(CLI::PositiveNumber);
  auto* sens = app.add_flag("--sensitivity", opt.sensitivity, "prune each layer alone at each level and evaluate");
  app.add_option("--granularity", opt.granularity, "sensitivity pruning unit: element or filter")
      ->check(CLI::IsMember({"element", "filter"}))
      ->needs(sens);
  app.add_option("--levels", opt.levels, "sparsities to test (default 0.1,...,0.9,0.95,0.98)")->delimiter(',')->needs(sens);
  app.add_option("--csv", opt.csv, "sensitivity CSV (default: sensitivity.csv next to the model)")->needs(sens);
  app.add_option("--svg", opt.svg, "sensitivity plot (default: sensitivity.svg next to the model)")->needs(sens);
  app.add_option("--max-loss", opt.max_loss, "accepted top-1 drop in percentage points for suggestions (default 0.5)")
      ->needs(sens);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return dsg::apps::run_reporting_errors("dsgeval", [&] { return run(opt); });
}

// dsgcompress: model compression front end.
//   dsgcompress --thin MODEL.dsgmodel -o OUT [--data DIR]
// --thin removes the output channels pruned by FILTER policies (and the matching inputs of the
// layers that consume them; sparsity/thin.hpp) and writes OUT.prototxt, a plain solver config
// (no sparsity_param, no schedule, reduced num_output), and OUT.dsgmodel, the net, solver and
// thinned weights (no solver state or masks), which a plain Net loads with no sparsity runtime.
// It prints a table of outputs, parameters and MACs per image before -> after for every
// Convolution / InnerProduct layer. The default mode (a .dsgz archive) is not implemented yet and
// is refused explicitly.
// Exit status: 0 on success, 1 on any error (one line "dsgcompress: error: ..."), 2 on bad usage.
#include "apps/fast_blas.hpp"
#include "apps/tool_main.hpp"
#include <google/protobuf/text_format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "runtime/error.hpp"
#include "runtime/model_file.hpp"
#include "runtime/parallel.hpp"
#include "sparsity/thin.hpp"

namespace fs = std::filesystem;
using namespace dsg;

namespace {

struct Options {
  std::string model, output, data_dir;
  bool thin = false;
  int threads = 1;
};

// OUT without a trailing .prototxt / .dsgmodel.
std::string output_stem(std::string out) {
  for (const char* ext : {".prototxt", ".dsgmodel"}) {
    const std::string e = ext;
    if (out.size() > e.size() && out.compare(out.size() - e.size(), e.size(), e) == 0) out.resize(out.size() - e.size());
  }
  return out;
}

int run_thin(const Options& opt) {
  set_num_threads(opt.threads);
  const ModelFile model = read_model_file(opt.model);
  ThinnedModel thinned = thin_model(model, opt.model, opt.data_dir);
  const std::string stem = output_stem(opt.output);
  // Snapshots of a run on the thinned config are named after it.
  thinned.solver.set_snapshot_prefix(fs::path(stem).filename().string());
  thinned.model.mutable_solver()->set_snapshot_prefix(thinned.solver.snapshot_prefix());
  const fs::path dir = fs::path(stem).parent_path();
  if (!dir.empty()) fs::create_directories(dir);
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(thinned.solver, &text))
    throw Error("cannot format the thinned solver configuration");
  text = "# Thinned by `dsgcompress --thin` from " + opt.model +
         ": FILTER-pruned output channels and the inputs that consumed them are removed.\n"
         "# Weights: " + fs::path(stem + ".dsgmodel").filename().string() +
         " (a plain model: no sparsity_param, no schedule).\n" + text;
  write_file_atomically(stem + ".prototxt", text);
  write_model_file(stem + ".dsgmodel", thinned.model);
  std::printf("dsgcompress --thin %s\n", opt.model.c_str());
  for (const auto& line : thin_report(thinned)) std::printf("%s\n", line.c_str());
  std::printf("wrote %s.prototxt and %s.dsgmodel\n", stem.c_str(), stem.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  dsg::apps::select_fast_blas_kernels(argv);
  CLI::App app{"dsgcompress: compress a trained DSG model"};
  Options opt;
  app.add_option("model", opt.model, "a .dsgmodel snapshot written by dsgtrain")->required();
  app.add_flag("--thin", opt.thin, "remove FILTER-pruned channels: write a smaller plain model");
  app.add_option("-o,--output", opt.output, "output path without extension (OUT.prototxt, OUT.dsgmodel)");
  app.add_option("--data", opt.data_dir, "directory holding the data files named in the model's net");
  app.add_option("--threads", opt.threads, "CPU threads (default 1)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!opt.thin) {
    std::fprintf(stderr, "dsgcompress: error: only --thin is implemented in this version\n");
    return 2;
  }
  if (opt.output.empty()) {
    std::fprintf(stderr, "dsgcompress: error: --thin needs -o OUT (the output path without extension)\n");
    return 2;
  }
  return dsg::apps::run_reporting_errors("dsgcompress", [&] { return run_thin(opt); });
}

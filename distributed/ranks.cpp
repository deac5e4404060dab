#include "distributed/ranks.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "runtime/error.hpp"

#ifdef DSG_WITH_MPI
#include "distributed/mpi_communicator.hpp"
#endif

namespace dsg {

namespace {

int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  return (end && *end == '\0' && x > 0 && x < (1 << 24)) ? int(x) : 0;
}

}  // namespace

int launched_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"})
    if (int n = env_int(name)) return n;
  return 1;
}

int launched_local_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMI_LOCAL_SIZE"})
    if (int n = env_int(name)) return n;
  return 1;
}

int launched_local_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK"}) {
    const char* v = std::getenv(name);
    if (v && *v) return std::max(0, std::atoi(v));
  }
  return 0;
}

bool mpi_built() {
#ifdef DSG_WITH_MPI
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> connect_ranks(double timeout_seconds, std::function<void(const std::string&)> stuck) {
  const int ranks = launched_ranks();
  if (ranks <= 1) return std::make_unique<LocalCommunicator>();
  if (!(timeout_seconds > 0)) throw Error(strfmt("the communication timeout must be positive (got %g s)", timeout_seconds));
#ifdef DSG_WITH_MPI
  return std::make_unique<MpiCommunicator>(timeout_seconds, std::move(stuck));
#else
  (void)stuck;
  throw Error(strfmt("started as one of %d processes (mpirun), but this build of DSG has no MPI: every process would "
                     "train alone",
                     ranks),
              "install openmpi-bin and libopenmpi-dev (scripts/setup.sh does) and rebuild");
#endif
}

}  // namespace dsg

// How a tool finds out whether it runs as one of several processes (started by mpirun) and
// connects them: the Communicator factory for apps.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "runtime/communicator.hpp"

namespace dsg {

// The ranks this process was started with by mpirun (Open MPI's OMPI_COMM_WORLD_SIZE, or PMI_SIZE
// / PMIX's), 1 when started directly.
int launched_ranks();
// Processes on this machine (for the default thread count), 1 when started directly.
int launched_local_ranks();
// This process's index among the ranks on its machine (OMPI_COMM_WORLD_LOCAL_RANK), 0 when started directly.
int launched_local_rank();
// Whether this build has MPI.
bool mpi_built();
// Connects the ranks: an MpiCommunicator under mpirun, a LocalCommunicator otherwise. Throws a
// clear dsg::Error when several ranks were launched but this build has no MPI. `stuck` is called
// (from a watchdog thread) when a collective waited longer than `timeout_seconds`; the tool
// reports the message and ends the process (distributed/mpi_communicator.hpp).
std::unique_ptr<Communicator> connect_ranks(double timeout_seconds,
                                            std::function<void(const std::string&)> stuck);

}  // namespace dsg

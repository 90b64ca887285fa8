// Open MPI's header, found through pkg-config (ompi-c). Only CMPIShim includes it: MPI's handles
// (MPI_COMM_WORLD, MPI_FLOAT, ...) are macros over Open MPI's globals, which Swift cannot import.
#include <mpi.h>

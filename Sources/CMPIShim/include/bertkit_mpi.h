#ifndef BERTKIT_MPI_H
#define BERTKIT_MPI_H
#include <stddef.h>
#include <stdint.h>

// A small C face of MPI for BertKit's data-parallel training: the world communicator only, sums of
// float/double/int64 buffers, a barrier and an abort. Every call returns 0 on success or an MPI
// error code, whose text bertkit_mpi_error_string gives.

/// MPI_Init_thread (MPI_THREAD_FUNNELED: only the calling thread talks to MPI); errors return
/// instead of aborting. Writes this process's rank and the world size.
int bertkit_mpi_init(int *rank, int *size);
/// Whether MPI_Init has run and MPI_Finalize has not.
int bertkit_mpi_is_initialized(void);
/// In-place sum across all ranks of `count` floats (every rank ends with the same sum).
int bertkit_mpi_allreduce_sum_float(float *buffer, int64_t count);
/// In-place sum across all ranks of `count` doubles.
int bertkit_mpi_allreduce_sum_double(double *buffer, int64_t count);
/// In-place minimum and maximum across all ranks of `count` unsigned 64-bit integers.
int bertkit_mpi_allreduce_min_uint64(uint64_t *buffer, int64_t count);
int bertkit_mpi_allreduce_max_uint64(uint64_t *buffer, int64_t count);
/// Starts an in-place float sum without waiting for it (MPI_Iallreduce); `request` receives a handle
/// for bertkit_mpi_wait.
int bertkit_mpi_iallreduce_sum_float(float *buffer, int64_t count, void **request);
/// Waits for a request from bertkit_mpi_iallreduce_sum_float and frees it.
int bertkit_mpi_wait(void *request);
/// Lets MPI make progress on a request and tells whether it is complete (*done = 1: it is, and has
/// been freed; do not wait for it again).
int bertkit_mpi_test(void *request, int *done);
/// Blocks until every rank has called it.
int bertkit_mpi_barrier(void);
/// Ends every rank of the job with `code` (MPI_Abort on the world communicator).
void bertkit_mpi_abort(int code);
/// MPI_Finalize.
int bertkit_mpi_finalize(void);
/// The text of an MPI error code, into `buffer` (NUL-terminated).
void bertkit_mpi_error_string(int code, char *buffer, size_t capacity);
/// The library's version line (MPI_Get_library_version), into `buffer`.
void bertkit_mpi_library_version(char *buffer, size_t capacity);

#endif

#include "bertkit_mpi.h"
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

// MPI counts are int: large buffers go in chunks of at most 2^30 elements.
#define BERTKIT_MPI_CHUNK ((int64_t)1 << 30)

int bertkit_mpi_init(int *rank, int *size) {
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    rc = MPI_Comm_rank(MPI_COMM_WORLD, rank);
    if (rc != MPI_SUCCESS) return rc;
    return MPI_Comm_size(MPI_COMM_WORLD, size);
}

int bertkit_mpi_is_initialized(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

static int allreduce(void *buffer, int64_t count, MPI_Datatype type, size_t width, MPI_Op op) {
    char *p = (char *)buffer;
    for (int64_t done = 0; done < count; done += BERTKIT_MPI_CHUNK) {
        int64_t n = count - done < BERTKIT_MPI_CHUNK ? count - done : BERTKIT_MPI_CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, p + done * (int64_t)width, (int)n, type, op, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
}

int bertkit_mpi_allreduce_sum_float(float *buffer, int64_t count) {
    return allreduce(buffer, count, MPI_FLOAT, sizeof(float), MPI_SUM);
}

int bertkit_mpi_allreduce_sum_double(double *buffer, int64_t count) {
    return allreduce(buffer, count, MPI_DOUBLE, sizeof(double), MPI_SUM);
}

int bertkit_mpi_allreduce_min_uint64(uint64_t *buffer, int64_t count) {
    return allreduce(buffer, count, MPI_UINT64_T, sizeof(uint64_t), MPI_MIN);
}

int bertkit_mpi_allreduce_max_uint64(uint64_t *buffer, int64_t count) {
    return allreduce(buffer, count, MPI_UINT64_T, sizeof(uint64_t), MPI_MAX);
}

int bertkit_mpi_iallreduce_sum_float(float *buffer, int64_t count, void **request) {
    if (count > BERTKIT_MPI_CHUNK) return MPI_ERR_COUNT;
    MPI_Request *r = malloc(sizeof(MPI_Request));
    if (!r) return MPI_ERR_NO_MEM;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buffer, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, r);
    if (rc != MPI_SUCCESS) { free(r); return rc; }
    *request = r;
    return MPI_SUCCESS;
}

int bertkit_mpi_wait(void *request) {
    MPI_Request *r = (MPI_Request *)request;
    int rc = MPI_Wait(r, MPI_STATUS_IGNORE);
    free(r);
    return rc;
}

int bertkit_mpi_test(void *request, int *done) {
    MPI_Request *r = (MPI_Request *)request;
    int rc = MPI_Test(r, done, MPI_STATUS_IGNORE);
    if (rc == MPI_SUCCESS && *done) free(r);
    return rc;
}

int bertkit_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

void bertkit_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

int bertkit_mpi_finalize(void) { return MPI_Finalize(); }

void bertkit_mpi_error_string(int code, char *buffer, size_t capacity) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
    text[length < MPI_MAX_ERROR_STRING ? length : MPI_MAX_ERROR_STRING - 1] = 0;
    if (capacity) { strncpy(buffer, length ? text : "unknown MPI error", capacity - 1); buffer[capacity - 1] = 0; }
}

void bertkit_mpi_library_version(char *buffer, size_t capacity) {
    char text[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    MPI_Get_library_version(text, &length);
    text[length < MPI_MAX_LIBRARY_VERSION_STRING ? length : MPI_MAX_LIBRARY_VERSION_STRING - 1] = 0;
    if (capacity) { strncpy(buffer, text, capacity - 1); buffer[capacity - 1] = 0; }
}

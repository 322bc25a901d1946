// MPI (Open MPI) for Swift. MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are macros
// over implementation globals that Swift cannot import, so each call Distributed makes is one
// static inline function here, on MPI_COMM_WORLD. Every call returns MPI's error code (MPI_SUCCESS
// = 0); with MPI's default error handler a failed call ends the whole job before it returns.
#ifndef DDPM_CMPI_SHIM_H
#define DDPM_CMPI_SHIM_H
#include <mpi.h>
#include <stdint.h>

static inline int ddpm_mpi_initialized(void) { int f = 0; MPI_Initialized(&f); return f; }
static inline int ddpm_mpi_finalized(void) { int f = 0; MPI_Finalized(&f); return f; }
// Only the main thread calls MPI (MPI_THREAD_FUNNELED); our worker threads never do.
static inline int ddpm_mpi_init(void) {
    int provided = 0;
    return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
}
static inline int ddpm_mpi_finalize(void) { return MPI_Finalize(); }
static inline int ddpm_mpi_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static inline int ddpm_mpi_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
static inline int ddpm_mpi_size(void) { int s = 1; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }
static inline int ddpm_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

// In place: every rank's buffer becomes the element-wise sum (or max) over ranks.
static inline int ddpm_mpi_allreduce_sum_float(float *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static inline int ddpm_mpi_allreduce_max_int64(int64_t *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
}

static inline int ddpm_mpi_bcast_bytes(void *buffer, int count, int root) {
    return MPI_Bcast(buffer, count, MPI_BYTE, root, MPI_COMM_WORLD);
}
static inline int ddpm_mpi_bcast_float(float *buffer, int count, int root) {
    return MPI_Bcast(buffer, count, MPI_FLOAT, root, MPI_COMM_WORLD);
}

// `count` int64 values from every rank into `out` (size * count values, rank order) on root.
static inline int ddpm_mpi_gather_int64(const int64_t *values, int count, int64_t *out, int root) {
    return MPI_Gather(values, count, MPI_INT64_T, out, count, MPI_INT64_T, root, MPI_COMM_WORLD);
}
// Variable-sized float pieces into `out` on root, rank r's at offsets[r] (counts per rank).
static inline int ddpm_mpi_gatherv_float(const float *values, int count, float *out, const int *counts,
                                         const int *offsets, int root) {
    return MPI_Gatherv(values, count, MPI_FLOAT, out, counts, offsets, MPI_FLOAT, root, MPI_COMM_WORLD);
}
#endif

/* Thread registry: threads are FreeRTOS tasks created with a static TCB and a stack taken from a
 * heap (pvPortMalloc here; the GC heap in MicroPython). A finished thread parks itself; the next
 * mpfr_thread_create() reaps every parked thread and frees its memory. */
#ifndef MPFR_THREAD_H
#define MPFR_THREAD_H

#include <stdint.h>

#define MPFR_THREAD_ANY_CORE (-1)

typedef void (*mpfr_thread_fn_t)(void *arg);

/* Creates a thread (reaping finished ones first). core is MPFR_THREAD_ANY_CORE or a core number
 * (ignored without SMP affinity). Returns the new thread id (> 0), or 0 when out of memory. */
uint32_t mpfr_thread_create(const char *name, mpfr_thread_fn_t fn, void *arg, uint32_t stack_bytes,
    unsigned priority, int core);
/* Frees every finished thread now; returns how many. */
unsigned mpfr_thread_reap(void);
/* Thread id of a task, 0 if the task is no registry thread. */
uint32_t mpfr_thread_id_of(void *task);
/* Nonzero when a task is a registry thread that has finished and waits for the reaper. */
int mpfr_thread_finished(void *task);

typedef struct {
    uint16_t live;     /* created, not finished */
    uint16_t finished; /* finished, waiting for the reaper */
    uint32_t created;
    uint32_t reaped;
    uint32_t failed;   /* create calls that ran out of memory */
} mpfr_thread_counts_t;

void mpfr_thread_counts(mpfr_thread_counts_t *out);

#endif /* MPFR_THREAD_H */

/* mpfr's FreeRTOS threading backend for MicroPython: the mp_thread_* contract on FreeRTOS (SMP or
 * not). Python threads are FreeRTOS tasks whose TCB and stack come from the GC heap, so the GC
 * scans every thread's stack; a finished thread parks and the next mp_thread_create() reaps it.
 * Each thread's mp_state_thread_t sits in the task's thread-local storage slot 0. */
#ifndef MICROPY_INCLUDED_MPFR_MPTHREADPORT_H
#define MICROPY_INCLUDED_MPFR_MPTHREADPORT_H

#include <stddef.h>

#include "FreeRTOS.h"
#include "task.h"
#include "semphr.h"

// The FreeRTOS thread-local storage slot holding the thread's mp_state_thread_t.
#define MP_FREERTOS_TLS_INDEX (0)

#if configNUM_THREAD_LOCAL_STORAGE_POINTERS <= MP_FREERTOS_TLS_INDEX
#error "the threading backend needs configNUM_THREAD_LOCAL_STORAGE_POINTERS >= 1"
#endif
#if !configSUPPORT_STATIC_ALLOCATION
#error "the threading backend needs configSUPPORT_STATIC_ALLOCATION 1"
#endif

// Priority of Python threads (the main thread runs at the same priority).
#ifndef MP_THREAD_PRIORITY
#define MP_THREAD_PRIORITY (tskIDLE_PRIORITY + 1)
#endif

// Core mask of the Python threads, the main thread included (tskNO_AFFINITY: any core). Only
// used with configUSE_CORE_AFFINITY. With the GIL on, "any core" means core 0 on SMP
// (mpthreadport.c).
#ifndef MP_THREAD_CORE_AFFINITY
#define MP_THREAD_CORE_AFFINITY (tskNO_AFFINITY)
#endif

#ifndef MP_THREAD_DEFAULT_STACK_SIZE
#define MP_THREAD_DEFAULT_STACK_SIZE (4096)
#endif
#ifndef MP_THREAD_MIN_STACK_SIZE
#define MP_THREAD_MIN_STACK_SIZE (2048)
#endif

// A lock that one thread may take and another release (Python's Lock): a binary semaphore.
typedef struct _mp_thread_mutex_t {
    SemaphoreHandle_t handle;
    StaticSemaphore_t buffer;
} mp_thread_mutex_t;

// A lock the owning thread may take again: the GC's lock with the GIL off, taken around every
// allocation. It spins (then yields) instead of blocking: a kernel mutex makes every contended
// allocation a block and a wake-up, and with several allocating threads on two cores both cores
// then spend their time switching tasks under the kernel's lock (mpthreadport.c).
typedef struct _mp_thread_recursive_mutex_t {
    TaskHandle_t volatile owner;
    unsigned depth;
} mp_thread_recursive_mutex_t;

// Called by the port from the main task, after gc_init() and before mp_init(); stack is the main
// task's stack (not in the GC heap), scanned when another thread collects.
void mp_thread_init(void *stack, size_t stack_bytes);
// Called on soft reset: deletes every thread except the caller.
void mp_thread_deinit(void);
// The port's gc_collect() brackets the whole collection (gc_collect_start() to gc_collect_end())
// with these two. With the GIL off the first takes the GC lock and suspends every other Python
// thread, so none moves a pointer while the heap is marked; with the GIL on the others wait for
// the GIL anyway. Both hold the thread list's lock in between.
void mp_thread_gc_stop_others(void);
void mp_thread_gc_resume_others(void);
// Called from the port's gc_collect(), between the two above: marks every thread (TCB, stack,
// arguments).
void mp_thread_gc_others(void);
// Frees the memory of finished threads now; returns how many.
unsigned mp_thread_reap(void);

typedef struct _mp_thread_counts_t {
    unsigned live;      // created, not finished
    unsigned finished;  // finished, waiting for the reaper
    unsigned created;
    unsigned reaped;
} mp_thread_counts_t;

void mp_thread_counts(mp_thread_counts_t *out);

#endif // MICROPY_INCLUDED_MPFR_MPTHREADPORT_H

/* The service task: callers put a callback into a numbered slot, from task or interrupt context,
 * and one high-priority task dispatches it. Dispatch can be suspended (nesting). Counters per
 * slot and schedule-to-dispatch latency feed the telemetry agent. */
#ifndef MPFR_SERVICE_H
#define MPFR_SERVICE_H

#include <stdint.h>

#include "mpfr_proto.h"

#ifndef MPFR_SERVICE_SLOTS
#define MPFR_SERVICE_SLOTS 8
#endif

typedef void (*mpfr_service_fn_t)(void *arg);

/* Creates the service task (static TCB and stack). Returns 0 on success. */
int mpfr_service_init(unsigned priority);
/* Marks slot pending with fn(arg) and wakes the service task. Task or ISR context. A slot that is
 * already pending is not queued twice: the callback runs once. Returns 0, or -1 for a bad slot. */
int mpfr_service_schedule(unsigned slot, mpfr_service_fn_t fn, void *arg);
/* Stops dispatching until the matching resume; nests. Called from a task, it also waits for a
 * callback that is already running. */
void mpfr_service_suspend(void);
void mpfr_service_resume(void);
/* Copies the counters (any context). */
/* Fills out's counters and up to out->slots_cap entries of out->slots (the slots in use). */
void mpfr_service_stats(mpfr_service_stats_t *out);
/* The service task's handle, NULL before init. */
void *mpfr_service_task(void);

#endif /* MPFR_SERVICE_H */

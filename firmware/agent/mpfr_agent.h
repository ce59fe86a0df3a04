/* The mpfr telemetry agent: samples FreeRTOS (tasks, run time, stacks, heap), the service task and
 * the thread registry, and writes protocol frames into RTT up channel 1. See docs/protocol.md. */
#ifndef MPFR_AGENT_H
#define MPFR_AGENT_H

#include <stdint.h>

#include "mpfr_proto.h"

/* Where the agent gets what FreeRTOS does not know. Every member may be NULL. */
typedef struct {
    /* Python thread id of a task (0 when it is none). */
    uint32_t (*py_thread_id)(void *task);
    /* GC heap total and free bytes. */
    void (*gc_heap)(uint32_t *total, uint32_t *free_bytes);
    /* Service-task counters. */
    void (*service)(mpfr_service_stats_t *out);
    /* Threads alive and finished-not-reaped. */
    void (*threads)(uint16_t *live, uint16_t *finished);
    /* Nonzero when a task is a thread that has finished and waits for the reaper: its entry
     * then says MPFR_TASK_FINISHED instead of the parked task's FreeRTOS state. */
    int (*thread_finished)(void *task);
} mpfr_agent_sources_t;

typedef struct {
    const char *board;
    const char *firmware;
    uint32_t fingerprint;
    uint8_t gil; /* MPFR_GIL_OFF, _ON or _UNKNOWN */
} mpfr_agent_identity_t;

/* Sets up RTT. Call once, early (before the scheduler is fine). The agent keeps both pointers
 * (either may be NULL): they must stay valid, e.g. `static const`. */
void mpfr_agent_init(const mpfr_agent_identity_t *id, const mpfr_agent_sources_t *src);
/* Starts sampling at hz (0 = only hello frames). Returns 0 on success. With MPFR_AGENT_OWN_TASK 1
 * (the default) this creates the agent's task `mpfr`; with 0 the agent has no task and the
 * firmware calls mpfr_agent_poll() instead. */
int mpfr_agent_start(unsigned hz);
/* MPFR_AGENT_OWN_TASK 0 only: one round of the agent (commands, a sample when due, events, the
 * periodic hello). Call it from one task context, at least at the sampling rate, e.g. from a
 * service-task slot fed by a timer; it never blocks. Does nothing before mpfr_agent_start(). */
void mpfr_agent_poll(void);
/* Changes the sampling rate (also: `rate <hz>` on RTT down channel 0). At most 100 Hz. */
void mpfr_agent_set_rate(unsigned hz);
unsigned mpfr_agent_rate(void);
/* Queues an event; any context. Text is cut to MPFR_AGENT_EVENT_TEXT bytes. */
void mpfr_agent_event(uint8_t kind, uint32_t a, uint32_t b, const char *text);
/* For hooks that halt the firmware (assert, stack overflow, a fatal malloc failure): encodes
 * the event straight into RTT up channel 1 and publishes it, so the host sees it although no
 * poll ever runs again. Masks interrupts and leaves them masked; allocates nothing, needs no
 * scheduler. Events queued before it and not yet sent are lost. */
void mpfr_agent_fatal(uint8_t kind, uint32_t a, uint32_t b, const char *text);
/* Writes text to RTT up channel 0 (dropped when full). Any context, any core. */
void mpfr_agent_log(const char *text);

typedef struct {
    uint32_t samples;
    uint32_t frames;
    uint32_t overflows; /* frames and events dropped because a buffer was full */
} mpfr_agent_counts_t;

void mpfr_agent_counts(mpfr_agent_counts_t *out);
/* Run-time counter ticks the agent has spent working (0 without a run-time counter): what a
 * benchmark compares the drop of idle time with. */
uint32_t mpfr_agent_busy_ticks(void);

#endif /* MPFR_AGENT_H */

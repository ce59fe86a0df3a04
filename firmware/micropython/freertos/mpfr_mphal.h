/* HAL pieces of mpfr's FreeRTOS backend for any port: delays and waits that release the GIL,
 * tick counts, atomic sections, and the service task (mpfr_service) in place of PendSV: it runs
 * the soft timers and wakes the main thread for micropython.schedule() callbacks.
 *
 * A port includes this from mphalport.h and mpconfigport.h sets:
 *   #define MICROPY_BEGIN_ATOMIC_SECTION() mp_freertos_atomic_begin()
 *   #define MICROPY_END_ATOMIC_SECTION(s)  mp_freertos_atomic_end(s)
 *   #define MICROPY_PY_PENDSV_ENTER        mp_freertos_service_suspend()
 *   #define MICROPY_PY_PENDSV_EXIT         mp_freertos_service_resume()
 *   #define MICROPY_SCHED_HOOK_SCHEDULED   mp_freertos_sched_hook()
 *   #define MICROPY_INTERNAL_WFE(ms)       mp_freertos_wfe(ms)
 * and calls mp_freertos_tick_hook() from vApplicationTickHook(). */
#ifndef MICROPY_INCLUDED_MPFR_MPHAL_H
#define MICROPY_INCLUDED_MPFR_MPHAL_H

#include <stdint.h>

// Service slots used by the backend; ports and user code may use the others.
#define MP_FREERTOS_SLOT_SOFT_TIMER (0)
#define MP_FREERTOS_SLOT_SCHED (1)

#ifndef MICROPY_FREERTOS_SERVICE_PRIORITY
#define MICROPY_FREERTOS_SERVICE_PRIORITY (3)
#endif

// Starts the service task (once; later calls do nothing). Returns 0 on success.
int mp_freertos_service_init(void);
// Nesting suspend/resume of service dispatch: a suspended service task runs no soft timer.
void mp_freertos_service_suspend(void);
void mp_freertos_service_resume(void);

// Atomic sections usable from tasks and interrupts, on one core or several.
uint32_t mp_freertos_atomic_begin(void);
void mp_freertos_atomic_end(uint32_t state);

// micropython.schedule() (or Ctrl-C) queued something: wake the main thread if it sleeps.
void mp_freertos_sched_hook(void);
// Waits up to timeout_ms (negative: until woken) for an event, without the GIL.
void mp_freertos_wfe(int timeout_ms);
// Wakes a mp_freertos_wfe() of the main thread; task or interrupt context.
void mp_freertos_wake_main(void);
// Registers the task that runs the REPL (the one woken by input and schedule()).
void mp_freertos_set_main_task(void *task);

// Sleeps ms milliseconds without the GIL, running scheduled callbacks; 0 yields once.
void mp_freertos_delay_ms(uint32_t ms);
// Lets other tasks run (without the GIL), then takes the GIL back.
void mp_freertos_yield(void);
uint32_t mp_freertos_ticks_ms(void);

// From vApplicationTickHook() (interrupt context): fires due soft timers through the service task.
void mp_freertos_tick_hook(void);

#endif // MICROPY_INCLUDED_MPFR_MPHAL_H

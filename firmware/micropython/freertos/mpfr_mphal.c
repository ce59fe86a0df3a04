/* HAL and service-task glue of mpfr's FreeRTOS backend: see mpfr_mphal.h. */
#include "py/runtime.h"
#include "py/mpthread.h"
#include "shared/runtime/softtimer.h"

#include "mpfr_mphal.h"
#include "mpfr_port.h"
#include "mpfr_service.h"

// Upper bound of one wait for an event, so that a wake-up source that does not notify (a port's
// polled input, say) is still seen.
#ifndef MP_FREERTOS_WFE_MAX_MS
#define MP_FREERTOS_WFE_MAX_MS (10)
#endif

static TaskHandle_t main_task;

int mp_freertos_service_init(void) {
    return mpfr_service_init(MICROPY_FREERTOS_SERVICE_PRIORITY);
}

// For the agent (firmware/usermod/modmpfr.c): the service task's counters.
void mpfr_backend_service_stats(mpfr_service_stats_t *out);
void mpfr_backend_service_stats(mpfr_service_stats_t *out) {
    mpfr_service_stats(out);
}

void mp_freertos_service_suspend(void) {
    mpfr_service_suspend();
}

void mp_freertos_service_resume(void) {
    mpfr_service_resume();
}

uint32_t mp_freertos_atomic_begin(void) {
    return (uint32_t)mpfr_lock();
}

void mp_freertos_atomic_end(uint32_t state) {
    mpfr_unlock((mpfr_lock_t)state);
}

void mp_freertos_set_main_task(void *task) {
    main_task = task;
}

void mp_freertos_wake_main(void) {
    TaskHandle_t t = main_task;
    if (t == NULL) {
        return;
    }
    if (MPFR_IN_ISR()) {
        // No xTaskGetSchedulerState() here: on SMP it takes the task-level critical section,
        // which from an interrupt spins forever when the interrupted task has been asked to
        // yield (it waits, interrupts on, for a switch that cannot happen inside the handler).
        // A notification before the scheduler starts only sets the task's notification value.
        BaseType_t woken = pdFALSE;
        vTaskNotifyGiveFromISR(t, &woken);
        portYIELD_FROM_ISR(woken);
    } else if (xTaskGetSchedulerState() == taskSCHEDULER_RUNNING) {
        xTaskNotifyGive(t);
    }
}

static void sched_dispatch(void *arg) {
    (void)arg;
    mp_freertos_wake_main();
}

void mp_freertos_sched_hook(void) {
    // The callbacks themselves run in the main thread (they need the VM); the service task only
    // wakes it, whatever context scheduled them.
    mpfr_service_schedule(MP_FREERTOS_SLOT_SCHED, sched_dispatch, NULL);
}

static void wait_ticks(TickType_t ticks) {
    MP_THREAD_GIL_EXIT();
    if (ticks == 0) {
        taskYIELD();
    } else if (xTaskGetCurrentTaskHandle() == main_task) {
        ulTaskNotifyTake(pdTRUE, ticks);
    } else {
        vTaskDelay(ticks);
    }
    MP_THREAD_GIL_ENTER();
}

void mp_freertos_wfe(int timeout_ms) {
    if (timeout_ms < 0 || timeout_ms > MP_FREERTOS_WFE_MAX_MS) {
        timeout_ms = MP_FREERTOS_WFE_MAX_MS;
    }
    wait_ticks(pdMS_TO_TICKS(timeout_ms));
}

void mp_freertos_delay_ms(uint32_t ms) {
    TickType_t start = xTaskGetTickCount();
    TickType_t total = pdMS_TO_TICKS(ms);
    if (total == 0) {
        mp_handle_pending(true);
        wait_ticks(0);
        return;
    }
    for (;;) {
        mp_handle_pending(true);
        TickType_t elapsed = xTaskGetTickCount() - start;
        if (elapsed >= total) {
            return;
        }
        wait_ticks(total - elapsed);
    }
}

void mp_freertos_yield(void) {
    wait_ticks(0);
}

static uint32_t ticks_to_ms(TickType_t t) {
    #if configTICK_RATE_HZ == 1000
    return (uint32_t)t;
    #else
    return (uint32_t)((uint64_t)t * 1000 / configTICK_RATE_HZ);
    #endif
}

uint32_t mp_freertos_ticks_ms(void) {
    return ticks_to_ms(MPFR_IN_ISR() ? xTaskGetTickCountFromISR() : xTaskGetTickCount());
}

#if MICROPY_PY_MACHINE_TIMER || defined(MICROPY_FREERTOS_SOFT_TIMER)

// Soft timers: the tick interrupt notices that the earliest timer is due and the service task
// runs soft_timer_handler(). MICROPY_PY_PENDSV_ENTER (service suspend) keeps Python code that
// changes the timer heap and the handler apart.
static volatile uint32_t soft_timer_due;
static volatile uint8_t soft_timer_armed;

uint32_t soft_timer_get_ms(void) {
    return mp_freertos_ticks_ms();
}

void soft_timer_schedule_at_ms(uint32_t ticks_ms) {
    mpfr_lock_t l = mpfr_lock();
    soft_timer_due = ticks_ms;
    soft_timer_armed = 1;
    mpfr_unlock(l);
}

static void soft_timer_dispatch(void *arg) {
    (void)arg;
    soft_timer_handler();
}

void mp_freertos_tick_hook(void) {
    if (soft_timer_armed && (int32_t)(mp_freertos_ticks_ms() - soft_timer_due) >= 0) {
        soft_timer_armed = 0;
        mpfr_service_schedule(MP_FREERTOS_SLOT_SOFT_TIMER, soft_timer_dispatch, NULL);
    }
}

#else

void mp_freertos_tick_hook(void) {
}

#endif

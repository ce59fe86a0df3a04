/* Service task. State shared with interrupts is only touched inside mpfr_lock(). */
#include "mpfr_service.h"

#include <string.h>

#include "mpfr_port.h"

#ifndef MPFR_SERVICE_STACK_WORDS
#ifdef MICROPY_FREERTOS_SERVICE_STACK_SIZE
#define MPFR_SERVICE_STACK_WORDS (MICROPY_FREERTOS_SERVICE_STACK_SIZE / sizeof(StackType_t))
#else
#define MPFR_SERVICE_STACK_WORDS 256
#endif
#endif

typedef struct {
    mpfr_service_fn_t fn;
    void *arg;
    uint32_t scheduled_at;
    uint32_t dispatches;
    uint32_t lat_min;
    uint32_t lat_max;
    uint32_t lat_last;
    uint64_t lat_sum;
    uint8_t pending;
} slot_t;

static slot_t slots[MPFR_SERVICE_SLOTS];
static volatile uint32_t n_notify, n_wakeups, n_skips, n_isr, n_task;
static volatile uint8_t suspend_depth;
/* Set while a callback runs: suspend() waits for it, so a suspender never overlaps a callback
 * (on SMP the service task may be in one on another core). */
static volatile uint8_t dispatching;
static TaskHandle_t svc_task;
static StaticTask_t svc_tcb;
static StackType_t svc_stack[MPFR_SERVICE_STACK_WORDS];

static void service_main(void *unused) {
    (void)unused;
    for (;;) {
        ulTaskNotifyTake(pdTRUE, portMAX_DELAY);
        n_wakeups++;
        for (unsigned i = 0; i < MPFR_SERVICE_SLOTS; i++) {
            mpfr_lock_t l = mpfr_lock();
            if (suspend_depth > 0) {
                /* Resume notifies again, so pending slots are not lost. */
                n_skips++;
                mpfr_unlock(l);
                break;
            }
            slot_t *s = &slots[i];
            if (!s->pending) {
                mpfr_unlock(l);
                continue;
            }
            mpfr_service_fn_t fn = s->fn;
            void *arg = s->arg;
            uint32_t lat = MPFR_TIMESTAMP() - s->scheduled_at;
            s->pending = 0;
            s->dispatches++;
            s->lat_last = lat;
            s->lat_sum += lat;
            if (s->dispatches == 1 || lat < s->lat_min) {
                s->lat_min = lat;
            }
            if (lat > s->lat_max) {
                s->lat_max = lat;
            }
            dispatching = 1;
            mpfr_unlock(l);
            if (fn != NULL) {
                fn(arg);
            }
            dispatching = 0;
        }
    }
}

int mpfr_service_init(unsigned priority) {
    if (svc_task != NULL) {
        return 0;
    }
    svc_task = xTaskCreateStatic(service_main, "svc", MPFR_SERVICE_STACK_WORDS, NULL,
        (UBaseType_t)priority, svc_stack, &svc_tcb);
    return svc_task != NULL ? 0 : -1;
}

int mpfr_service_schedule(unsigned slot, mpfr_service_fn_t fn, void *arg) {
    if (slot >= MPFR_SERVICE_SLOTS) {
        return -1;
    }
    int isr = MPFR_IN_ISR();
    mpfr_lock_t l = mpfr_lock();
    slot_t *s = &slots[slot];
    int notify = 0;
    if (isr) {
        n_isr++;
    } else {
        n_task++;
    }
    s->fn = fn;
    s->arg = arg;
    if (!s->pending) {
        s->pending = 1;
        s->scheduled_at = MPFR_TIMESTAMP();
        notify = suspend_depth == 0 && svc_task != NULL;
        if (notify) {
            n_notify++;
        }
    }
    mpfr_unlock(l);
    if (notify) {
        if (isr) {
            BaseType_t woken = pdFALSE;
            vTaskNotifyGiveFromISR(svc_task, &woken);
            portYIELD_FROM_ISR(woken);
        } else {
            xTaskNotifyGive(svc_task);
        }
    }
    return 0;
}

void mpfr_service_suspend(void) {
    mpfr_lock_t l = mpfr_lock();
    if (suspend_depth < 255) {
        suspend_depth++;
    }
    mpfr_unlock(l);
    /* A task (not the service task) waits for a callback already under way to finish: on SMP it
     * may run on another core, and on one core the caller may have preempted it. An interrupt
     * cannot wait; it only stops further dispatches. */
    if (!MPFR_IN_ISR() && xTaskGetCurrentTaskHandle() != svc_task
        && xTaskGetSchedulerState() == taskSCHEDULER_RUNNING) {
        while (dispatching) {
            vTaskDelay(1);
        }
    }
}

void mpfr_service_resume(void) {
    int notify = 0;
    mpfr_lock_t l = mpfr_lock();
    if (suspend_depth > 0 && --suspend_depth == 0) {
        for (unsigned i = 0; i < MPFR_SERVICE_SLOTS; i++) {
            notify |= slots[i].pending;
        }
        notify = notify && svc_task != NULL && !MPFR_IN_ISR();
        if (notify) {
            n_notify++;
        }
    }
    mpfr_unlock(l);
    if (notify) {
        xTaskNotifyGive(svc_task);
    }
}

void mpfr_service_stats(mpfr_service_stats_t *out) {
    mpfr_slot_stats_t *room = out->slots;
    uint8_t cap = room != NULL ? out->slots_cap : 0;
    memset(out, 0, sizeof *out);
    out->slots = room;
    out->slots_cap = cap;
    mpfr_lock_t l = mpfr_lock();
    out->notifications = n_notify;
    out->wakeups = n_wakeups;
    out->suspended_skips = n_skips;
    out->isr_schedules = n_isr;
    out->task_schedules = n_task;
    out->suspend_depth = suspend_depth;
    uint8_t n = 0;
    for (unsigned i = 0; i < MPFR_SERVICE_SLOTS && n < cap && n < MPFR_PROTO_MAX_SLOTS; i++) {
        const slot_t *s = &slots[i];
        if (s->dispatches == 0 && !s->pending && s->fn == NULL) {
            continue; /* never used: not worth a line */
        }
        mpfr_slot_stats_t *o = &out->slots[n++];
        o->slot = (uint8_t)i;
        o->pending = s->pending;
        o->dispatches = s->dispatches;
        o->latency_min = s->lat_min;
        o->latency_max = s->lat_max;
        o->latency_last = s->lat_last;
        o->latency_avg = s->dispatches ? (uint32_t)(s->lat_sum / s->dispatches) : 0;
    }
    out->nslots = n;
    mpfr_unlock(l);
}

void *mpfr_service_task(void) {
    return svc_task;
}

/* Thread registry and reaper. The list is only changed inside a critical section; memory is freed
 * outside it. */
#include "mpfr_thread.h"

#include <string.h>

#include "mpfr_agent.h"
#include "mpfr_port.h"

#ifndef MPFR_THREAD_MIN_STACK
#define MPFR_THREAD_MIN_STACK 512
#endif

enum { TH_RUNNING = 0, TH_FINISHED = 1 };

typedef struct thread {
    StaticTask_t tcb;
    struct thread *next;
    TaskHandle_t handle;
    StackType_t *stack;
    uint32_t stack_bytes;
    uint32_t id;
    mpfr_thread_fn_t fn;
    void *arg;
    volatile uint8_t state;
} thread_t;

static thread_t *threads;
static uint32_t next_id = 1;
static mpfr_thread_counts_t counts;

/* The number the task table reports (TCB number), not the application-set uxTaskNumber. */
static uint32_t tcb_number(TaskHandle_t h) {
    TaskStatus_t st;
    vTaskGetInfo(h, &st, pdFALSE, eInvalid);
    return (uint32_t)st.xTaskNumber;
}

static void thread_entry(void *p) {
    thread_t *t = (thread_t *)p;
    t->fn(t->arg);
    mpfr_agent_event(MPFR_EV_THREAD_FINISHED, tcb_number(t->handle), t->id, pcTaskGetName(NULL));
    /* Park. FINISHED and the suspension happen in one critical section, so on one core nobody
     * sees a finished thread that is not parked yet; on SMP the reaper also checks the state. */
    taskENTER_CRITICAL();
    t->state = TH_FINISHED;
    counts.live--;
    counts.finished++;
    vTaskSuspend(NULL);
    taskEXIT_CRITICAL();
    for (;;) {
        vTaskSuspend(NULL);
    }
}

unsigned mpfr_thread_reap(void) {
    unsigned n = 0;
    for (;;) {
        thread_t *victim = NULL;
        mpfr_lock_t l = mpfr_lock();
        for (thread_t **pp = &threads; *pp != NULL; pp = &(*pp)->next) {
            thread_t *t = *pp;
            /* Only once it has really parked: on SMP it may still run on another core. */
            if (t->state == TH_FINISHED && eTaskGetState(t->handle) == eSuspended) {
                *pp = t->next;
                victim = t;
                counts.finished--;
                counts.reaped++;
                break;
            }
        }
        mpfr_unlock(l);
        if (victim == NULL) {
            return n;
        }
        char name[configMAX_TASK_NAME_LEN];
        strncpy(name, pcTaskGetName(victim->handle), sizeof name - 1);
        name[sizeof name - 1] = '\0';
        uint32_t number = tcb_number(victim->handle);
        uint32_t freed = victim->stack_bytes + (uint32_t)sizeof(thread_t);
        vTaskDelete(victim->handle);
        vPortFree(victim->stack);
        vPortFree(victim);
        mpfr_agent_event(MPFR_EV_THREAD_REAPED, number, freed, name);
        n++;
    }
}

uint32_t mpfr_thread_create(const char *name, mpfr_thread_fn_t fn, void *arg, uint32_t stack_bytes,
    unsigned priority, int core) {
    mpfr_thread_reap();
    if (stack_bytes < MPFR_THREAD_MIN_STACK) {
        stack_bytes = MPFR_THREAD_MIN_STACK;
    }
    stack_bytes = (stack_bytes + sizeof(StackType_t) - 1) & ~(uint32_t)(sizeof(StackType_t) - 1);
    thread_t *t = pvPortMalloc(sizeof(thread_t));
    StackType_t *stack = t != NULL ? pvPortMalloc(stack_bytes) : NULL;
    if (stack == NULL) {
        vPortFree(t);
        mpfr_lock_t l = mpfr_lock();
        counts.failed++;
        mpfr_unlock(l);
        return 0;
    }
    memset(t, 0, sizeof *t);
    t->stack = stack;
    t->stack_bytes = stack_bytes;
    t->fn = fn;
    t->arg = arg;
    t->state = TH_RUNNING;
    mpfr_lock_t l = mpfr_lock();
    t->id = next_id++;
    if (next_id == 0) {
        next_id = 1;
    }
    t->next = threads;
    threads = t;
    counts.live++;
    counts.created++;
    mpfr_unlock(l);
    /* Created suspended-free: the handle is stored before the thread can finish. */
    vTaskSuspendAll();
    t->handle = xTaskCreateStatic(thread_entry, name, stack_bytes / sizeof(StackType_t), t,
        (UBaseType_t)priority, stack, &t->tcb);
#if configNUMBER_OF_CORES > 1 && configUSE_CORE_AFFINITY == 1
    if (core >= 0 && core < configNUMBER_OF_CORES) {
        vTaskCoreAffinitySet(t->handle, (UBaseType_t)1 << core);
    }
#else
    (void)core;
#endif
    (void)xTaskResumeAll();
    mpfr_agent_event(MPFR_EV_THREAD_CREATED, tcb_number(t->handle), t->id, name);
    return t->id;
}

uint32_t mpfr_thread_id_of(void *task) {
    uint32_t id = 0;
    mpfr_lock_t l = mpfr_lock();
    for (thread_t *t = threads; t != NULL; t = t->next) {
        if (t->handle == (TaskHandle_t)task) {
            id = t->id;
            break;
        }
    }
    mpfr_unlock(l);
    return id;
}

int mpfr_thread_finished(void *task) {
    int finished = 0;
    mpfr_lock_t l = mpfr_lock();
    for (thread_t *t = threads; t != NULL; t = t->next) {
        if (t->handle == (TaskHandle_t)task) {
            finished = t->state == TH_FINISHED;
            break;
        }
    }
    mpfr_unlock(l);
    return finished;
}

void mpfr_thread_counts(mpfr_thread_counts_t *out) {
    mpfr_lock_t l = mpfr_lock();
    *out = counts;
    mpfr_unlock(l);
}

/* mp_thread_* on FreeRTOS: see mpthreadport.h. The thread list is changed under list_mutex (a
 * FreeRTOS mutex, as creators may run on several cores with the GIL off); every node, TCB and
 * stack is a GC block reachable from thread_list, which mp_thread_gc_others() marks. */
#include <string.h>

#include "py/runtime.h"
#include "py/gc.h"
#include "py/mpthread.h"

#if MICROPY_PY_THREAD

enum { THREAD_RUNNING = 0, THREAD_FINISHED = 1 };

typedef struct _mp_thread_t {
    StaticTask_t tcb; // the kernel's task control block, in this GC block
    struct _mp_thread_t *next;
    TaskHandle_t handle;
    void *(*entry)(void *);
    void *arg; // the thread's Python arguments: reachable through the node while it runs
    StackType_t *stack;
    size_t stack_bytes;
    volatile uint8_t state;
} mp_thread_t;

// Threads created by mp_thread_create(), newest first; GC blocks, marked by mp_thread_gc_others().
static mp_thread_t *thread_list;
static SemaphoreHandle_t list_mutex;
static StaticSemaphore_t list_mutex_buffer;
static TaskHandle_t main_task;
static void *main_stack;
static size_t main_stack_bytes;
static mp_thread_counts_t counts;

static void list_lock(void) {
    xSemaphoreTake(list_mutex, portMAX_DELAY);
}

static void list_unlock(void) {
    xSemaphoreGive(list_mutex);
}

void mp_thread_init(void *stack, size_t stack_bytes) {
    main_task = xTaskGetCurrentTaskHandle();
    main_stack = stack;
    main_stack_bytes = stack_bytes;
    thread_list = NULL;
    if (list_mutex == NULL) {
        list_mutex = xSemaphoreCreateMutexStatic(&list_mutex_buffer);
    }
    mp_thread_set_state(&mp_state_ctx.thread);
}

void mp_thread_deinit(void) {
    TaskHandle_t self = xTaskGetCurrentTaskHandle();
    list_lock();
    for (mp_thread_t *th = thread_list; th != NULL; th = th->next) {
        if (th->handle != NULL && th->handle != self) {
            vTaskDelete(th->handle);
        }
    }
    thread_list = NULL;
    taskENTER_CRITICAL();
    counts.live = 0;
    counts.finished = 0;
    taskEXIT_CRITICAL();
    list_unlock();
}

void mp_thread_gc_others(void) {
    list_lock();
    // Marking the list head marks every node, and through them each TCB, stack and argument
    // block; a stack block is scanned word by word like any other block.
    gc_collect_root((void **)&thread_list, 1);
    list_unlock();
    if (xTaskGetCurrentTaskHandle() != main_task && main_stack != NULL) {
        // The main task's stack is no GC block: scan it whole.
        gc_collect_root(main_stack, main_stack_bytes / sizeof(void *));
    }
}

mp_state_thread_t *mp_thread_get_state(void) {
    return pvTaskGetThreadLocalStoragePointer(NULL, MP_FREERTOS_TLS_INDEX);
}

void mp_thread_set_state(mp_state_thread_t *state) {
    vTaskSetThreadLocalStoragePointer(NULL, MP_FREERTOS_TLS_INDEX, state);
}

mp_uint_t mp_thread_get_id(void) {
    return (mp_uint_t)xTaskGetCurrentTaskHandle();
}

void mp_thread_start(void) {
}

void mp_thread_finish(void) {
}

static void thread_task(void *p) {
    mp_thread_t *th = p;
    th->entry(th->arg);
    // The state lived on this stack; from now on this task is no Python thread.
    vTaskSetThreadLocalStoragePointer(NULL, MP_FREERTOS_TLS_INDEX, NULL);
    // Park. On one core the state change and the suspension are one step for everyone else; on
    // SMP the reaper also waits until the kernel reports the task suspended.
    taskENTER_CRITICAL();
    th->state = THREAD_FINISHED;
    counts.live--;
    counts.finished++;
    vTaskSuspend(NULL);
    taskEXIT_CRITICAL();
    for (;;) {
        vTaskSuspend(NULL);
    }
}

unsigned mp_thread_reap(void) {
    unsigned n = 0;
    for (;;) {
        mp_thread_t *victim = NULL;
        list_lock();
        for (mp_thread_t **pp = &thread_list; *pp != NULL; pp = &(*pp)->next) {
            mp_thread_t *th = *pp;
            if (th->state == THREAD_FINISHED && eTaskGetState(th->handle) == eSuspended) {
                *pp = th->next;
                victim = th;
                break;
            }
        }
        list_unlock();
        if (victim == NULL) {
            return n;
        }
        vTaskDelete(victim->handle);
        taskENTER_CRITICAL();
        counts.finished--;
        counts.reaped++;
        taskEXIT_CRITICAL();
        gc_free(victim->stack);
        gc_free(victim);
        n++;
    }
}

mp_uint_t mp_thread_create(void *(*entry)(void *), void *arg, size_t *stack_size) {
    mp_thread_reap();

    if (*stack_size == 0) {
        *stack_size = MP_THREAD_DEFAULT_STACK_SIZE;
    } else if (*stack_size < MP_THREAD_MIN_STACK_SIZE) {
        *stack_size = MP_THREAD_MIN_STACK_SIZE;
    }
    *stack_size = (*stack_size + 7) & ~(size_t)7;

    // Both raise MemoryError when the heap is full; nothing is locked or linked yet.
    mp_thread_t *th = m_new_obj(mp_thread_t);
    memset(th, 0, sizeof(*th));
    th->stack = (StackType_t *)m_new(uint8_t, *stack_size);
    th->stack_bytes = *stack_size;
    th->entry = entry;
    th->arg = arg;
    th->state = THREAD_RUNNING;

    // Link first, so the node is marked by a collection that runs as soon as the task exists.
    list_lock();
    th->next = thread_list;
    thread_list = th;
    taskENTER_CRITICAL();
    counts.live++;
    counts.created++;
    taskEXIT_CRITICAL();
    // The task must not start before its handle is stored (the reaper reads it).
    vTaskSuspendAll();
    th->handle = xTaskCreateStatic(thread_task, "mp_thread", *stack_size / sizeof(StackType_t), th,
        MP_THREAD_PRIORITY, th->stack, &th->tcb);
    #if configNUMBER_OF_CORES > 1 && configUSE_CORE_AFFINITY
    vTaskCoreAffinitySet(th->handle, MP_THREAD_CORE_AFFINITY);
    #endif
    (void)xTaskResumeAll();
    list_unlock();
    return (mp_uint_t)th->handle;
}

void mp_thread_counts(mp_thread_counts_t *out) {
    taskENTER_CRITICAL();
    *out = counts;
    taskEXIT_CRITICAL();
}

// For the agent (firmware/usermod/modmpfr.c): threads alive and finished-not-reaped.
void mpfr_backend_thread_counts(uint16_t *live, uint16_t *finished);
void mpfr_backend_thread_counts(uint16_t *live, uint16_t *finished) {
    mp_thread_counts_t c;
    mp_thread_counts(&c);
    *live = (uint16_t)c.live;
    *finished = (uint16_t)c.finished;
}

void mp_thread_mutex_init(mp_thread_mutex_t *mutex) {
    // Binary semaphore: a Python Lock may be released by another thread than the one holding it.
    mutex->handle = xSemaphoreCreateBinaryStatic(&mutex->buffer);
    xSemaphoreGive(mutex->handle);
}

int mp_thread_mutex_lock(mp_thread_mutex_t *mutex, int wait) {
    return xSemaphoreTake(mutex->handle, wait ? portMAX_DELAY : 0) == pdTRUE;
}

void mp_thread_mutex_unlock(mp_thread_mutex_t *mutex) {
    xSemaphoreGive(mutex->handle);
    // Python threads share one priority: without a yield the releasing thread takes the lock
    // straight back (the GIL every few bytecodes) and a waiting thread may never run.
    if (xTaskGetSchedulerState() == taskSCHEDULER_RUNNING) {
        taskYIELD();
    }
}

#if MICROPY_PY_THREAD_RECURSIVE_MUTEX

void mp_thread_recursive_mutex_init(mp_thread_recursive_mutex_t *mutex) {
    mutex->handle = xSemaphoreCreateRecursiveMutexStatic(&mutex->buffer);
}

int mp_thread_recursive_mutex_lock(mp_thread_recursive_mutex_t *mutex, int wait) {
    return xSemaphoreTakeRecursive(mutex->handle, wait ? portMAX_DELAY : 0) == pdTRUE;
}

void mp_thread_recursive_mutex_unlock(mp_thread_recursive_mutex_t *mutex) {
    xSemaphoreGiveRecursive(mutex->handle);
}

#endif // MICROPY_PY_THREAD_RECURSIVE_MUTEX

#endif // MICROPY_PY_THREAD

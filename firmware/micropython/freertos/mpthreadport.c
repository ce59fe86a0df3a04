/* mp_thread_* on FreeRTOS: see mpthreadport.h. The thread list is changed under list_mutex (a
 * FreeRTOS mutex, as creators may run on several cores with the GIL off); every node, TCB and
 * stack is a GC block reachable from thread_list, which mp_thread_gc_others() marks.
 *
 * With the GIL off a collection stops the world: the GC marks concurrently with nothing, so a
 * thread that ran during the mark could move a pointer from a block not yet scanned into one
 * already scanned (list.pop(0) shifting items does exactly that) and the block it points to would
 * be freed while in use. mp_thread_gc_stop_others() suspends every other Python thread for the
 * whole collection, after taking the GC lock so none is stopped inside the allocator. */
#include <string.h>

#include "py/runtime.h"
#include "py/gc.h"
#include "py/mpthread.h"

#if MICROPY_PY_THREAD

enum { THREAD_RUNNING = 0, THREAD_FINISHED = 1 };

#if configNUMBER_OF_CORES > 1 && configUSE_PASSIVE_IDLE_HOOK
// mpfr's config turns on the idle hook of the other cores' idle tasks, so that a port can sleep
// there (WFI) instead of spinning. A port with nothing to do there gets this empty one.
__attribute__((weak)) void vApplicationPassiveIdleHook(void) {
}
#endif

#if configNUMBER_OF_CORES > 1 && configUSE_CORE_AFFINITY
// With the GIL on only its holder runs Python, so threads free to run anywhere share core 0: a
// GIL handover is then a yield on one core, not a doorbell to the other core and its task switch
// for every handover (which made two GIL threads several times slower than one). An explicit
// mask is kept.
#if MICROPY_PY_THREAD_GIL
#define THREAD_AFFINITY ((UBaseType_t)(MP_THREAD_CORE_AFFINITY) == tskNO_AFFINITY \
    ? (UBaseType_t)(1 << 0) : (UBaseType_t)(MP_THREAD_CORE_AFFINITY))
#else
#define THREAD_AFFINITY ((UBaseType_t)(MP_THREAD_CORE_AFFINITY))
#endif
#endif

typedef struct _mp_thread_t {
    StaticTask_t tcb; // the kernel's task control block, in this GC block
    struct _mp_thread_t *next;
    TaskHandle_t handle;
    void *(*entry)(void *);
    void *arg; // the thread's Python arguments: reachable through the node while it runs
    StackType_t *stack;
    size_t stack_bytes;
    volatile uint8_t state;
    uint8_t stopped; // suspended by the collector (mp_thread_gc_stop_others)
} mp_thread_t;

// Threads created by mp_thread_create(), newest first; GC blocks, marked by mp_thread_gc_others().
static mp_thread_t *thread_list;
static SemaphoreHandle_t list_mutex;
static StaticSemaphore_t list_mutex_buffer;
static TaskHandle_t main_task;
static void *main_stack;
static size_t main_stack_bytes;
static mp_thread_counts_t counts;
#if !MICROPY_PY_THREAD_GIL
static bool main_stopped; // suspended by the collector
#endif

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
    #if configNUMBER_OF_CORES > 1 && configUSE_CORE_AFFINITY
    vTaskCoreAffinitySet(main_task, THREAD_AFFINITY);
    #endif
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
    #if !MICROPY_PY_THREAD_GIL
    // A deleted thread may have held the GC lock; the soft reset's sweep takes it next.
    if (MP_STATE_MEM(gc_mutex).owner != self) {
        mp_thread_recursive_mutex_init(&MP_STATE_MEM(gc_mutex));
    }
    #endif
    taskENTER_CRITICAL();
    counts.live = 0;
    counts.finished = 0;
    taskEXIT_CRITICAL();
    list_unlock();
}

#if !MICROPY_PY_THREAD_GIL
// Suspends task (no-op if it is suspended already, e.g. parked after finishing); returns whether
// it did. On SMP the task may still be running on another core until that core takes the yield
// the kernel sent it: wait for that, as its registers must be on its stack before the scan.
static bool stop_task(TaskHandle_t task) {
    if (eTaskGetState(task) == eSuspended) {
        return false;
    }
    vTaskSuspend(task);
    #if configNUMBER_OF_CORES > 1
    for (BaseType_t core = 0; core < configNUMBER_OF_CORES; core++) {
        while (xTaskGetCurrentTaskHandleForCore(core) == task) {
        }
    }
    #endif
    return true;
}
#endif

void mp_thread_gc_stop_others(void) {
    #if !MICROPY_PY_THREAD_GIL
    // Recursive: gc_collect_start() takes it again. The order GC lock, then list lock, is the
    // only one (nothing allocates or frees under the list lock).
    mp_thread_recursive_mutex_lock(&MP_STATE_MEM(gc_mutex), 1);
    #endif
    // Held until the collection ends: no thread is created or reaped while the list is scanned.
    list_lock();
    #if !MICROPY_PY_THREAD_GIL
    if (xTaskGetSchedulerState() != taskSCHEDULER_RUNNING) {
        return;
    }
    TaskHandle_t self = xTaskGetCurrentTaskHandle();
    for (mp_thread_t *th = thread_list; th != NULL; th = th->next) {
        th->stopped = th->handle != NULL && th->handle != self && th->state == THREAD_RUNNING
            && stop_task(th->handle);
    }
    main_stopped = main_task != NULL && main_task != self && stop_task(main_task);
    #endif
}

void mp_thread_gc_resume_others(void) {
    #if !MICROPY_PY_THREAD_GIL
    // A stopped thread that was blocked (in a sleep or on a lock) wakes early: both loop until
    // their deadline or their lock, so an early wake-up costs a retry only.
    for (mp_thread_t *th = thread_list; th != NULL; th = th->next) {
        if (th->stopped) {
            th->stopped = 0;
            vTaskResume(th->handle);
        }
    }
    if (main_stopped) {
        main_stopped = false;
        vTaskResume(main_task);
    }
    #endif
    list_unlock();
    #if !MICROPY_PY_THREAD_GIL
    mp_thread_recursive_mutex_unlock(&MP_STATE_MEM(gc_mutex));
    #endif
}

void mp_thread_gc_others(void) {
    // Called between mp_thread_gc_stop_others() and mp_thread_gc_resume_others(), which hold the
    // list lock. Marking the list head marks every node, and through them each TCB, stack and
    // argument block; a stack block is scanned word by word like any other block, and a stopped
    // thread's registers are saved on it.
    gc_collect_root((void **)&thread_list, 1);
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

// Whether a core still runs task. On SMP eTaskGetState() reports a task that suspended itself
// as eSuspended while its core has not switched away yet, so it still runs on its stack; deleting
// it then queues its TCB for the idle task, and freeing the GC blocks under both corrupts the
// kernel's lists and the next owner's data (a "stack overflow" in a task with a garbage name).
static bool task_on_a_core(TaskHandle_t task) {
    #if configNUMBER_OF_CORES > 1
    for (BaseType_t core = 0; core < configNUMBER_OF_CORES; core++) {
        if (xTaskGetCurrentTaskHandleForCore(core) == task) {
            return true;
        }
    }
    #else
    (void)task;
    #endif
    return false;
}

unsigned mp_thread_reap(void) {
    unsigned n = 0;
    for (;;) {
        mp_thread_t *victim = NULL;
        list_lock();
        for (mp_thread_t **pp = &thread_list; *pp != NULL; pp = &(*pp)->next) {
            mp_thread_t *th = *pp;
            if (th->state == THREAD_FINISHED && eTaskGetState(th->handle) == eSuspended
                && !task_on_a_core(th->handle)) {
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
    vTaskCoreAffinitySet(th->handle, THREAD_AFFINITY);
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

// How often a waiter tries before it yields its core. The lock is held for one allocation
// (microseconds), except by a collection, which stops the other Python threads anyway.
#ifndef MP_THREAD_RECURSIVE_MUTEX_SPINS
#define MP_THREAD_RECURSIVE_MUTEX_SPINS (200)
#endif

void mp_thread_recursive_mutex_init(mp_thread_recursive_mutex_t *mutex) {
    mutex->depth = 0;
    __atomic_store_n(&mutex->owner, NULL, __ATOMIC_RELEASE);
}

int mp_thread_recursive_mutex_lock(mp_thread_recursive_mutex_t *mutex, int wait) {
    TaskHandle_t self = xTaskGetCurrentTaskHandle();
    if (mutex->owner == self) {
        // Only the owner writes its own handle here, so this read needs no atomic.
        mutex->depth++;
        return 1;
    }
    for (;;) {
        for (unsigned i = 0; i < MP_THREAD_RECURSIVE_MUTEX_SPINS; i++) {
            TaskHandle_t expected = NULL;
            if (mutex->owner == NULL
                && __atomic_compare_exchange_n(&mutex->owner, &expected, self, false,
                    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
                mutex->depth = 1;
                return 1;
            }
        }
        if (!wait) {
            return 0;
        }
        // The owner may be preempted on this core: let it (or any other ready thread) run.
        taskYIELD();
    }
}

void mp_thread_recursive_mutex_unlock(mp_thread_recursive_mutex_t *mutex) {
    if (--mutex->depth == 0) {
        __atomic_store_n(&mutex->owner, NULL, __ATOMIC_RELEASE);
    }
}

#endif // MICROPY_PY_THREAD_RECURSIVE_MUTEX

#endif // MICROPY_PY_THREAD

#if MICROPY_ENABLE_GC

// The allocator, with the GC lock held until the new block's address is in the caller's hands
// (the link wraps gc_alloc and gc_realloc: micropython.mk, micropython.cmake).
//
// gc_alloc() marks the new block in the allocation table, releases the GC lock and only then
// works out the block's address: compiled, the unlock call is passed the heap's start and the
// block number, and the pointer is formed after it returns. A thread preempted in that window
// holds no pointer to its block, in no register and on no stack. With the GIL on nobody can
// collect then; with it off, another thread's collection finds the block unreachable, frees it,
// and the next allocation hands the same memory out again: two owners, each overwriting the
// other's object (bytes changed, a local or global gone, a hard fault). gc_realloc() moves a
// block through the same path. Holding the (recursive) GC lock around the whole call closes the
// window: a collection runs only when no thread is inside the allocator, and the caller of the
// wrapper keeps the returned pointer in a saved register or on its stack.
void *__real_gc_alloc(size_t n_bytes, unsigned int alloc_flags);
void *__real_gc_realloc(void *ptr, size_t n_bytes, bool allow_move);
void *__wrap_gc_alloc(size_t n_bytes, unsigned int alloc_flags);
void *__wrap_gc_realloc(void *ptr, size_t n_bytes, bool allow_move);

#if MICROPY_PY_THREAD && !MICROPY_PY_THREAD_GIL

void *__wrap_gc_alloc(size_t n_bytes, unsigned int alloc_flags) {
    mp_thread_recursive_mutex_lock(&MP_STATE_MEM(gc_mutex), 1);
    void *p = __real_gc_alloc(n_bytes, alloc_flags);
    mp_thread_recursive_mutex_unlock(&MP_STATE_MEM(gc_mutex));
    return p;
}

void *__wrap_gc_realloc(void *ptr, size_t n_bytes, bool allow_move) {
    mp_thread_recursive_mutex_lock(&MP_STATE_MEM(gc_mutex), 1);
    void *p = __real_gc_realloc(ptr, n_bytes, allow_move);
    mp_thread_recursive_mutex_unlock(&MP_STATE_MEM(gc_mutex));
    return p;
}

#else

void *__wrap_gc_alloc(size_t n_bytes, unsigned int alloc_flags) {
    return __real_gc_alloc(n_bytes, alloc_flags);
}

void *__wrap_gc_realloc(void *ptr, size_t n_bytes, bool allow_move) {
    return __real_gc_realloc(ptr, n_bytes, allow_move);
}

#endif

#endif // MICROPY_ENABLE_GC

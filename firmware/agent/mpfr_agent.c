/* Telemetry agent: samples at a set rate, from a low-cost task of its own or (MPFR_AGENT_OWN_TASK
 * 0) from whatever task calls mpfr_agent_poll(). Frames are encoded straight into the RTT up
 * buffer; fixed buffers only, nothing here allocates (but a task table beyond MPFR_AGENT_MAX_TASKS
 * without the task walk, see send_tasks()). */
#include "mpfr_agent.h"

#include <string.h>

#include "mpfr_port.h"
#include "mpfr_rtt.h"

#ifndef MPFR_AGENT_MAX_TASKS
#define MPFR_AGENT_MAX_TASKS 20
#endif
#ifndef MPFR_AGENT_TASKS_PER_FRAME
#define MPFR_AGENT_TASKS_PER_FRAME 8
#endif
#ifndef MPFR_AGENT_EVENTS
#define MPFR_AGENT_EVENTS 4
#endif
#ifndef MPFR_AGENT_EVENT_TEXT
#define MPFR_AGENT_EVENT_TEXT 20
#endif
#ifndef MPFR_AGENT_TASK_WALK
#define MPFR_AGENT_TASK_WALK 0
#endif
#ifndef MPFR_AGENT_SLOTS
#define MPFR_AGENT_SLOTS 8
#endif
#ifndef MPFR_AGENT_OWN_TASK
#define MPFR_AGENT_OWN_TASK 1
#endif
#ifndef MPFR_AGENT_STACK_WORDS
#define MPFR_AGENT_STACK_WORDS 256
#endif
#ifndef MPFR_AGENT_PRIORITY
#define MPFR_AGENT_PRIORITY (configMAX_PRIORITIES - 2)
#endif
#ifndef MPFR_AGENT_HELLO_MS
#define MPFR_AGENT_HELLO_MS 2000
#endif

#define AGENT_CORES (configNUMBER_OF_CORES < MPFR_PROTO_MAX_CORES ? configNUMBER_OF_CORES : MPFR_PROTO_MAX_CORES)

/* Task states go on the wire as eTaskState values: the two orders must agree. */
#define SAME_STATE(k, m) ((int)(k) == (int)(m))
typedef char mpfr_task_states_match[(SAME_STATE(eRunning, MPFR_TASK_RUNNING)
    && SAME_STATE(eReady, MPFR_TASK_READY) && SAME_STATE(eBlocked, MPFR_TASK_BLOCKED)
    && SAME_STATE(eSuspended, MPFR_TASK_SUSPENDED) && SAME_STATE(eDeleted, MPFR_TASK_DELETED)
    && SAME_STATE(eInvalid, MPFR_TASK_INVALID)) ? 1 : -1];

#if MPFR_AGENT_TASKS_PER_FRAME > MPFR_PROTO_MAX_TASKS_PER_FRAME
#error "MPFR_AGENT_TASKS_PER_FRAME exceeds the protocol limit"
#endif

typedef struct {
    uint8_t kind;
    uint32_t tick;
    uint32_t a;
    uint32_t b;
    char text[MPFR_AGENT_EVENT_TEXT];
} event_t;

MPFR_PORT_MUX_DEFINE

static const mpfr_agent_identity_t *ident;
static const mpfr_agent_sources_t *sources;
static volatile uint8_t rate_hz;
static uint8_t started;
static uint16_t seq;
static TickType_t last_hello, last_sample;
static mpfr_agent_counts_t counts;
#if !MPFR_AGENT_TASK_WALK
static TaskStatus_t status_fixed[MPFR_AGENT_MAX_TASKS];
#endif
static mpfr_slot_stats_t slot_stats[MPFR_AGENT_SLOTS];

static event_t events[MPFR_AGENT_EVENTS];
static volatile uint8_t ev_head, ev_count;
#if MPFR_AGENT_OWN_TASK
static TaskHandle_t agent_task;
static StaticTask_t agent_tcb;
/* In 32-bit words whatever a StackType_t is (ESP-IDF counts stacks in bytes). */
#define AGENT_STACK_DEPTH (MPFR_AGENT_STACK_WORDS * 4u / sizeof(StackType_t))
static StackType_t agent_stack[AGENT_STACK_DEPTH];
#endif

/* The agent's work is split into out-of-line steps so that only one step's locals are on the
 * stack at a time: the agent may run in a task of the firmware's, whose stack pays for its depth. */
#define STEP static __attribute__((noinline))

/* A frame is written in place in the free part of the telemetry up buffer and published whole by
 * close_frame(), so a host never sees part of one. */
static void open_frame(mpfr_wr_t *w, uint8_t type) {
    mpfr_rtt_space(MPFR_RTT_UP_TELEMETRY, &w->buf, &w->size, &w->start, &w->room);
    mpfr_frame_begin(w, type, seq);
}

#if configGENERATE_RUN_TIME_STATS == 1 && defined(portGET_RUN_TIME_COUNTER_VALUE)
/* Run-time counter ticks spent working between waits, so a benchmark can check the idle-time
 * drop against what the agent itself did. */
static volatile uint32_t busy_ticks;
#define BUSY_START() uint32_t busy_t0 = (uint32_t)portGET_RUN_TIME_COUNTER_VALUE()
#define BUSY_STOP() (busy_ticks += (uint32_t)portGET_RUN_TIME_COUNTER_VALUE() - busy_t0)
#else
#define BUSY_START() do { } while (0)
#define BUSY_STOP() do { } while (0)
#endif

uint32_t mpfr_agent_busy_ticks(void) {
#if configGENERATE_RUN_TIME_STATS == 1 && defined(portGET_RUN_TIME_COUNTER_VALUE)
    return busy_ticks;
#else
    return 0;
#endif
}

/* Every frame takes a sequence number, written or not, so the host sees drops as gaps. */
static void close_frame(mpfr_wr_t *w) {
    seq++;
    size_t len = mpfr_frame_end(w);
    if (len == 0) {
        counts.overflows++;
        return;
    }
    mpfr_rtt_commit(MPFR_RTT_UP_TELEMETRY, (uint32_t)len);
    counts.frames++;
}

STEP void send_hello(void) {
    mpfr_hello_t h;
    h.gil = ident != NULL ? ident->gil : MPFR_GIL_UNKNOWN;
    h.cores = configNUMBER_OF_CORES;
    h.sample_hz = (uint16_t)rate_hz;
    h.fingerprint = ident != NULL ? ident->fingerprint : 0;
    h.tick_hz = configTICK_RATE_HZ;
    h.runtime_hz = MPFR_RUNTIME_HZ;
    h.board = ident != NULL ? ident->board : NULL;
    h.firmware = ident != NULL ? ident->firmware : NULL;
    mpfr_wr_t w;
    open_frame(&w, MPFR_FRAME_HELLO);
    mpfr_put_hello(&w, &h);
    close_frame(&w);
}

void mpfr_agent_init(const mpfr_agent_identity_t *id, const mpfr_agent_sources_t *src) {
    ident = id;
    sources = src;
    mpfr_rtt_init();
}

static uint8_t core_of(TaskHandle_t h, eTaskState state) {
#if configNUMBER_OF_CORES > 1
    for (BaseType_t c = 0; c < configNUMBER_OF_CORES; c++) {
        if (xTaskGetCurrentTaskHandleForCore(c) == h) {
            return (uint8_t)c;
        }
    }
    (void)state;
    return MPFR_PROTO_NO_CORE;
#else
    (void)h;
    return state == eRunning ? 0 : MPFR_PROTO_NO_CORE;
#endif
}

static uint32_t stack_size_of(const TaskStatus_t *s) {
#if configRECORD_STACK_HIGH_ADDRESS == 1 || portSTACK_GROWTH > 0
    const StackType_t *lo = s->pxStackBase;
    const StackType_t *hi = s->pxEndOfStack;
    if (hi < lo) {
        const StackType_t *t = lo;
        lo = hi;
        hi = t;
    }
    return (uint32_t)((size_t)(hi - lo + 1) * sizeof(StackType_t));
#else
    (void)s;
    return 0;
#endif
}

/* One task entry; the stack high-water mark comes separately (see stack_free()). */
static void put_entry(mpfr_wr_t *w, const TaskStatus_t *s, uint32_t stack_free) {
    mpfr_task_t e;
    e.name = s->pcTaskName;
    e.id = (uint32_t)s->xTaskNumber;
    e.py_thread = 0;
    e.state = (uint8_t)s->eCurrentState;
    if (sources != NULL) {
        if (sources->py_thread_id != NULL) {
            e.py_thread = sources->py_thread_id(s->xHandle);
        }
        if (sources->thread_finished != NULL && sources->thread_finished(s->xHandle)) {
            e.state = MPFR_TASK_FINISHED;
        }
    }
    e.base_priority = (uint8_t)s->uxBasePriority;
    e.priority = (uint8_t)s->uxCurrentPriority;
    e.core = core_of(s->xHandle, s->eCurrentState);
#if configNUMBER_OF_CORES > 1 && configUSE_CORE_AFFINITY == 1
    e.affinity = (uint32_t)s->uxCoreAffinityMask;
#else
    e.affinity = MPFR_PROTO_UNKNOWN;
#endif
    e.runtime = (uint32_t)s->ulRunTimeCounter;
    e.stack_size = stack_size_of(s);
    e.stack_free_min = stack_free;
    mpfr_put_task(w, &e);
}

/* Per core: its idle task and the task it runs, looked up once a sample; then filled in with
 * the idle time and the running task's number as the tasks go by. */
typedef struct {
    mpfr_core_stats_t *stats;
    TaskHandle_t idle[AGENT_CORES];
    TaskHandle_t cur[AGENT_CORES];
} cores_t;

static void find_cores(cores_t *k, mpfr_core_stats_t *stats) {
    k->stats = stats;
    for (BaseType_t c = 0; c < AGENT_CORES; c++) {
#if configNUMBER_OF_CORES > 1
        k->idle[c] = xTaskGetIdleTaskHandleForCore(c);
        k->cur[c] = xTaskGetCurrentTaskHandleForCore(c);
#else
        k->idle[c] = xTaskGetIdleTaskHandle();
        k->cur[c] = xTaskGetCurrentTaskHandle();
#endif
    }
}

static void note_cores(const cores_t *k, const TaskStatus_t *s) {
    for (BaseType_t c = 0; c < AGENT_CORES; c++) {
        if (s->xHandle == k->idle[c]) {
            k->stats[c].idle_runtime = (uint32_t)s->ulRunTimeCounter;
        }
        if (s->xHandle == k->cur[c]) {
            k->stats[c].running = (uint32_t)s->xTaskNumber;
        }
    }
}

#if MPFR_AGENT_TASK_WALK
#include "mpfr_walk.h"

/* Stack high-water marks, by task number. Scanning a stack for its mark is most of the cost of
 * a task table, so each sample scans one task (in turn) and any task not seen before; the others
 * report their last mark. A mark only ever goes down, so a cached one errs on the safe side for
 * at most one round (count samples). */
static uint16_t hwm_task[MPFR_AGENT_MAX_TASKS]; /* task numbers, low 16 bits */
static uint16_t hwm_words[MPFR_AGENT_MAX_TASKS];
static uint8_t hwm_next;

/* What uxTaskGetStackHighWaterMark() answers, in about a quarter of its time: the kernel counts
 * the untouched fill bytes one at a time; this compares a word at a time, then the last bytes.
 * Descending stacks only (all the Cortex-M, RISC-V and Xtensa ports); others ask the kernel. */
static UBaseType_t scan_free_words(const TaskStatus_t *s) {
#if portSTACK_GROWTH < 0 && (configRECORD_STACK_HIGH_ADDRESS == 1)
    const uint32_t fill = 0xA5A5A5A5u; /* tskSTACK_FILL_BYTE in every byte */
    const uint32_t *w = (const uint32_t *)(const void *)s->pxStackBase;
    const uint32_t *end = (const uint32_t *)(const void *)s->pxEndOfStack;
    if (((uintptr_t)w & 3u) == 0 && w < end) {
        while (w < end && *w == fill) {
            w++;
        }
        const uint8_t *b = (const uint8_t *)w;
        while (b < (const uint8_t *)end && *b == 0xA5u) {
            b++;
        }
        return (UBaseType_t)((size_t)(b - (const uint8_t *)s->pxStackBase) / sizeof(StackType_t));
    }
#endif
    return uxTaskGetStackHighWaterMark(s->xHandle);
}

static uint32_t stack_free(const TaskStatus_t *s, int fresh) {
    unsigned slot = MPFR_AGENT_MAX_TASKS;
    for (unsigned j = 0; j < MPFR_AGENT_MAX_TASKS; j++) {
        if (hwm_task[j] == (uint16_t)s->xTaskNumber) {
            slot = j;
            break;
        }
    }
    if (slot == MPFR_AGENT_MAX_TASKS || fresh) {
        UBaseType_t words = scan_free_words(s);
        if (slot == MPFR_AGENT_MAX_TASKS) {
            slot = hwm_next;
            hwm_next = (uint8_t)((hwm_next + 1) % MPFR_AGENT_MAX_TASKS);
            hwm_task[slot] = (uint16_t)s->xTaskNumber;
        }
        hwm_words[slot] = (uint16_t)(words > 0xFFFF ? 0xFFFF : words);
    }
    return (uint32_t)hwm_words[slot] * sizeof(StackType_t);
}

typedef struct {
    mpfr_wr_t w;
    uint32_t sample;
    UBaseType_t fresh;
    cores_t cores;
} walk_t;

static void visit(void *ctx, const TaskStatus_t *s, UBaseType_t i, UBaseType_t count) {
    walk_t *k = (walk_t *)ctx;
    if (i % MPFR_AGENT_TASKS_PER_FRAME == 0) {
        size_t left = count - i;
        open_frame(&k->w, MPFR_FRAME_TASKS);
        mpfr_put_tasks_head(&k->w, k->sample, (uint16_t)count, (uint16_t)i,
            left < MPFR_AGENT_TASKS_PER_FRAME ? left : MPFR_AGENT_TASKS_PER_FRAME);
    }
    put_entry(&k->w, s, stack_free(s, i == k->fresh));
    if (i % MPFR_AGENT_TASKS_PER_FRAME == MPFR_AGENT_TASKS_PER_FRAME - 1 || i + 1 == count) {
        close_frame(&k->w);
    }
    note_cores(&k->cores, s);
}

/* The task table through the kernel's walk; returns the run-time counter total. */
STEP uint32_t send_tasks(uint32_t sample, mpfr_core_stats_t *cores) {
    walk_t k;
    configRUN_TIME_COUNTER_TYPE total = 0;
    UBaseType_t count = uxTaskGetNumberOfTasks();
    k.sample = sample;
    k.fresh = count > 0 ? (UBaseType_t)(sample % count) : 0;
    find_cores(&k.cores, cores);
    (void)mpfr_task_walk(visit, &k, &total);
    return (uint32_t)total;
}
#else
/* The task table from one uxTaskGetSystemState() snapshot; returns the run-time counter total.
 * More tasks than MPFR_AGENT_MAX_TASKS take a snapshot array from the FreeRTOS heap for this
 * sample, as the kernel's own vTaskListTasks() does: the table is never cut short. */
STEP uint32_t send_tasks(uint32_t sample, mpfr_core_stats_t *cores) {
    configRUN_TIME_COUNTER_TYPE total = 0;
    TaskStatus_t *status = status_fixed;
    UBaseType_t n = uxTaskGetSystemState(status, MPFR_AGENT_MAX_TASKS, &total);
#if configSUPPORT_DYNAMIC_ALLOCATION == 1
    if (n == 0) {
        /* A few spare entries in case tasks are created meanwhile. */
        UBaseType_t cap = uxTaskGetNumberOfTasks() + 4;
        status = pvPortMalloc(cap * sizeof(TaskStatus_t));
        n = status != NULL ? uxTaskGetSystemState(status, cap, &total) : 0;
    }
#endif
    if (n == 0) {
        /* No room for the snapshot: say so once per sample instead of a table. */
        mpfr_agent_event(MPFR_EV_LOG, (uint32_t)uxTaskGetNumberOfTasks(), MPFR_AGENT_MAX_TASKS,
            "task table full");
    }
    for (UBaseType_t first = 0; first < n; first += MPFR_AGENT_TASKS_PER_FRAME) {
        size_t k = n - first < MPFR_AGENT_TASKS_PER_FRAME ? n - first : MPFR_AGENT_TASKS_PER_FRAME;
        mpfr_wr_t w;
        open_frame(&w, MPFR_FRAME_TASKS);
        mpfr_put_tasks_head(&w, sample, (uint16_t)n, (uint16_t)first, k);
        for (UBaseType_t i = first; i < first + k; i++) {
            put_entry(&w, &status[i], (uint32_t)status[i].usStackHighWaterMark * sizeof(StackType_t));
        }
        close_frame(&w);
    }
    cores_t k;
    find_cores(&k, cores);
    for (UBaseType_t i = 0; i < n; i++) {
        note_cores(&k, &status[i]);
    }
#if configSUPPORT_DYNAMIC_ALLOCATION == 1
    if (status != status_fixed) {
        vPortFree(status);
    }
#endif
    return (uint32_t)total;
}
#endif

/* The service counters. */
STEP void send_service(void) {
    if (sources == NULL || sources->service == NULL) {
        return;
    }
    mpfr_service_stats_t svc;
    svc.slots = slot_stats;
    svc.slots_cap = MPFR_AGENT_SLOTS;
    sources->service(&svc);
    mpfr_wr_t w;
    open_frame(&w, MPFR_FRAME_SERVICE);
    mpfr_put_service(&w, &svc);
    close_frame(&w);
}

STEP void send_system(uint32_t runtime_total, const mpfr_core_stats_t *cores) {
    mpfr_system_t sys;
    memset(&sys, 0, sizeof sys);
    sys.runtime_total = runtime_total;
    sys.ncores = AGENT_CORES;
    sys.cores = cores;
    TickType_t ticks = xTaskGetTickCount();
    sys.ticks = (uint32_t)ticks;
    sys.uptime_ms = (uint32_t)((uint64_t)ticks * 1000u / configTICK_RATE_HZ);
    sys.heap_total = sys.heap_free = sys.heap_free_min = sys.heap_allocs = MPFR_PROTO_UNKNOWN;
#if MPFR_AGENT_HEAP_STATS
#if defined(configTOTAL_HEAP_SIZE) && !MPFR_PORT_ESP_IDF
    sys.heap_total = configTOTAL_HEAP_SIZE;
#endif
#if MPFR_AGENT_HEAP_ALLOCS
    /* One call for all three: a heap that never allocated (free and minimum 0 before heap_4
     * initialises itself) is told from an exhausted one by its allocation count. */
    HeapStats_t hs;
    vPortGetHeapStats(&hs);
    sys.heap_free = (uint32_t)hs.xAvailableHeapSpaceInBytes;
    sys.heap_free_min = (uint32_t)hs.xMinimumEverFreeBytesRemaining;
    sys.heap_allocs = (uint32_t)hs.xNumberOfSuccessfulAllocations;
#else
    sys.heap_free = (uint32_t)xPortGetFreeHeapSize();
#if MPFR_AGENT_HEAP_MIN_FREE
    sys.heap_free_min = (uint32_t)xPortGetMinimumEverFreeHeapSize();
#endif
#endif
#endif
    sys.gc_total = sys.gc_free = MPFR_PROTO_UNKNOWN;
    if (sources != NULL && sources->gc_heap != NULL) {
        sources->gc_heap(&sys.gc_total, &sys.gc_free);
    }
    /* Without a thread registry the counts are unknown, not 0: the host counts the table. */
    sys.threads_live = sys.threads_finished = MPFR_PROTO_UNKNOWN16;
    if (sources != NULL && sources->threads != NULL) {
        sources->threads(&sys.threads_live, &sys.threads_finished);
    }
    sys.agent_overflows = counts.overflows;
    mpfr_wr_t w;
    open_frame(&w, MPFR_FRAME_SYSTEM);
    mpfr_put_system(&w, &sys);
    close_frame(&w);
}

STEP void drain_events(void) {
    for (;;) {
        mpfr_event_t pe;
        mpfr_lock_t l = mpfr_lock();
        if (ev_count == 0) {
            mpfr_unlock(l);
            return;
        }
        /* The text stays in the queue slot while it is encoded: the slot is released after. */
        const event_t *e = &events[ev_head];
        pe.kind = e->kind;
        pe.tick = e->tick;
        pe.a = e->a;
        pe.b = e->b;
        pe.text = e->text;
        mpfr_unlock(l);
        mpfr_wr_t w;
        open_frame(&w, MPFR_FRAME_EVENT);
        mpfr_put_event(&w, &pe);
        close_frame(&w);
        l = mpfr_lock();
        ev_head = (uint8_t)((ev_head + 1) % MPFR_AGENT_EVENTS);
        ev_count--;
        mpfr_unlock(l);
    }
}

STEP void sample(void) {
    mpfr_core_stats_t cores[AGENT_CORES];
    memset(cores, 0, sizeof cores);
    uint32_t total = send_tasks(counts.samples++, cores);
    send_service();
    send_system(total, cores);
}

/* Down channel 0: `rate <hz>`, `hello`, `once`, one per line. */
static char cmd[12];
static uint8_t cmd_len, once;

STEP void run_command(void) {
    cmd[cmd_len] = '\0';
    if (strncmp(cmd, "rate ", 5) == 0) {
        unsigned hz = 0;
        for (const char *p = cmd + 5; *p >= '0' && *p <= '9'; p++) {
            hz = hz * 10 + (unsigned)(*p - '0');
            if (hz > 100) {
                break;
            }
        }
        mpfr_agent_set_rate(hz);
        send_hello();
    } else if (strcmp(cmd, "hello") == 0) {
        send_hello();
    } else if (strcmp(cmd, "once") == 0) {
        once = 1; /* taken by poll_once(), so the sample does not nest in the command's stack */
    }
}

static void poll_commands(void) {
    char c;
    while (mpfr_rtt_read(MPFR_RTT_DOWN_CMD, &c, 1) == 1) {
        if (c == '\n' || c == '\r') {
            if (cmd_len > 0) {
                run_command();
            }
            cmd_len = 0;
        } else if (cmd_len < sizeof cmd - 1) {
            cmd[cmd_len++] = c;
        }
    }
}

/* One round of the agent: commands, then a sample when one is due (else pending events), and a
 * hello frame every MPFR_AGENT_HELLO_MS so a host attaching late learns who is talking. */
static void poll_once(void) {
    BUSY_START();
    poll_commands();
    TickType_t now = xTaskGetTickCount();
    unsigned hz = rate_hz;
    if (once || (hz > 0 && (TickType_t)(now - last_sample) >= (TickType_t)(configTICK_RATE_HZ / hz))) {
        once = 0;
        last_sample = now;
        sample();
    }
    drain_events();
    if ((TickType_t)(now - last_hello) >= pdMS_TO_TICKS(MPFR_AGENT_HELLO_MS)) {
        last_hello = now;
        send_hello();
    }
    BUSY_STOP();
}

static void first_hello(void) {
    last_hello = last_sample = xTaskGetTickCount();
    send_hello();
}

#if MPFR_AGENT_OWN_TASK
static void agent_main(void *unused) {
    (void)unused;
    first_hello();
    for (;;) {
        poll_once();
        /* Wake at the sample rate, but at least every 100 ms for commands and events. */
        unsigned hz = rate_hz;
        TickType_t wait = pdMS_TO_TICKS(100);
        if (hz > 0 && configTICK_RATE_HZ / hz < wait) {
            wait = configTICK_RATE_HZ / hz;
        }
        /* Events wake the task early (see mpfr_agent_event) so they leave promptly. */
        (void)ulTaskNotifyTake(pdTRUE, wait > 0 ? wait : 1);
    }
}
#else
void mpfr_agent_poll(void) {
    if (!started) {
        return;
    }
    if (started == 1) {
        started = 2;
        first_hello();
    }
    poll_once();
}
#endif

void mpfr_agent_set_rate(unsigned hz) {
    rate_hz = (uint8_t)(hz > 100 ? 100 : hz);
}

unsigned mpfr_agent_rate(void) {
    return rate_hz;
}

int mpfr_agent_start(unsigned hz) {
    mpfr_agent_set_rate(hz);
#if MPFR_AGENT_OWN_TASK
    if (agent_task == NULL) {
        agent_task = xTaskCreateStatic(agent_main, "mpfr", AGENT_STACK_DEPTH, NULL,
            MPFR_AGENT_PRIORITY, agent_stack, &agent_tcb);
    }
    started = agent_task != NULL;
    return started ? 0 : -1;
#else
    /* Sampling happens in mpfr_agent_poll(), called by the firmware. */
    if (!started) {
        started = 1;
    }
    return 0;
#endif
}

void mpfr_agent_event(uint8_t kind, uint32_t a, uint32_t b, const char *text) {
    mpfr_lock_t l = mpfr_lock();
    if (ev_count >= MPFR_AGENT_EVENTS) {
        counts.overflows++;
        mpfr_unlock(l);
        return;
    }
    event_t *e = &events[(ev_head + ev_count) % MPFR_AGENT_EVENTS];
    ev_count++;
    e->kind = kind;
    e->tick = (uint32_t)(MPFR_IN_ISR() ? xTaskGetTickCountFromISR() : xTaskGetTickCount());
    e->a = a;
    e->b = b;
    size_t n = 0;
    if (text != NULL) {
        while (n < sizeof e->text - 1 && text[n] != '\0') {
            e->text[n] = text[n];
            n++;
        }
    }
    e->text[n] = '\0';
    mpfr_unlock(l);
#if MPFR_AGENT_OWN_TASK
    /* Not from interrupts: hooks such as the stack-overflow hook run inside the scheduler. */
    if (agent_task != NULL && !MPFR_IN_ISR()) {
        xTaskNotifyGive(agent_task);
    }
#endif
}

void mpfr_agent_fatal(uint8_t kind, uint32_t a, uint32_t b, const char *text) {
    /* Interrupts stay masked: the caller halts next. No lock is taken, since the kernel may be
     * in any state (this can run inside the scheduler): on this core nothing else runs now, and
     * a frame the agent had begun but not yet published is simply written over. */
    taskDISABLE_INTERRUPTS();
    mpfr_event_t e;
    e.kind = kind;
    e.tick = (uint32_t)xTaskGetTickCount();
    e.a = a;
    e.b = b;
    e.text = text;
    mpfr_wr_t w;
    open_frame(&w, MPFR_FRAME_EVENT);
    mpfr_put_event(&w, &e);
    close_frame(&w);
}

void mpfr_agent_log(const char *text) {
    /* Up 0 has one write offset: writers on two cores (or a task and an interrupt) take turns. */
    size_t n = strlen(text);
    mpfr_lock_t l = mpfr_lock();
    mpfr_rtt_write(MPFR_RTT_UP_LOG, text, n);
    mpfr_unlock(l);
}

void mpfr_agent_counts(mpfr_agent_counts_t *out) {
    *out = counts;
}
